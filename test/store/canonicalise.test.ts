import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { canonicalisePath } from '../../src/store/canonicalise.js';
import { isLazyError } from '../../src/errors.js';

const nixHash = (p: string): string => execFileSync('nix-hash', ['--type', 'sha256', '--base32', p]).toString().trim();
const isRoot = process.geteuid?.() === 0;

let tmp: string;
let n = 0;
const fresh = (): string => {
  const d = join(tmp, `c${n++}`);
  mkdirSync(d);
  return d;
};
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lazystore-canon-'));
});
afterAll(() => {
  execFileSync('chmod', ['-R', 'u+w', tmp]);
  rmSync(tmp, { recursive: true, force: true });
});

const mode = (p: string): number => lstatSync(p).mode & 0o7777;

describe('canonicalisePath', () => {
  it('sets modes 0444/0555 (dropping setuid/setgid/sticky/write), mtime 1 everywhere, and keeps the NAR hash', async () => {
    const root = fresh();
    const files: [string, number, number][] = [
      ['plain', 0o644, 0o444],
      ['exec', 0o755, 0o555],
      ['setuid', 0o4755, 0o555],
      ['setgid-noexec', 0o2644, 0o444],
      ['user-exec', 0o700, 0o555],
      ['group-exec-only', 0o610, 0o444],
      ['already', 0o444, 0o444],
    ];
    for (const [name, m] of files) {
      writeFileSync(join(root, name), name);
      chmodSync(join(root, name), m);
    }
    mkdirSync(join(root, 'sub'));
    chmodSync(join(root, 'sub'), 0o3775);
    symlinkSync('plain', join(root, 'sub/link'));
    utimesSync(join(root, 'plain'), 12345, 67890);
    const before = nixHash(root);
    await canonicalisePath(root);
    for (const [name, , want] of files) expect([name, mode(join(root, name))]).toEqual([name, want]);
    expect(mode(join(root, 'sub'))).toBe(0o555);
    expect(mode(root)).toBe(0o555);
    for (const p of [root, join(root, 'sub'), join(root, 'sub/link'), ...files.map(([f]) => join(root, f))]) {
      expect([p, lstatSync(p).mtimeMs]).toEqual([p, 1000]);
    }
    expect(nixHash(root)).toBe(before);
    await canonicalisePath(root); // idempotent
    expect(nixHash(root)).toBe(before);
  });

  it('fails on fifos, sockets and devices with STORE_SPECIAL_FILE', async () => {
    const fifoDir = fresh();
    execFileSync('mkfifo', [join(fifoDir, 'pipe')]);
    const sockDir = fresh();
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(sockDir, 'sock'), r));
    const cases = [fifoDir, sockDir];
    if (isRoot) {
      const devDir = fresh();
      execFileSync('mknod', [join(devDir, 'null'), 'c', '1', '3']);
      cases.push(devDir);
    }
    try {
      for (const d of cases) {
        const e = await canonicalisePath(d).catch((x: unknown) => x);
        expect(isLazyError(e, 'STORE_SPECIAL_FILE'), `${d}: ${String(e)}`).toBe(true);
      }
    } finally {
      server.close();
    }
  });

  it.skipIf(!isRoot)('with fromUid: chowns the builder’s files, accepts hard links among them, rejects foreign files', async () => {
    const root = fresh();
    writeFileSync(join(root, 'a'), 'a');
    linkSync(join(root, 'a'), join(root, 'b'));
    for (const p of [root, join(root, 'a')]) chownSync(p, 1234, 100);
    await canonicalisePath(root, { fromUid: 1234 });
    for (const p of [root, join(root, 'a'), join(root, 'b')]) expect(lstatSync(p).uid).toBe(0);

    const bad = fresh();
    chownSync(bad, 1234, 100);
    writeFileSync(join(bad, 'foreign'), 'x'); // owned by root, not by the builder
    const e = await canonicalisePath(bad, { fromUid: 1234 }).catch((x: unknown) => x);
    expect(isLazyError(e, 'STORE_BAD_OWNERSHIP'), String(e)).toBe(true);
  });
});
