/**
 * Extended attributes on a store path's root entry: its metadata for valid paths, the failure
 * for paths whose realisation failed; and on the mount root, one `user.lazystore.error.<name>`
 * per remembered failure (where a failed path's own lookup answers EIO, its entry cannot carry
 * one). Values are UTF-8 text.
 */
import { formatHash } from '../nix/hash.js';
import type { PathInfo } from '../store/path-info.js';

export const XATTR_NAR_HASH = 'user.lazystore.narHash';
export const XATTR_DERIVER = 'user.lazystore.deriver';
export const XATTR_REFERENCES = 'user.lazystore.references';
export const XATTR_ERROR = 'user.lazystore.error';
/** On the mount root: `user.lazystore.error.<hash>-<name>` → why that path failed. */
export const XATTR_ERROR_PREFIX = `${XATTR_ERROR}.`;

/** Name → value; references are space-separated absolute paths, like `nix-store -q --references`. */
export function pathXattrs(info: PathInfo | undefined, failure: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (info) {
    m.set(XATTR_NAR_HASH, formatHash(info.narHash, 'nix32'));
    if (info.deriver !== undefined) m.set(XATTR_DERIVER, info.deriver);
    m.set(XATTR_REFERENCES, [...info.references].sort().join(' '));
  } else if (failure !== undefined) {
    m.set(XATTR_ERROR, failure);
  }
  return m;
}

/** The mount root's attributes: the recent failures, by store path name. */
export function rootXattrs(failures: Iterable<[base: string, message: string]>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [base, message] of failures) m.set(XATTR_ERROR_PREFIX + base, message);
  return m;
}
