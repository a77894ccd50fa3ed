import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { dumpPath } from '../../src/store/nar-dump.js';
import { encodeNix32 } from '../../src/nix/nixbase32.js';
import { isLazyError } from '../../src/errors.js';
import { allOutputs, manifest } from '../helpers/fixtures.js';
import { makeOddTree } from './nar-tree-fixture.js';
import { collect } from '../nix/nar-helpers.js';

const nixDump = (p: string): Buffer => execFileSync('nix-store', ['--dump', p], { maxBuffer: 1 << 30 });

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lazystore-nar-dump-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('dumpPath', () => {
  it('hashes every fixture output to the narHash and narSize real Nix recorded', async () => {
    const outs = [...allOutputs().values()];
    expect(outs.length).toBeGreaterThan(500);
    for (const o of outs) {
      const h = createHash('sha256');
      let size = 0;
      for await (const c of dumpPath(o.path)) {
        h.update(c);
        size += c.length;
      }
      expect({ path: o.path, narHash: `sha256:${encodeNix32(h.digest())}`, narSize: size }).toEqual({
        path: o.path,
        narHash: o.narHash,
        narSize: o.narSize,
      });
    }
  });

  it('is byte-equal to nix-store --dump for busybox and a few outputs', async () => {
    const m = manifest();
    const some = [m.busybox.storePath, ...m.derivations.slice(0, 6).flatMap((d) => Object.values(d.outputs).map((o) => o.path))];
    for (const p of some) expect((await collect(dumpPath(p))).equals(nixDump(p)), p).toBe(true);
  });

  it('is byte-equal to nix-store --dump on a tree with odd names, modes, symlinks, empty dirs and a 3 MiB file', async () => {
    const root = makeOddTree(join(tmp, 'odd'));
    const ours = await collect(dumpPath(root));
    expect(ours.equals(nixDump(root))).toBe(true);
    for (const sub of ['big.bin', 'link-to-dir', 'empty-dir', 'run.sh']) {
      expect((await collect(dumpPath(join(root, sub)))).equals(nixDump(join(root, sub))), sub).toBe(true);
    }
  });

  it('rejects a fifo with STORE_UNSUPPORTED_FILE and a missing path with STORE_IO', async () => {
    const dir = join(tmp, 'with-fifo');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a'), 'a');
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const e1 = await collect(dumpPath(dir)).catch((e: unknown) => e);
    expect(isLazyError(e1, 'STORE_UNSUPPORTED_FILE'), String(e1)).toBe(true);
    const e2 = await collect(dumpPath(join(tmp, 'missing'))).catch((e: unknown) => e);
    expect(isLazyError(e2, 'STORE_IO'), String(e2)).toBe(true);
    expect(String((e2 as Error).message)).toMatch(/ENOENT/);
  });

  it('stops the walk when the consumer leaves early or aborts, and the pool keeps working', async () => {
    const root = join(tmp, 'odd');
    for (let i = 0; i < 12; i++) {
      for await (const _ of dumpPath(root)) break;
    }
    const ac = new AbortController();
    const it = dumpPath(root, { signal: ac.signal });
    await it.next();
    ac.abort();
    const e = await collect(it).catch((x: unknown) => x);
    expect(isLazyError(e, 'ABORTED')).toBe(true);
    const again = await Promise.all([1, 2, 3, 4, 5, 6].map(() => collect(dumpPath(root))));
    for (const b of again) expect(b.equals(nixDump(root))).toBe(true);
  });
});

describe('NAR worker pool', () => {
  it('never deadlocks when many jobs each hold a worker and need another (restore of a dump)', async () => {
    const { restoreNar } = await import('../../src/store/nar-restore.js');
    const src = existsSync(join(tmp, 'odd')) ? join(tmp, 'odd') : makeOddTree(join(tmp, 'odd'));
    const want = nixDump(src);
    // 10 restores fed by dumps at once: 20 workers busy together, more than are ever kept idle.
    const dests = Array.from({ length: 10 }, (_, i) => join(tmp, `pool-${i}`));
    await Promise.all(dests.map((d) => restoreNar(dumpPath(src), d)));
    for (const d of dests) expect(nixDump(d).equals(want)).toBe(true);
  });
});

describe('NAR worker pool bounds', () => {
  it('runs 40 concurrent restores and 40 concurrent scans on a handful of threads', async () => {
    const { restoreNar } = await import('../../src/store/nar-restore.js');
    const { scanPath } = await import('../../src/store/scan-path.js');
    const { encodeNar } = await import('../../src/nix/nar-writer.js');
    const { chunked } = await import('../nix/nar-helpers.js');
    const threads = (): number => Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
    const before = threads();
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, threads())), 2);
    const nar = encodeNar({ type: 'directory', entries: { a: { type: 'regular', contents: Buffer.alloc(3 << 20, 7) }, b: { type: 'symlink', target: 'a' } } });
    const outs = [...allOutputs().keys()].slice(0, 40);
    try {
      await Promise.all([
        ...Array.from({ length: 40 }, (_, i) => restoreNar(chunked(nar, [4096, 1 << 20]), join(tmp, `bounded-${i}`))),
        ...outs.map((p) => scanPath(p)),
      ]);
    } finally {
      clearInterval(timer);
    }
    // 2 shared restore workers + 4 scan workers (+ idle ones already counted in `before`).
    expect(peak - before).toBeLessThanOrEqual(8);
    for (let i = 0; i < 40; i += 13) expect(nixDump(join(tmp, `bounded-${i}`)).equals(nar)).toBe(true);
  });
});
