/**
 * Substituting from real caches written by Nix 2.8, over file:// and over nginx, into a fresh
 * store: the imported paths' NAR hashes equal the manifest. Corrupt copies of those caches are
 * rejected with the right code and leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, allOutputs, fixtureDrv } from '../helpers/fixtures.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { Substituters } from '../../src/substitute/substituters.js';
import { copyClosure } from '../../src/substitute/copy-closure.js';
import { parsePublicKey, type PublicKey } from '../../src/nix/signing.js';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { startNginx, type Nginx } from './nginx.js';
import { derivedCache, freshStore, narHashOf, narStr, storeLeftovers } from './cache-fixtures.js';

let tmp: string;
let nginx: Nginx;
let key: PublicKey;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lazystore-subst-'));
  nginx = await startNginx(FIXTURES);
  key = parsePublicKey(await readFile(join(FIXTURES, 'keys', 'public.key'), 'utf8'));
});
afterAll(async () => {
  await nginx?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const out = (label: string, o = 'out'): StorePath => parseStorePath(fixtureDrv(label).outputs[o]!.path);
const manifestHash = (p: string): string => allOutputs().get(p)!.narHash;

async function subs(url: string, opts: { requireSigs?: boolean; keys?: PublicKey[] } = {}): Promise<Substituters> {
  return new Substituters([await openBinaryCache(url)], { requireSigs: opts.requireSigs ?? true, trustedKeys: opts.keys ?? [] });
}

describe.each([
  ['file:// xz unsigned', () => `file://${FIXTURES}/cache`, false],
  ['file:// none signed', () => `file://${FIXTURES}/cache-none-signed`, true],
  ['http xz unsigned', () => `${nginx.url}/cache`, false],
  ['http none signed', () => `${nginx.url}/cache-none-signed`, true],
])('copyClosure from %s', (_n, url, signed) => {
  it('imports closures whose NAR hashes equal real Nix', async () => {
    const store = await freshStore(tmp);
    const s = await subs(url(), signed ? { keys: [key] } : { requireSigs: false });
    const roots = [out('chain.C'), out('multi', 'dev'), out('single'), out('fod.recursive'), out('dag50.root')];
    const result = await copyClosure(store, s, roots, { jobs: 4 });
    const closure = await store.closure(roots);
    expect(new Set(result.imported)).toEqual(new Set(closure));
    expect(closure.length).toBeGreaterThan(50);
    for (const p of closure) {
      const info = (await store.queryPathInfo(p))!;
      expect(formatHash(info.narHash), p).toBe(manifestHash(p));
      // references first
      for (const r of info.references) if (r !== p) expect(result.imported.indexOf(r)).toBeLessThan(result.imported.indexOf(p));
    }
    expect(await readFile(join(store.realPath(out('chain.C')), 'ref-to-a'), 'utf8')).toContain('fixture-chain-a');
    // A second copy finds everything valid.
    const again = await copyClosure(store, s, roots);
    expect(again.imported).toEqual([]);
  });
});

describe('trust', () => {
  it('refuses unsigned input-addressed paths unless requireSigs is false', async () => {
    const store = await freshStore(tmp);
    const s = await subs(`file://${FIXTURES}/cache`);
    const found = (await s.query(out('chain.A')))!;
    await expect(s.importPath(store, found)).rejects.toMatchObject({
      code: 'SUBST_SIG',
      details: { path: out('chain.A') },
    });
    expect(await store.isValid(out('chain.A'))).toBe(false);
  });

  it('refuses signatures by keys it does not trust', async () => {
    const store = await freshStore(tmp);
    const other = parsePublicKey('other-1:' + Buffer.alloc(32, 7).toString('base64'));
    const s = await subs(`file://${FIXTURES}/cache-none-signed`, { keys: [other] });
    await expect(copyClosure(store, s, [out('chain.A')])).rejects.toMatchObject({ code: 'SUBST_SIG' });
  });

  it('accepts content-addressed paths without a signature (fixed outputs, .drv text paths)', async () => {
    const store = await freshStore(tmp);
    const s = await subs(`file://${FIXTURES}/cache`);
    const drv = parseStorePath(fixtureDrv('fod.flat').drvPath);
    await copyClosure(store, s, [out('fod.flat'), out('fod.recursive'), drv]);
    expect(formatHash((await store.queryPathInfo(out('fod.flat')))!.narHash)).toBe(manifestHash(out('fod.flat')));
    expect(await readFile(store.realPath(drv), 'utf8')).toMatch(/^Derive\(/);
  });
});

describe('corrupt caches are rejected and leave nothing', () => {
  const A = () => out('chain.A'); // one regular file, no references
  const S = () => out('single'); // a directory with a self-reference

  async function expectRejected(cacheDir: string, p: StorePath, code: string | RegExp, opts: { requireSigs?: boolean; keys?: PublicKey[] } = {}) {
    const store = await freshStore(tmp);
    const s = await subs(`file://${cacheDir}`, { requireSigs: false, ...opts });
    const err = await copyClosure(store, s, [p]).then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; details: Record<string, unknown> },
    );
    expect(err, 'import should fail').toBeDefined();
    if (typeof code === 'string') expect(err!.code).toBe(code);
    else expect(err!.code).toMatch(code);
    expect(err!.message).toContain(p);
    expect(await store.isValid(p)).toBe(false);
    expect(await storeLeftovers(store)).toEqual([]);
    return err!;
  }

  it('a flipped byte in the NAR: NarHash mismatch naming expected and actual', async () => {
    const dir = await derivedCache(tmp, 'cache-none-signed', [S()], (_i, nar) => {
      const at = nar.indexOf('hello from fixture-single');
      nar[at] = 'H'.charCodeAt(0);
    });
    const err = await expectRejected(dir, S(), 'STORE_NAR_HASH_MISMATCH');
    expect(err.details.expected).toBe(manifestHash(S()));
    expect(err.details.actual).toMatch(/^sha256:/);
    expect(err.details.actual).not.toBe(err.details.expected);
  });

  it('a wrong NarHash in the narinfo', async () => {
    const dir = await derivedCache(tmp, 'cache-none-signed', [A()], (info) => {
      info.narHash = narHashOf(Buffer.from('something else')).digest();
    });
    await expectRejected(dir, A(), 'STORE_NAR_HASH_MISMATCH');
  });

  it.each([[+8], [-8]])('a NarSize off by %i', async (delta) => {
    const dir = await derivedCache(tmp, 'cache-none-signed', [S()], (info) => {
      info.narSize += delta;
    });
    await expectRejected(dir, S(), /NAR_SIZE_MISMATCH|^NAR_/);
  });

  it('a truncated NAR (uncompressed and xz)', async () => {
    const none = await derivedCache(tmp, 'cache-none-signed', [S()], (info, nar) => ({ info, nar: nar.subarray(0, nar.length - 100) }));
    await expectRejected(none, S(), /NAR_SIZE_MISMATCH|^NAR_TRUNCATED|^NAR_/);
    const xz = await derivedCache(tmp, 'cache', [S()], (info, nar) => ({ info, nar: nar.subarray(0, nar.length - 20) }));
    await expectRejected(xz, S(), 'SUBST_DECOMPRESS');
  });

  it('a bad signature and a missing one', async () => {
    const bad = await derivedCache(tmp, 'cache-none-signed', [A()], (info) => {
      const [name, sig] = info.sigs[0]!.split(':');
      const bytes = Buffer.from(sig!, 'base64');
      bytes[0] = bytes[0]! ^ 1;
      info.sigs = [`${name}:${bytes.toString('base64')}`];
    });
    const e1 = await expectRejected(bad, A(), 'SUBST_SIG', { requireSigs: true, keys: [key] });
    expect(e1.details.expected).toEqual(['nixref-fixtures-1']);
    const missing = await derivedCache(tmp, 'cache-none-signed', [A()], (info) => {
      info.sigs = [];
    });
    await expectRejected(missing, A(), 'SUBST_SIG', { requireSigs: true, keys: [key] });
    // A signature over other contents (NarHash changed after signing) is no signature.
    const resigned = await derivedCache(tmp, 'cache-none-signed', [A()], (info) => {
      info.narSize += 1;
    });
    await expectRejected(resigned, A(), 'SUBST_SIG', { requireSigs: true, keys: [key] });
  });

  it('a NAR that escapes its root (entry "..") is refused by the reader', async () => {
    const evil = Buffer.concat(
      ['nix-archive-1', '(', 'type', 'directory', 'entry', '(', 'name', '..', 'node', '(', 'type', 'regular', 'contents', 'pwned', ')', ')', ')'].map((t) =>
        narStr(t),
      ),
    );
    const dir = await derivedCache(tmp, 'cache-none-signed', [S()], (info) => {
      info.narHash = narHashOf(evil).digest();
      info.narSize = evil.length;
      return { info, nar: evil };
    });
    await expectRejected(dir, S(), /^NAR_/);
  });

  it('content-addressed contents that do not match their CA', async () => {
    const F = out('fod.flat');
    const dir = await derivedCache(tmp, 'cache-none-signed', [F], (info, nar) => {
      const at = nar.indexOf('fixed output content');
      nar[at] = 'F'.charCodeAt(0);
      info.narHash = narHashOf(nar).digest();
      info.sigs = [];
    });
    await expectRejected(dir, F, /CA_MISMATCH/, { requireSigs: true });
  });

  it('a missing NAR file', async () => {
    const dir = await derivedCache(tmp, 'cache-none-signed', [A()], (info, nar) => {
      info.url = 'nar/0000000000000000000000000000000000000000000000000000.nar';
      return { info, nar };
    });
    const { unlink } = await import('node:fs/promises');
    await unlink(join(dir, 'nar/0000000000000000000000000000000000000000000000000000.nar'));
    await expectRejected(dir, A(), 'SUBST_NAR_MISSING');
  });
});

describe('copyClosure bookkeeping', () => {
  it('fetches each NAR of a shared-dependency DAG exactly once, with at most `jobs` at a time', async () => {
    const store = await freshStore(tmp);
    const cache = await openBinaryCache(`file://${FIXTURES}/cache`);
    const fetched = new Map<string, number>();
    let running = 0;
    let peak = 0;
    const counting = {
      ...cache,
      url: cache.url,
      priority: cache.priority,
      wantMassQuery: cache.wantMassQuery,
      getNarInfo: cache.getNarInfo.bind(cache),
      forget: cache.forget.bind(cache),
      async getNar(info: Parameters<typeof cache.getNar>[0], o?: { signal?: AbortSignal }) {
        fetched.set(info.storePath, (fetched.get(info.storePath) ?? 0) + 1);
        running++;
        peak = Math.max(peak, running);
        const nar = await cache.getNar(info, o);
        return (async function* () {
          try {
            yield* nar;
          } finally {
            running--;
          }
        })();
      },
    };
    const s = new Substituters([counting], { requireSigs: false });
    const roots = [out('dag50.root'), out('dag500.root')];
    const result = await copyClosure(store, s, [...roots, ...roots], { jobs: 3 });
    expect(result.imported.length).toBe((await store.closure(roots)).length);
    expect([...fetched.values()].every((n) => n === 1)).toBe(true);
    expect(fetched.size).toBe(result.imported.length);
    expect(peak).toBeLessThanOrEqual(3);
  });

  it('stops on abort and leaves no partial path', async () => {
    const store = await freshStore(tmp);
    const s = await subs(`file://${FIXTURES}/cache`, { requireSigs: false });
    const ctl = new AbortController();
    let n = 0;
    const run = copyClosure(store, s, [out('dag500.root')], {
      signal: ctl.signal,
      onProgress: () => {
        if (++n === 20) ctl.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ code: 'ABORTED' });
    const leftovers = (await storeLeftovers(store)).filter((e) => !e.startsWith('.'));
    for (const e of leftovers) expect(await store.isValid(parseStorePath(`/nix/store/${e}`)), e).toBe(true);
    expect(n).toBeLessThan(200);
  });
});

describe('query', () => {
  it('tries caches in priority order and reports absence as undefined', async () => {
    const low = await openBinaryCache(`file://${FIXTURES}/cache?priority=60`);
    const high = await openBinaryCache(`file://${FIXTURES}/cache-none-signed?priority=10`);
    const s = new Substituters([low, high]);
    expect(s.caches.map((c) => c.priority)).toEqual([10, 60]);
    expect((await s.query(out('single')))!.cache).toBe(high);
    expect(await s.query(parseStorePath('/nix/store/00000000000000000000000000000000-absent'))).toBeUndefined();
  });

  it('names the path when no cache has it', async () => {
    const store = await freshStore(tmp);
    const s = await subs(`file://${FIXTURES}/cache`, { requireSigs: false });
    const p = parseStorePath('/nix/store/00000000000000000000000000000000-absent');
    await expect(copyClosure(store, s, [p])).rejects.toMatchObject({ code: 'SUBST_NOT_FOUND', details: { path: p } });
  });
});
