/**
 * A failed parse or import lets go of its source. Found by the mount-fault test: after a
 * substitution of a corrupt NAR the daemon took 60 s to exit on SIGTERM, because parseNar
 * abandoned the HTTP body generator mid-stream and its 60 s stall timer kept the process alive.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { parseNar } from '../../src/nix/nar-reader.js';
import { encodeNar } from '../../src/nix/nar-writer.js';
import { parsePublicKey } from '../../src/nix/signing.js';
import { parseStorePath } from '../../src/nix/store-path.js';
import { LocalStore } from '../../src/store/local-store.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { Substituters } from '../../src/substitute/substituters.js';
import { manifest } from '../helpers/fixtures.js';
import { PUBLIC_KEY, startHostileCache, type Fault, type HostileCache } from './hostile-cache.js';

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

describe('sources are released when parsing or importing fails', () => {
  it('parseNar closes its source when the NAR is malformed half-way', async () => {
    const nar = encodeNar({ type: 'directory', entries: { a: { type: 'regular', contents: 'x'.repeat(100) }, b: { type: 'regular', contents: 'y' } } });
    const bad = Buffer.from(nar);
    bad.write('X', nar.indexOf('entry', 100)); // the second 'entry' token becomes 'Xntry'
    let closed = false;
    async function* source(): AsyncGenerator<Buffer> {
      try {
        for (let i = 0; i < bad.length; i += 16) yield bad.subarray(i, i + 16);
        yield Buffer.alloc(0); // never reached: the parse fails before
      } finally {
        closed = true;
      }
    }
    const e = await parseNar(source(), { directory() {}, symlink() {}, async file(_p, _x, _s, c) { for await (const _ of c); } }).catch((x: unknown) => x);
    expect(isLazyError(e, 'NAR_UNEXPECTED_TOKEN')).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(closed).toBe(true);
  });

  describe('over HTTP', () => {
    let cache: HostileCache;
    let dir: string;
    beforeAll(async () => {
      cache = await startHostileCache();
      dir = await mkdtemp(join(tmpdir(), 'lazystore-release-'));
    });
    afterAll(async () => {
      await cache.close();
      await rm(dir, { recursive: true, force: true });
    });

    it.each(['flip', 'traversal', 'truncate', 'wrong-narsize'] as Fault[])('a %s NAR: import fails, no timer or connection outlives it', async (fault) => {
      const store = await LocalStore.open(join(dir, fault));
      const path = parseStorePath(manifest().derivations.flatMap((d) => Object.values(d.outputs)).find((o) => o.path.endsWith('-dag500-0-20'))!.path);
      cache.faults.set(basename(path).slice(0, 32), fault);
      const subs = new Substituters([await openBinaryCache(cache.url)], { trustedKeys: [parsePublicKey(PUBLIC_KEY)], requireSigs: true });
      const before = timers();
      const found = await subs.query(path);
      expect(found).toBeDefined();
      const e = await subs.importPath(store, found!).catch((x: unknown) => x);
      expect(isLazyError(e), String(e)).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
      expect(timers()).toBeLessThanOrEqual(before);
      expect(await store.isValid(path)).toBe(false);
    });
  });
});
