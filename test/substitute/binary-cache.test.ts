/**
 * BinaryCache against real caches written by Nix 2.8 (the fixtures), over file:// and over a
 * real nginx: narinfo lookups, decompressed NARs byte-identical to `nix-store --dump`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, manifest } from '../helpers/fixtures.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath } from '../../src/nix/store-path.js';
import { startNginx, type Nginx } from './nginx.js';

let nginx: Nginx;
beforeAll(async () => {
  nginx = await startNginx(FIXTURES);
});
afterAll(async () => {
  await nginx?.stop();
});

const single = () => manifest().derivations.find((d) => d.label === 'single')!.outputs.out!;

async function sha256Nix32(stream: AsyncIterable<Buffer>): Promise<{ hash: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    h.update(c);
    size += c.length;
  }
  return { hash: formatHash({ algo: 'sha256', digest: h.digest() }), size };
}

describe.each([
  ['file:// xz', () => `file://${FIXTURES}/cache`],
  ['file:// none', () => `file://${FIXTURES}/cache-none-signed`],
  ['http xz', () => `${nginx.url}/cache`],
  ['http none', () => `${nginx.url}/cache-none-signed`],
])('BinaryCache %s', (_name, url) => {
  it('reads nix-cache-info', async () => {
    const cache = await openBinaryCache(url());
    expect(cache.priority).toBe(50);
    expect(cache.wantMassQuery).toBe(false);
  });

  it('returns the narinfo and a NAR whose hash and size match the manifest', async () => {
    const cache = await openBinaryCache(url());
    const out = single();
    const info = await cache.getNarInfo(parseStorePath(out.path));
    expect(info?.storePath).toBe(out.path);
    expect(formatHash(info!.narHash)).toBe(out.narHash);
    const got = await sha256Nix32(await cache.getNar(info!));
    expect(got).toEqual({ hash: out.narHash, size: out.narSize });
  });

  it('answers undefined for a path it does not have', async () => {
    const cache = await openBinaryCache(url());
    const p = parseStorePath('/nix/store/00000000000000000000000000000000-absent');
    expect(await cache.getNarInfo(p)).toBeUndefined();
  });
});

describe('BinaryCache errors', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lazystore-bc-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a cache for another store directory', async () => {
    await mkdir(join(dir, 'other'));
    await writeFile(join(dir, 'other', 'nix-cache-info'), 'StoreDir: /gnu/store\nPriority: 10\n');
    await expect(openBinaryCache(`file://${dir}/other`)).rejects.toMatchObject({ code: 'SUBST_STORE_DIR' });
  });

  it('refuses a directory that is not a cache', async () => {
    await expect(openBinaryCache(`file://${dir}`)).rejects.toMatchObject({ code: 'SUBST_NO_CACHE' });
    await expect(openBinaryCache(`${nginx.url}/drvs`)).rejects.toMatchObject({ code: 'SUBST_NO_CACHE' });
  });

  it('reads Priority and WantMassQuery, and ?priority= overrides', async () => {
    await mkdir(join(dir, 'prio'));
    await writeFile(join(dir, 'prio', 'nix-cache-info'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
    const c = await openBinaryCache(`file://${dir}/prio`);
    expect([c.priority, c.wantMassQuery]).toEqual([30, true]);
    expect((await openBinaryCache(`file://${dir}/prio?priority=7`)).priority).toBe(7);
  });

  it('remembers a miss (negative TTL) and a hit', async () => {
    await mkdir(join(dir, 'neg'));
    await writeFile(join(dir, 'neg', 'nix-cache-info'), 'StoreDir: /nix/store\n');
    const out = single();
    const p = parseStorePath(out.path);
    const hash = out.path.slice(11, 43);
    const cache = await openBinaryCache(`file://${dir}/neg`);
    expect(await cache.getNarInfo(p)).toBeUndefined();
    // The narinfo appears after the miss: still a miss until the negative TTL expires.
    const { readFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'neg', `${hash}.narinfo`), await readFile(join(FIXTURES, 'cache', `${hash}.narinfo`)));
    expect(await cache.getNarInfo(p)).toBeUndefined();
    const fresh = await openBinaryCache(`file://${dir}/neg`, { negativeTtlMs: 1 });
    expect(await fresh.getNarInfo(p)).toBeDefined();
    cache.forget(p);
    expect(await cache.getNarInfo(p)).toBeDefined();
  });

  it('rejects a narinfo URL that escapes the cache', async () => {
    const cache = await openBinaryCache(`file://${FIXTURES}/cache`);
    const info = (await cache.getNarInfo(parseStorePath(single().path)))!;
    await expect(cache.getNar({ ...info, url: '../keys/secret.key' })).rejects.toMatchObject({ code: 'SUBST_BAD_URL' });
    await expect(cache.getNar({ ...info, url: 'nar/absent.nar.xz' })).rejects.toMatchObject({ code: 'SUBST_NAR_MISSING' });
  });
});
