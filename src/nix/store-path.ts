/**
 * Store paths: `/nix/store/<32 nix32 chars>-<name>`, and how Nix computes the hash part.
 *
 * The hash part is nix32(compressHash(sha256(fingerprint), 20)) with fingerprint
 * `<type>:sha256:<hex inner digest>:/nix/store:<name>`. Checked against Nix 2.8: names are
 * 1–211 chars of [A-Za-z0-9+-._?=] (a leading '.' is accepted by Nix 2.8: `nix-store --add .foo`
 * works), the hash part is 32 nix32 chars.
 */
import { LazyError } from '../errors.js';
import { compressHash, formatHash, hashOf, type Hash } from './hash.js';
import { encodeNix32, isNix32Char } from './nixbase32.js';

export const STORE_DIR = '/nix/store';
export const HASH_PART_LENGTH = 32;
export const MAX_NAME_LENGTH = 211;

/** An absolute, validated store path `/nix/store/<hash>-<name>`; made only by the parsers below. */
export type StorePath = string & { readonly __brand: 'StorePath' };

const NAME_CHAR = /^[A-Za-z0-9+\-._?=]*$/;

/** Throws PATH_BAD_NAME / PATH_NAME_TOO_LONG when `name` cannot be a store path name. */
export function checkStoreName(name: string, where = name): void {
  if (name.length === 0) throw new LazyError('PATH_BAD_NAME', `store path '${where}' has an empty name`);
  if (name.length > MAX_NAME_LENGTH) {
    throw new LazyError('PATH_NAME_TOO_LONG', `store path '${where}' has a name longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (!NAME_CHAR.test(name)) {
    const bad = [...name].find((c) => !NAME_CHAR.test(c)) ?? '';
    throw new LazyError('PATH_BAD_NAME', `store path '${where}' contains illegal character '${bad}'`);
  }
}

/** Validates a base name `<hash>-<name>` and returns the absolute StorePath. */
export function parseStoreBaseName(base: string): StorePath {
  const known = validBases.get(base);
  if (known !== undefined) return known;
  const path = checkStoreBaseName(base);
  if (validBases.size >= MAX_VALID_BASES) validBases.clear();
  validBases.set(base, path);
  return path;
}

/**
 * Base names already checked, and their paths. A closure's narinfos name each path many times
 * (its own narinfo, every referrer's References, then the import and the registration), and
 * the character checks of 561 paths' references, four times over, were 5% of a substitution's
 * CPU profile. Bounded: emptied when full.
 */
const validBases = new Map<string, StorePath>();
const MAX_VALID_BASES = 100_000;

function checkStoreBaseName(base: string): StorePath {
  if (base.length < HASH_PART_LENGTH + 1) {
    throw new LazyError('PATH_BAD_HASH', `'${base}' is too short to be a valid store path`);
  }
  for (let i = 0; i < HASH_PART_LENGTH; i++) {
    const c = base[i]!;
    if (!isNix32Char(c)) {
      throw new LazyError('PATH_BAD_HASH', `store path '${base}' contains illegal base-32 character '${c}'`);
    }
  }
  if (base[HASH_PART_LENGTH] !== '-') {
    throw new LazyError('PATH_BAD_HASH', `store path '${base}' lacks a '-' after its hash part`);
  }
  checkStoreName(base.slice(HASH_PART_LENGTH + 1), base);
  return `${STORE_DIR}/${base}` as StorePath;
}

/** Validates an absolute store path (no trailing components). */
export function parseStorePath(s: string): StorePath {
  const prefix = STORE_DIR + '/';
  if (!s.startsWith(prefix)) throw new LazyError('PATH_NOT_IN_STORE', `path '${s}' is not in the Nix store`);
  const base = s.slice(prefix.length);
  if (base.includes('/')) throw new LazyError('PATH_NOT_IN_STORE', `path '${s}' is not a store path (it is inside one)`);
  return parseStoreBaseName(base);
}

export function isStorePath(s: string): s is StorePath {
  try {
    parseStorePath(s);
    return true;
  } catch {
    return false;
  }
}

/**
 * Splits `/nix/store/<base>/a/b` into the store path and the rest relative to it
 * (`'a/b'`; `''` for the store path itself).
 */
export function splitStorePath(abs: string): { storePath: StorePath; rest: string } {
  const prefix = STORE_DIR + '/';
  if (!abs.startsWith(prefix)) throw new LazyError('PATH_NOT_IN_STORE', `path '${abs}' is not in the Nix store`);
  const tail = abs.slice(prefix.length);
  const slash = tail.indexOf('/');
  const base = slash < 0 ? tail : tail.slice(0, slash);
  const rest = slash < 0 ? '' : tail.slice(slash + 1).replace(/\/+$/, '');
  return { storePath: parseStoreBaseName(base), rest };
}

/** The 32-char nix32 hash part. */
export function hashPart(p: StorePath): string {
  return p.slice(STORE_DIR.length + 1, STORE_DIR.length + 1 + HASH_PART_LENGTH);
}

/** The name after `<hash>-`. */
export function nameOf(p: StorePath): string {
  return p.slice(STORE_DIR.length + 2 + HASH_PART_LENGTH);
}

/** `<hash>-<name>`. */
export function baseName(p: StorePath): string {
  return p.slice(STORE_DIR.length + 1);
}

/** Nix's makeStorePath: `type` is e.g. `text:/nix/store/…`, `source`, `output:out`. */
export function makeStorePath(type: string, innerHash: Hash, name: string): StorePath {
  checkStoreName(name);
  const fingerprint = `${type}:${formatHash(innerHash, 'hex')}:${STORE_DIR}:${name}`;
  const digest = hashOf('sha256', fingerprint).digest;
  return `${STORE_DIR}/${encodeNix32(compressHash(digest, 20))}-${name}` as StorePath;
}

/** `<type>:<ref>…[:self]`, references sorted as Nix's StorePathSet sorts them (bytewise). */
function makeType(type: string, refs: Iterable<string>, self: boolean): string {
  let s = type;
  for (const r of [...new Set(refs)].sort(compareBytewise)) s += ':' + parseStorePath(r);
  if (self) s += ':self';
  return s;
}

function compareBytewise(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A text path (`builtins.toFile`, `.drv` files): sha256 of the contents, references allowed. */
export function makeTextPath(name: string, sha256: Hash, refs: Iterable<string> = []): StorePath {
  if (sha256.algo !== 'sha256') throw new LazyError('PATH_BAD_CA', `text paths need a sha256 hash, got ${sha256.algo}`);
  return makeStorePath(makeType('text', refs, false), sha256, name);
}

export type FileIngestionMethod = 'flat' | 'recursive' | 'text';

/**
 * A content-addressed path. recursive+sha256 → `source` type over the NAR hash (references
 * allowed); any other fixed output → `output:out` over sha256(`fixed:out:[r:]<algo>:<hex>:`),
 * which cannot have references; `text` → makeTextPath.
 */
export function makeFixedOutputPath(
  name: string,
  ca: { method: FileIngestionMethod; hash: Hash },
  refs: Iterable<string> = [],
  self = false,
): StorePath {
  const { method, hash } = ca;
  if (method === 'text') {
    if (self) throw new LazyError('PATH_BAD_CA', 'text paths cannot refer to themselves');
    return makeTextPath(name, hash, refs);
  }
  if (method === 'recursive' && hash.algo === 'sha256') {
    return makeStorePath(makeType('source', refs, self), hash, name);
  }
  const refList = [...refs];
  if (refList.length > 0 || self) {
    throw new LazyError('PATH_BAD_CA', `fixed-output path '${name}' (${method}, ${hash.algo}) cannot have references`);
  }
  const inner = hashOf('sha256', `fixed:out:${method === 'recursive' ? 'r:' : ''}${formatHash(hash, 'hex')}:`);
  return makeStorePath('output:out', inner, name);
}

/** The name of an output path: `<drvName>` for `out`, else `<drvName>-<outputName>`. */
export function outputPathName(drvName: string, outputName: string): string {
  return outputName === 'out' ? drvName : `${drvName}-${outputName}`;
}

/** An input-addressed output path; `hashModulo` is the sha256 digest from hashDerivationModulo. */
export function makeOutputPath(drvName: string, outputName: string, hashModulo: Buffer): StorePath {
  return makeStorePath(`output:${outputName}`, { algo: 'sha256', digest: hashModulo }, outputPathName(drvName, outputName));
}
