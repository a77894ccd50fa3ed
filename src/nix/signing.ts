/**
 * Nix's detached ed25519 signatures: keys are `name:base64`, the secret key is 64 bytes
 * (seed ‖ public key, as libsodium stores it), the public key 32 bytes, a signature is
 * `name:base64(64-byte signature)` over the fingerprint text.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { LazyError } from '../errors.js';

export interface SecretKey {
  readonly name: string;
  readonly key: KeyObject;
  /** The matching public key, `name:base64`. */
  readonly publicKey: string;
}

export interface PublicKey {
  readonly name: string;
  readonly key: KeyObject;
  /** The 32 raw key bytes. */
  readonly raw: Buffer;
}

// DER prefixes that wrap a raw ed25519 seed / public key as PKCS#8 / SPKI (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function splitKey(s: string, what: string): { name: string; bytes: Buffer } {
  const t = s.trim();
  const colon = t.indexOf(':');
  if (colon <= 0) throw new LazyError('SIG_BAD_KEY', `${what} '${abbrev(t)}' is not of the form name:base64`);
  const b64 = t.slice(colon + 1);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new LazyError('SIG_BAD_KEY', `${what} '${t.slice(0, colon)}' is not valid base64`);
  }
  return { name: t.slice(0, colon), bytes: Buffer.from(b64, 'base64') };
}

function abbrev(s: string): string {
  return s.length > 40 ? s.slice(0, 37) + '...' : s;
}

function publicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Parses a secret key file's contents (`name:base64(seed ‖ public)`). */
export function parseSecretKey(s: string): SecretKey {
  const { name, bytes } = splitKey(s, 'secret key');
  if (bytes.length !== 64) throw new LazyError('SIG_BAD_KEY', `secret key '${name}' has ${bytes.length} bytes, expected 64`);
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, bytes.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
  const derived = createPublicKey(key).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
  if (!derived.equals(bytes.subarray(32))) {
    throw new LazyError('SIG_BAD_KEY', `secret key '${name}': its public half does not match its seed`);
  }
  return { name, key, publicKey: `${name}:${derived.toString('base64')}` };
}

/** Parses a public key (`name:base64(32 bytes)`), as in `trusted-public-keys`. */
export function parsePublicKey(s: string): PublicKey {
  const { name, bytes } = splitKey(s, 'public key');
  if (bytes.length !== 32) throw new LazyError('SIG_BAD_KEY', `public key '${name}' has ${bytes.length} bytes, expected 32`);
  return { name, key: publicKeyObject(bytes), raw: bytes };
}

/** Signs `fingerprint`; returns `name:base64sig` as it goes on a narinfo `Sig:` line. */
export function signFingerprint(key: SecretKey, fingerprint: string): string {
  return `${key.name}:${sign(null, Buffer.from(fingerprint, 'utf8'), key.key).toString('base64')}`;
}

/** Splits `name:base64sig`; throws SIG_BAD_SIGNATURE when it is not 64 bytes of base64. */
export function parseSignature(sig: string): { name: string; bytes: Buffer } {
  const colon = sig.indexOf(':');
  const b64 = sig.slice(colon + 1);
  if (colon <= 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new LazyError('SIG_BAD_SIGNATURE', `signature '${abbrev(sig)}' is not of the form name:base64`);
  }
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length !== 64) {
    throw new LazyError('SIG_BAD_SIGNATURE', `signature by '${sig.slice(0, colon)}' has ${bytes.length} bytes, expected 64`);
  }
  return { name: sig.slice(0, colon), bytes };
}

/**
 * True when `sig` is a valid signature of `fingerprint` by one of `keys` (matched by name,
 * as Nix does). A malformed signature or one by an unknown key is simply not valid.
 */
export function verifyFingerprint(keys: Iterable<PublicKey>, fingerprint: string, sig: string): boolean {
  let parsed: { name: string; bytes: Buffer };
  try {
    parsed = parseSignature(sig);
  } catch {
    return false;
  }
  const data = Buffer.from(fingerprint, 'utf8');
  for (const k of keys) {
    if (k.name === parsed.name && verify(null, data, k.key, parsed.bytes)) return true;
  }
  return false;
}
