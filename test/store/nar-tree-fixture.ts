/** A tree on disk with every awkward case a NAR dump must get right, for comparison with real Nix. */
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Writes the tree under `root` (which must not exist). Returns `root`. */
export function makeOddTree(root: string): string {
  mkdirSync(root);
  const b = (s: string): Buffer => Buffer.from(s, 'latin1');
  mkdirSync(join(root, 'empty-dir'));
  mkdirSync(join(root, 'deep/a/b/c'), { recursive: true });
  writeFileSync(join(root, 'deep/a/b/c/leaf'), 'leaf\n');
  writeFileSync(join(root, 'empty-file'), '');
  writeFileSync(join(root, 'eight-bytes'), '12345678');
  // Crosses several 1 MiB dump chunks and the restore's small-file threshold, length not a multiple of 8.
  const big = Buffer.alloc(3 * 1024 * 1024 + 5);
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  writeFileSync(join(root, 'big.bin'), big);
  writeFileSync(join(root, 'run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'run.sh'), 0o755);
  writeFileSync(join(root, 'user-exec-only'), 'x');
  chmodSync(join(root, 'user-exec-only'), 0o700);
  writeFileSync(join(root, 'group-exec-only'), 'x');
  chmodSync(join(root, 'group-exec-only'), 0o654);
  symlinkSync('run.sh', join(root, 'link-to-file'));
  symlinkSync('/nonexistent/dangling', join(root, 'dangling'));
  symlinkSync('deep/a', join(root, 'link-to-dir'));
  // Bytewise order: 'B' < '_' < 'a' < 'a.b' < 'a0' < 'é' (C3 A9) < 0xFF; a non-UTF-8 name.
  mkdirSync(Buffer.concat([b(root), b('/names')]));
  for (const n of ['B', '_', 'a', 'a.b', 'a0', '\u00c3\u00a9', '\u00ff\u00fe-not-utf8', 'x\ny', ' space', '-dash']) {
    writeFileSync(Buffer.concat([b(root), b('/names/'), b(n)]), b(n));
  }
  return root;
}
