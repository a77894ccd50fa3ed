/**
 * importDirectory reads a lone small file or a symlink in this thread and restoreNar writes a
 * small NAR in this thread: the store paths, NAR hashes and modes must be exactly what real Nix
 * gives, on both sides of those limits (60 KiB read, 64 KiB / 4 entries written).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { LocalStore } from '../../src/store/local-store.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lazystore-import-small-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const nixHash = (p: string): string => `sha256:${execFileSync('nix-hash', ['--type', 'sha256', '--base32', p]).toString().trim()}`;

describe('importDirectory of small trees', () => {
  it('gives the NAR hash nix-hash gives and canonical modes, around the in-thread limits', async () => {
    const src = join(tmp, 'src');
    mkdirSync(src);
    const K = 1024;
    const cases: [string, () => void][] = [
      ['empty', () => writeFileSync(join(src, 'empty'), '')],
      ['exec', () => (writeFileSync(join(src, 'exec'), '#!/bin/sh\n'), chmodSync(join(src, 'exec'), 0o755))],
      ['ownerexec', () => (writeFileSync(join(src, 'ownerexec'), 'x'), chmodSync(join(src, 'ownerexec'), 0o744))],
      ['groupexec', () => (writeFileSync(join(src, 'groupexec'), 'x'), chmodSync(join(src, 'groupexec'), 0o654))],
      ['f60k', () => writeFileSync(join(src, 'f60k'), Buffer.alloc(60 * K, 1))],
      ['f60k1', () => writeFileSync(join(src, 'f60k1'), Buffer.alloc(60 * K + 1, 2))],
      ['f64k1', () => writeFileSync(join(src, 'f64k1'), Buffer.alloc(64 * K + 1, 3))],
      ['link', () => symlinkSync('../some/where', join(src, 'link'))],
      ['dangling', () => symlinkSync('x'.repeat(3000), join(src, 'dangling'))],
      ['dir4', () => { mkdirSync(join(src, 'dir4')); for (const n of ['a', 'b', 'c']) writeFileSync(join(src, 'dir4', n), n); }],
      ['dir5', () => { mkdirSync(join(src, 'dir5')); for (const n of ['a', 'b', 'c', 'd']) writeFileSync(join(src, 'dir5', n), n); }],
    ];
    for (const [, make] of cases) make();
    const store = await LocalStore.open(join(tmp, 'state'));
    for (const [name] of cases) {
      const p = join(src, name);
      const info = await store.addFromDirectory(p, { name });
      expect(formatHash(info.narHash), name).toBe(nixHash(p));
      const real = store.realPath(info.path);
      const st = lstatSync(real);
      expect(st.mtimeMs, name).toBe(1000);
      if (st.isSymbolicLink()) expect(readlinkSync(real)).toBe(readlinkSync(p));
      else if (st.isFile()) {
        expect(st.mode & 0o777, name).toBe((lstatSync(p).mode & 0o100) !== 0 ? 0o555 : 0o444);
        expect(readFileSync(real).equals(readFileSync(p)), name).toBe(true);
      } else expect(readdirSync(real)).toEqual(readdirSync(p));
    }
    expect(readdirSync(store.layout.tmpDir)).toEqual([]);
  });
});
