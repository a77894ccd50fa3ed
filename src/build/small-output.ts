/**
 * Fast path for the commonest build output, a small single file or a symlink: canonicalise
 * (mode 0444/0555, mtime 1, owner = this process), NAR hash, size and reference scan right
 * here, from one read. Directories and large files go to canonicalisePath/scanPath, whose
 * worker threads pay off for trees but cost two thread round trips (and ~10 MiB per worker)
 * for a 100-byte file. Results are the same by construction: the NAR is encoded by encodeNar
 * and scanned whole, as scanPath does.
 */
import { chmod, lchown, lstat, lutimes, readFile, readlink } from 'node:fs/promises';
import { LazyError } from '../errors.js';
import { hashOf } from '../nix/hash.js';
import { encodeNar } from '../nix/nar-writer.js';
import { RefScanner } from '../nix/refscan.js';
import { hashPart, type StorePath } from '../nix/store-path.js';
import type { ScanResult } from '../store/scan-path.js';

/** Largest file handled here; bigger ones stream through the worker. */
export const SMALL_OUTPUT_MAX = 1 << 20;

/** Canonicalises and scans `fsPath` if it is a small file or a symlink; otherwise undefined (untouched). */
export async function finishSmallOutput(
  fsPath: string,
  opts: { refCandidates: Iterable<StorePath>; builderUid?: number },
): Promise<ScanResult | undefined> {
  const st = await lstat(fsPath);
  if (!(st.isSymbolicLink() || (st.isFile() && st.size <= SMALL_OUTPUT_MAX))) return undefined;
  if (opts.builderUid !== undefined && st.uid !== opts.builderUid) {
    throw new LazyError('STORE_BAD_OWNERSHIP', `'${fsPath}' is owned by uid ${st.uid}, not the builder's (${opts.builderUid})`, {
      details: { path: fsPath },
    });
  }
  const uid = process.getuid?.() ?? st.uid;
  const gid = process.getgid?.() ?? st.gid;
  let nar: Buffer;
  if (st.isSymbolicLink()) {
    const target = await readlink(fsPath, { encoding: 'buffer' });
    if (st.uid !== uid || st.gid !== gid) await lchown(fsPath, uid, gid);
    await lutimes(fsPath, st.atime, 1);
    nar = encodeNar({ type: 'symlink', target: target.toString('latin1') });
  } else {
    const contents = await readFile(fsPath);
    const executable = (st.mode & 0o100) !== 0;
    if (st.uid !== uid || st.gid !== gid) await lchown(fsPath, uid, gid);
    await chmod(fsPath, executable ? 0o555 : 0o444);
    await lutimes(fsPath, st.atime, 1);
    nar = encodeNar({ type: 'regular', executable, contents });
  }
  const byHash = new Map<string, StorePath>();
  for (const p of opts.refCandidates) byHash.set(hashPart(p), p);
  const scanner = new RefScanner(byHash.keys()).update(nar);
  const references = new Set<StorePath>();
  for (const h of scanner.found()) references.add(byHash.get(h)!);
  return { narHash: hashOf('sha256', nar), narSize: nar.length, references };
}
