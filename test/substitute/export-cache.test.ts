/**
 * `copy --to`: closures exported from our store as flat-file caches must be accepted by real
 * Nix 2.8 (`nix copy --from file://…` into a fresh chroot store, then `nix-store --verify
 * --check-contents`, NAR hashes equal), signed or not, in every compression.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allOutputs, fixtureDrv } from '../helpers/fixtures.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { Substituters } from '../../src/substitute/substituters.js';
import { copyClosure } from '../../src/substitute/copy-closure.js';
import { exportCache } from '../../src/substitute/export-cache.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { formatHash } from '../../src/nix/hash.js';
import { parsePublicKey, type SecretKey } from '../../src/nix/signing.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import type { LocalStore } from '../../src/store/local-store.js';
import { fixtureKeys, freshStore, storeFromFixtureCache } from './cache-fixtures.js';
import { freshNixStore, nixCopyFrom, nixNarHashes, nixVerify } from './nix-peer.js';

let tmp: string;
let store: LocalStore;
let secret: SecretKey;
let publicKey: string;
const roots = (): StorePath[] =>
  [
    fixtureDrv('chain.C').outputs.out!.path,
    fixtureDrv('multi').outputs.dev!.path,
    fixtureDrv('single').outputs.out!.path,
    fixtureDrv('fod.flat').outputs.out!.path,
    fixtureDrv('fod.recursive').outputs.out!.path,
    fixtureDrv('chain.C').drvPath,
  ].map(parseStorePath);

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lazystore-export-'));
  store = await storeFromFixtureCache(tmp, roots());
  ({ secret, publicKey } = await fixtureKeys());
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.each([
  ['xz', true],
  ['zstd', false],
  ['bzip2', false],
  ['none', true],
] as const)('export with %s compression (signed: %s)', (compression, signed) => {
  it('is accepted by nix copy --from, verifies, and NAR hashes match', async () => {
    const dir = await mkdtemp(join(tmp, `cache-${compression}-`));
    const result = await exportCache(store, roots(), { dir, compression, signingKey: signed ? secret : undefined });
    const closure = await store.closure(roots());
    expect(new Set(result.written)).toEqual(new Set(closure));

    const ext = { xz: '.nar.xz', zstd: '.nar.zst', bzip2: '.nar.bz2', none: '.nar' }[compression];
    const nars = await readdir(join(dir, 'nar'));
    expect(nars.length).toBe(closure.length);
    expect(nars.every((n) => n.endsWith(ext) && !n.startsWith('.tmp'))).toBe(true);
    const info = parseNarInfo(await readFile(join(dir, `${roots()[0]!.slice(11, 43)}.narinfo`), 'utf8'));
    expect(info.compression).toBe(compression);
    expect(info.fileHash).toBeDefined();
    expect(info.sigs.length).toBe(signed ? 1 : 0);

    const nixStore = await freshNixStore(tmp);
    await nixCopyFrom(`file://${dir}`, nixStore, roots(), signed ? { publicKey } : {});
    await nixVerify(nixStore);
    const hashes = await nixNarHashes(nixStore, roots());
    expect(hashes.size).toBe(closure.length);
    const manifest = allOutputs();
    for (const p of closure) {
      // busybox and .drv files are not outputs in the manifest; the store's hash came from Nix's cache.
      const want = manifest.get(p)?.narHash ?? formatHash((await store.queryPathInfo(p))!.narHash);
      expect(hashes.get(p), p).toBe(want);
    }
  });
});

describe('export details', () => {
  it('skips paths already in the cache and our signature verifies under the public key', async () => {
    const dir = await mkdtemp(join(tmp, 'cache-again-'));
    await exportCache(store, roots(), { dir, compression: 'none', signingKey: secret });
    const again = await exportCache(store, roots(), { dir, compression: 'none', signingKey: secret });
    expect(again.written).toEqual([]);
    const cache = await openBinaryCache(`file://${dir}`);
    const subs = new Substituters([cache], { trustedKeys: [parsePublicKey(publicKey)] });
    const other = await freshStore(tmp);
    const copied = await copyClosure(other, subs, roots());
    expect(copied.imported.length).toBe((await store.closure(roots())).length);
  });

  it('unsigned, it is refused by nix copy when signatures are checked (the signed runs mean something)', async () => {
    const dir = await mkdtemp(join(tmp, 'cache-unsigned-'));
    await exportCache(store, roots(), { dir, compression: 'none' });
    const nixStore = await freshNixStore(tmp);
    await expect(nixCopyFrom(`file://${dir}`, nixStore, [roots()[0]!], { publicKey })).rejects.toThrow(/signature/);
  });

  it('refuses a path that is not valid', async () => {
    const dir = await mkdtemp(join(tmp, 'cache-invalid-'));
    const p = parseStorePath('/nix/store/00000000000000000000000000000000-absent');
    await expect(exportCache(store, [p], { dir })).rejects.toMatchObject({ code: expect.stringMatching(/INVALID|NOT_VALID/) });
  });
});
