/**
 * Trust without a signature: a path whose `CA:` field, with its references, recomputes to the
 * path itself needs none (Nix's ValidPathInfo::isContentAddressed). The store then checks the
 * contents against that content address while importing (store/content-address.ts).
 */
import type { NarInfo } from '../nix/narinfo.js';
import { makeFixedOutputPath, nameOf, parseStoreBaseName } from '../nix/store-path.js';
import { parseContentAddress } from '../store/content-address.js';

/** True when `info.ca` is present and, with the references, makes exactly `info.storePath`. */
export function isContentAddressedPath(info: NarInfo): boolean {
  if (info.ca === undefined) return false;
  try {
    const ca = parseContentAddress(info.ca);
    const refs = info.references.map((r) => parseStoreBaseName(r));
    const self = refs.includes(info.storePath);
    return makeFixedOutputPath(nameOf(info.storePath), ca, refs.filter((r) => r !== info.storePath), self) === info.storePath;
  } catch {
    return false; // unparsable, or e.g. a flat hash with references: cannot be that path
  }
}
