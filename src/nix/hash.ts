/** Hashes as Nix prints and parses them: `algo:nix32`, `algo:hex`, `algo:base64`, SRI `algo-base64`. */
import { createHash, type Hash as NodeHash } from 'node:crypto';
import { LazyError } from '../errors.js';
import { decodeNix32, encodeNix32, nix32Length } from './nixbase32.js';

export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';
export type HashForm = 'nix32' | 'hex' | 'base64' | 'sri';

export interface Hash {
  readonly algo: HashAlgo;
  readonly digest: Buffer;
}

export const HASH_SIZE: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export function isHashAlgo(s: string): s is HashAlgo {
  return s === 'md5' || s === 'sha1' || s === 'sha256' || s === 'sha512';
}

export function hashOf(algo: HashAlgo, data: Uint8Array | string): Hash {
  return { algo, digest: createHash(algo).update(data).digest() };
}

/** Incremental hashing over a stream of chunks. */
export class StreamingHash {
  readonly algo: HashAlgo;
  private readonly h: NodeHash;
  size = 0;
  constructor(algo: HashAlgo) {
    this.algo = algo;
    this.h = createHash(algo);
  }
  update(chunk: Uint8Array): this {
    this.h.update(chunk);
    this.size += chunk.length;
    return this;
  }
  digest(): Hash {
    return { algo: this.algo, digest: this.h.digest() };
  }
}

/**
 * Parses any form Nix accepts. `algo` is required when `s` carries no algorithm prefix, and
 * must match when it does. The encoding is told apart by length, as in Nix.
 */
export function parseHash(s: string, algo?: HashAlgo): Hash {
  let a: string | undefined = algo;
  let rest = s;
  let sri = false;
  const colon = s.indexOf(':');
  const dash = s.indexOf('-');
  if (colon > 0) {
    a = s.slice(0, colon);
    rest = s.slice(colon + 1);
  } else if (dash > 0 && isHashAlgo(s.slice(0, dash))) {
    a = s.slice(0, dash);
    rest = s.slice(dash + 1);
    sri = true;
  }
  if (a === undefined || !isHashAlgo(a)) {
    throw new LazyError('HASH_INVALID', `hash '${s}' has ${a === undefined ? 'no' : `unknown algorithm '${a}' as its`} type`);
  }
  if (algo !== undefined && a !== algo) {
    throw new LazyError('HASH_INVALID', `hash '${s}' should have type '${algo}'`);
  }
  const size = HASH_SIZE[a];
  let digest: Buffer | undefined;
  if (!sri && rest.length === size * 2 && /^[0-9a-fA-F]+$/.test(rest)) digest = Buffer.from(rest, 'hex');
  else if (!sri && rest.length === nix32Length(size)) digest = decodeNix32(rest);
  else if (rest.length === Math.ceil(size / 3) * 4 && /^[A-Za-z0-9+/]+=*$/.test(rest)) {
    digest = Buffer.from(rest, 'base64');
    if (digest.length !== size) digest = undefined;
  }
  if (digest === undefined) throw new LazyError('HASH_INVALID', `hash '${s}' has wrong length for hash type '${a}'`);
  return { algo: a, digest };
}

export function formatHash(h: Hash, form: HashForm = 'nix32', withAlgo = true): string {
  switch (form) {
    case 'sri':
      return `${h.algo}-${h.digest.toString('base64')}`;
    case 'hex':
      return (withAlgo ? `${h.algo}:` : '') + h.digest.toString('hex');
    case 'base64':
      return (withAlgo ? `${h.algo}:` : '') + h.digest.toString('base64');
    case 'nix32':
      return (withAlgo ? `${h.algo}:` : '') + encodeNix32(h.digest);
  }
}

export function hashEquals(a: Hash, b: Hash): boolean {
  return a.algo === b.algo && a.digest.equals(b.digest);
}

/** Nix's compressHash: xor-fold a digest down to `size` bytes (store paths use 20). */
export function compressHash(digest: Uint8Array, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < digest.length; i++) out[i % size] = out[i % size]! ^ digest[i]!;
  return out;
}
