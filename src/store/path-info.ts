/**
 * What the store knows about a valid path, and its on-disk form: the narinfo syntax of a
 * binary cache (`info/<hash>.narinfo`), so the store can be served as a cache as it is.
 */
import { LazyError } from '../errors.js';
import { formatHash, type Hash } from '../nix/hash.js';
import type { NarInfo } from '../nix/narinfo.js';
import { baseName, parseStoreBaseName, parseStorePath, type StorePath } from '../nix/store-path.js';

export interface PathInfo {
  path: StorePath;
  /** sha256 of the path's NAR serialisation. */
  narHash: Hash;
  narSize: number;
  /** Absolute store paths this path's contents mention (may include itself). */
  references: StorePath[];
  deriver?: StorePath;
  /** Content address, as Nix writes it: `fixed:r:sha256:<nix32>`, `text:sha256:<nix32>`, … */
  ca?: string;
  /** `keyname:base64` ed25519 signatures over the narinfo fingerprint. */
  sigs: string[];
}

/**
 * The narinfo the store writes for a path: uncompressed, URL `nar/<nix32 narHash>.nar` (the
 * name `nix copy` gives an uncompressed NAR), FileHash/FileSize equal to the NAR's, and a
 * References line even when empty (a missing one silently means "none" to Nix 2.8).
 */
export function pathInfoToNarInfo(info: PathInfo): NarInfo {
  const narInfo: NarInfo = {
    storePath: info.path,
    url: `nar/${formatHash(info.narHash, 'nix32', false)}.nar`,
    compression: 'none',
    fileHash: info.narHash,
    fileSize: info.narSize,
    narHash: info.narHash,
    narSize: info.narSize,
    references: [...info.references].map((r) => baseName(r)).sort(),
    sigs: [...info.sigs],
    extra: [],
  };
  if (info.deriver !== undefined) narInfo.deriver = baseName(info.deriver);
  if (info.ca !== undefined) narInfo.ca = info.ca;
  return narInfo;
}

export function pathInfoFromNarInfo(narInfo: NarInfo, where?: string): PathInfo {
  try {
    const info: PathInfo = {
      path: parseStorePath(narInfo.storePath),
      narHash: narInfo.narHash,
      narSize: narInfo.narSize,
      references: narInfo.references.map((r) => parseStoreBaseName(r)).sort(),
      sigs: [...narInfo.sigs],
    };
    if (narInfo.deriver !== undefined && narInfo.deriver !== '' && narInfo.deriver !== 'unknown-deriver') {
      info.deriver = parseStoreBaseName(narInfo.deriver);
    }
    if (narInfo.ca !== undefined && narInfo.ca !== '') info.ca = narInfo.ca;
    return info;
  } catch (e) {
    throw new LazyError('STORE_BAD_INFO', `invalid path metadata${where === undefined ? '' : ` in ${where}`}: ${(e as Error).message}`, {
      cause: e,
      details: { where },
    });
  }
}

/** The shape of one element of `nix path-info --json` (Nix 2.8), minus registrationTime/ultimate. */
export interface PathInfoJson {
  path: string;
  narHash: string;
  narSize: number;
  references: string[];
  ca?: string;
  deriver?: string;
  signatures?: string[];
}

export function pathInfoToJson(info: PathInfo): PathInfoJson {
  const json: PathInfoJson = {
    path: info.path,
    narHash: formatHash(info.narHash, 'sri'),
    narSize: info.narSize,
    references: [...info.references].sort(),
  };
  if (info.ca !== undefined) json.ca = info.ca;
  if (info.deriver !== undefined) json.deriver = info.deriver;
  if (info.sigs.length > 0) json.signatures = [...info.sigs];
  return json;
}

/** Two infos describe the same contents (what a second registration must agree on). */
export function sameContents(a: PathInfo, b: PathInfo): boolean {
  return (
    a.path === b.path &&
    a.narSize === b.narSize &&
    a.narHash.algo === b.narHash.algo &&
    a.narHash.digest.equals(b.narHash.digest)
  );
}
