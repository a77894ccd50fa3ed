/** Test helpers: fresh stores, and small binary caches derived from the fixtures' caches. */
import { copyFile, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/fixtures.js';
import { LocalStore } from '../../src/store/local-store.js';
import { parseNarInfo, formatNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import { StreamingHash } from '../../src/nix/hash.js';
import { parseSecretKey, type SecretKey } from '../../src/nix/signing.js';
import type { StorePath } from '../../src/nix/store-path.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { copyClosure } from '../../src/substitute/copy-closure.js';
import { Substituters } from '../../src/substitute/substituters.js';

export async function freshStore(parent: string): Promise<LocalStore> {
  return LocalStore.open(await mkdtemp(join(parent, 'state-')));
}

/** Everything under the store's store/ and tmp/ (nothing may be left by a failed import). */
export async function storeLeftovers(store: LocalStore): Promise<string[]> {
  return [...(await readdir(store.layout.storeDir)), ...(await readdir(store.layout.tmpDir))];
}

export function hashOfPath(p: string): string {
  return p.slice(11, 43);
}

/**
 * A new cache in `parent` holding copies of `paths`' narinfos and NARs from the fixture cache
 * `from` ('cache' or 'cache-none-signed'); `mutate` may change a narinfo and its NAR bytes.
 */
export async function derivedCache(
  parent: string,
  from: 'cache' | 'cache-none-signed',
  paths: string[],
  mutate?: (info: NarInfo, nar: Buffer) => { info: NarInfo; nar: Buffer } | void,
): Promise<string> {
  const dir = await mkdtemp(join(parent, 'cache-'));
  await mkdir(join(dir, 'nar'));
  await copyFile(join(FIXTURES, from, 'nix-cache-info'), join(dir, 'nix-cache-info'));
  for (const p of paths) {
    const info = parseNarInfo(await readFile(join(FIXTURES, from, `${hashOfPath(p)}.narinfo`), 'utf8'));
    const nar = await readFile(join(FIXTURES, from, info.url));
    const changed = mutate?.(info, nar) ?? { info, nar };
    await writeFile(join(dir, changed.info.url), changed.nar);
    await writeFile(join(dir, `${hashOfPath(p)}.narinfo`), formatNarInfo(changed.info));
  }
  return dir;
}

export function narHashOf(nar: Buffer): StreamingHash {
  return new StreamingHash('sha256').update(nar);
}

/** NAR string token: u64-LE length, bytes, zero padding to 8. */
export function narStr(s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  return Buffer.concat([len, b, Buffer.alloc((8 - (b.length % 8)) % 8)]);
}

/** A fresh store under `parent` holding the closure of `roots`, substituted from the fixtures' unsigned cache. */
export async function storeFromFixtureCache(parent: string, roots: StorePath[]): Promise<LocalStore> {
  const store = await freshStore(parent);
  const subs = new Substituters([await openBinaryCache(`file://${FIXTURES}/cache`)], { requireSigs: false });
  await copyClosure(store, subs, roots);
  return store;
}

/** The fixtures' signing key pair (keys/secret.key, keys/public.key as `name:base64`). */
export async function fixtureKeys(): Promise<{ secret: SecretKey; publicKey: string }> {
  return {
    secret: parseSecretKey(await readFile(join(FIXTURES, 'keys', 'secret.key'), 'utf8')),
    publicKey: (await readFile(join(FIXTURES, 'keys', 'public.key'), 'utf8')).trim(),
  };
}
