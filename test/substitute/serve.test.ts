/**
 * `serve`: real `nix copy --from http://127.0.0.1:PORT` out of our store into a fresh chroot
 * store, signed on the fly or not; then `nix-store --verify --check-contents` and NAR hashes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allOutputs, fixtureDrv } from '../helpers/fixtures.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { Substituters } from '../../src/substitute/substituters.js';
import { copyClosure } from '../../src/substitute/copy-closure.js';
import { serveStore } from '../../src/substitute/serve.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
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
  [fixtureDrv('chain.C').outputs.out!.path, fixtureDrv('multi').outputs.dev!.path, fixtureDrv('single').outputs.out!.path, fixtureDrv('fod.flat').outputs.out!.path].map(
    parseStorePath,
  );

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'lazystore-serve-'));
  store = await storeFromFixtureCache(tmp, roots());
  ({ secret, publicKey } = await fixtureKeys());
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.each([
  ['signed on the fly', true],
  ['unsigned', false],
])('serve (%s)', (_n, signed) => {
  it('nix copy --from http:// succeeds, verifies, and NAR hashes match', async () => {
    const server = await serveStore(store, '127.0.0.1:0', signed ? { signingKey: secret } : {});
    try {
      const nixStore = await freshNixStore(tmp);
      await nixCopyFrom(server.url, nixStore, roots(), signed ? { publicKey } : {});
      await nixVerify(nixStore);
      const hashes = await nixNarHashes(nixStore, roots());
      const closure = await store.closure(roots());
      expect(hashes.size).toBe(closure.length);
      for (const p of roots()) expect(hashes.get(p)).toBe(allOutputs().get(p)!.narHash);
    } finally {
      await server.close();
    }
  });
});

describe('serve routes', () => {
  it('answers nix-cache-info, narinfo, NAR, HEAD, 404s and logs', async () => {
    const server = await serveStore(store, '127.0.0.1:0', { signingKey: secret });
    try {
      const get = (p: string, method = 'GET') => fetch(`${server.url}/${p}`, { method });
      expect(await (await get('nix-cache-info')).text()).toMatch(/^StoreDir: \/nix\/store\n/);
      const p = roots()[2]!;
      const res = await get(`${p.slice(11, 43)}.narinfo`);
      const info = parseNarInfo(await res.text());
      expect(info.storePath).toBe(p);
      expect(info.compression).toBe('none');
      expect(info.sigs).toHaveLength(1);
      const nar = Buffer.from(await (await get(info.url)).arrayBuffer());
      expect(nar.length).toBe(info.narSize);
      expect((await get(info.url, 'HEAD')).headers.get('content-length')).toBe(String(info.narSize));
      expect((await get('00000000000000000000000000000000.narinfo')).status).toBe(404);
      expect((await get(`nar/${p.slice(11, 43)}-0000000000000000000000000000000000000000000000000000.nar`)).status).toBe(404);
      expect((await get('../etc/passwd')).status).toBe(404);
      expect((await get('nix-cache-info', 'POST')).status).toBe(405);
      // A build log, where the store keeps them.
      const drv = fixtureDrv('chain.C').drvPath.slice(11);
      await mkdir(store.layout.logDir, { recursive: true });
      await writeFile(store.logPath(drv), 'building chain C\n');
      expect(await (await get(`log/${drv}`)).text()).toBe('building chain C\n');
      expect((await get('log/absent.drv')).status).toBe(404);
      // Our own substituter reads it back, signature checked.
      const cache = await openBinaryCache(server.url);
      expect(cache.wantMassQuery).toBe(true);
      const other = await freshStore(tmp);
      const subs = new Substituters([cache], { trustedKeys: [parsePublicKey(publicKey)] });
      const copied = await copyClosure(other, subs, roots());
      expect(copied.imported.length).toBe((await store.closure(roots())).length);
    } finally {
      await server.close();
    }
  });
});
