import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { restoreNar } from '../../src/store/nar-restore.js';
import { dumpPath } from '../../src/store/nar-dump.js';
import { parseNar } from '../../src/nix/nar-reader.js';
import { encodeNar, type NarTree } from '../../src/nix/nar-writer.js';
import { formatHash, hashOf } from '../../src/nix/hash.js';
import { isLazyError } from '../../src/errors.js';
import { allOutputs, manifest } from '../helpers/fixtures.js';
import { chunked, collect, expectedEvents, narTreeArb, recordingSink, withoutOffsets } from '../nix/nar-helpers.js';
import { makeOddTree } from './nar-tree-fixture.js';

const CORPUS = join(import.meta.dirname, '../corpus/nar');
const nixDump = (p: string): Buffer => execFileSync('nix-store', ['--dump', p], { maxBuffer: 1 << 30 });
const nixHash = (p: string): string => execFileSync('nix-hash', ['--type', 'sha256', '--base32', p]).toString().trim();

let tmp: string;
let n = 0;
const fresh = (): string => join(tmp, `r${n++}`);
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lazystore-nar-restore-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every entry under `p` (lstat): canonical modes and mtime 1. */
function expectCanonical(path: string | Buffer): void {
  const p = Buffer.from(path);
  const st = lstatSync(p);
  const where = p.toString('latin1');
  expect(st.mtimeMs, where).toBe(1000);
  if (st.isSymbolicLink()) return;
  const mode = st.mode & 0o7777;
  if (st.isDirectory()) {
    expect(mode, where).toBe(0o555);
    for (const e of readdirSync(p, { encoding: 'buffer' })) expectCanonical(Buffer.concat([p, Buffer.from('/'), e]));
  } else expect([0o444, 0o555], where).toContain(mode);
}

describe('restoreNar', () => {
  it('round-trips random trees: restore → dump is identical, and the events match', async () => {
    await fc.assert(
      fc.asyncProperty(narTreeArb, fc.array(fc.nat(), { maxLength: 5 }), async (tree, cuts) => {
        const nar = encodeNar(tree);
        const dest = fresh();
        const r = await restoreNar(chunked(nar, cuts.map((c) => c % (nar.length + 1))), dest);
        expect(r.narSize).toBe(nar.length);
        expect(formatHash(r.narHash)).toBe(formatHash(hashOf('sha256', nar)));
        const again = await collect(dumpPath(dest));
        expect(again.equals(nar)).toBe(true);
        const { sink, events } = recordingSink();
        await parseNar(chunked(again), sink);
        expect(withoutOffsets(events)).toEqual(expectedEvents(tree));
      }),
      { numRuns: 150 },
    );
  });

  it('restores NARs on both sides of the in-thread limits (16 entries, 64 KiB of contents) exactly', async () => {
    const K = 64 << 10;
    const files = (count: number, size: number): NarTree => ({
      type: 'directory',
      entries: Object.fromEntries(Array.from({ length: count }, (_, i) => [`f${String(i).padStart(3, '0')}`, { type: 'regular' as const, contents: Buffer.alloc(size, i) }])),
    });
    const trees: NarTree[] = [
      { type: 'regular', contents: Buffer.alloc(K - 1, 1) },
      { type: 'regular', executable: true, contents: Buffer.alloc(K, 2) },
      { type: 'regular', contents: Buffer.alloc(K + 1, 3) },
      { type: 'regular', contents: Buffer.alloc(5 << 20, 4) },
      { type: 'symlink', target: 'x'.repeat(4000) },
      files(2, 10),
      files(3, 10),
      files(4, 10),
      files(15, 10),
      files(16, 10),
      files(17, 10),
      files(40, 10),
      files(3, 30_000),
      { type: 'directory', entries: { a: { type: 'regular', contents: Buffer.alloc(K - 100, 5) }, b: { type: 'regular', contents: Buffer.alloc(200, 6) }, c: { type: 'symlink', target: 'a' } } },
    ];
    const check = async (nar: Buffer, cuts: number[]): Promise<void> => {
      const dest = fresh();
      const r = await restoreNar(chunked(nar, cuts), dest);
      expect(formatHash(r.narHash)).toBe(formatHash(hashOf('sha256', nar)));
      expect((await collect(dumpPath(dest))).equals(nar)).toBe(true);
      expectCanonical(dest);
    };
    // One at a time (small NARs written in this thread), then all at once (small ones handed
    // to the worker whole, as during a substitution).
    for (const tree of trees) for (const cuts of [[], [7, 100, 5000]]) await check(encodeNar(tree), cuts);
    await Promise.all(trees.flatMap((tree) => [[], [7, 100, 5000]].map((cuts) => check(encodeNar(tree), cuts))));
  });

  it('restores what real Nix then hashes to the same NAR hash (random trees)', async () => {
    await fc.assert(
      fc.asyncProperty(narTreeArb, async (tree) => {
        const nar = encodeNar(tree);
        const dest = fresh();
        await restoreNar(chunked(nar), dest);
        expect(nixDump(dest).equals(nar)).toBe(true);
      }),
      { numRuns: 30 },
    );
  });

  it('restores real NARs of fixture outputs and busybox; nix-hash agrees; modes 0444/0555, mtime 1', async () => {
    const m = manifest();
    const outs = [...allOutputs().values()];
    const picks = [{ path: m.busybox.storePath, narHash: m.busybox.narHash }, ...outs.filter((_, i) => i % 40 === 0)];
    for (const o of picks) {
      const dest = fresh();
      const r = await restoreNar(chunked(nixDump(o.path), [1, 4096, 65536]), dest);
      expect(formatHash(r.narHash)).toBe(o.narHash);
      expect(`sha256:${nixHash(dest)}`).toBe(o.narHash);
      expectCanonical(dest);
    }
  });

  it('restores the odd tree exactly (non-UTF-8 names, 3 MiB file, dangling symlinks)', async () => {
    const src = makeOddTree(fresh());
    const dest = fresh();
    await restoreNar(dumpPath(src), dest);
    expect(nixDump(dest).equals(nixDump(src))).toBe(true);
    expectCanonical(dest);
    expect(readFileSync(join(dest, 'big.bin')).equals(readFileSync(join(src, 'big.bin')))).toBe(true);
  });

  it('stops when aborted, even inside a large file, and the worker pool keeps working', async () => {
    const nar = encodeNar({ type: 'directory', entries: { big: { type: 'regular', contents: Buffer.alloc(8 << 20, 1) } } });
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Buffer> {
      for (let i = 0; i < nar.length; i += 1 << 20) {
        if (i >= 3 << 20) ac.abort();
        yield nar.subarray(i, i + (1 << 20));
      }
    }
    const e = await restoreNar(slow(), fresh(), { signal: ac.signal }).catch((x: unknown) => x);
    expect(isLazyError(e, 'ABORTED'), String(e)).toBe(true);
    const dest = fresh();
    await restoreNar(chunked(nar), dest);
    expect(nixDump(dest).equals(nar)).toBe(true);
  });

  it('refuses an existing destination, and never writes outside it', async () => {
    const dest = fresh();
    mkdirSync(dest);
    const e = await restoreNar(chunked(encodeNar({ type: 'directory', entries: {} })), dest).catch((x: unknown) => x);
    expect(isLazyError(e, 'STORE_RESTORE_EXISTS'), String(e)).toBe(true);
    const file = fresh();
    writeFileSync(file, 'keep');
    const e2 = await restoreNar(chunked(encodeNar({ type: 'regular', contents: 'new' })), file).catch((x: unknown) => x);
    expect(isLazyError(e2, 'STORE_RESTORE_EXISTS'), String(e2)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe('keep');
  });

  it('rejects every malformed corpus NAR with its code, leaving nothing outside the destination', async () => {
    const index = JSON.parse(readFileSync(join(CORPUS, 'index.json'), 'utf8')) as Record<string, { code: string }>;
    for (const [file, { code }] of Object.entries(index)) {
      const jail = fresh();
      mkdirSync(jail);
      const e = await restoreNar(chunked(readFileSync(join(CORPUS, file))), join(jail, 'out')).catch((x: unknown) => x);
      expect(isLazyError(e, code), `${file}: ${String(e)}`).toBe(true);
      expect(readdirSync(jail).filter((x) => x !== 'out'), file).toEqual([]);
      expect(readdirSync(tmp).some((x) => x === 'etc' || x === 'passwd')).toBe(false);
    }
  });
});
