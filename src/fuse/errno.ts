/**
 * The one place where errors become errno values for the kernel. fuse-native wants negative
 * numbers; every op adapter passes its failure through `toErrno`.
 */
import { constants } from 'node:os';
import { isLazyError } from '../errors.js';

const E = constants.errno;

/** LazyError codes raised by src/fuse itself, with their errno. */
const FUSE_CODES: Readonly<Record<string, number>> = {
  FUSE_NOT_FOUND: E.ENOENT,
  FUSE_READ_ONLY: E.EROFS,
  FUSE_STALE: E.ESTALE,
  FUSE_NOT_DIR: E.ENOTDIR,
  FUSE_NOT_LINK: E.EINVAL,
  FUSE_NO_XATTR: E.ENODATA,
  FUSE_BAD_HANDLE: E.EBADF,
  FUSE_NAME_TOO_LONG: E.ENAMETOOLONG,
  FUSE_SHUTDOWN: E.EIO,
  FUSE_XATTR_RANGE: E.ERANGE,
};

/** Codes of other layers that mean "this path does not exist here" rather than "it broke". */
function isNotFound(code: string): boolean {
  return code.endsWith('_NOT_FOUND') || code.endsWith('_UNKNOWN_PATH') || code === 'STORE_NOT_VALID' || code.startsWith('PATH_');
}

/** Node's fs errors that we pass through unchanged (the backing store's own answer). */
const PASSTHROUGH = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG', 'EINVAL', 'EACCES', 'EBADF', 'EMFILE', 'ENFILE']);

export type ErrnoLogger = (message: string) => void;

/**
 * errno (negative) for `e`. Anything that is not a plain "not found" is logged with its reason,
 * so an EIO a reader sees always has a line in the daemon log explaining it.
 */
export function toErrno(e: unknown, op: string, path: string, log?: ErrnoLogger): number {
  if (isLazyError(e)) {
    const fuse = FUSE_CODES[e.code];
    if (fuse !== undefined) return -fuse;
    if (isNotFound(e.code)) return -E.ENOENT;
    log?.(`${op} ${path}: EIO: ${e.code}: ${e.message}`);
    return -E.EIO; // failed builds, substitutions, timeouts, cancellations
  }
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && PASSTHROUGH.has(code)) {
    const n = (E as Record<string, number | undefined>)[code];
    if (n !== undefined) return -n;
  }
  log?.(`${op} ${path}: EIO: ${e instanceof Error ? e.message : String(e)}`);
  return -E.EIO;
}

/** errno constants the view and adapters name directly. */
export const ERRNO = { ENOENT: E.ENOENT, EROFS: E.EROFS, ESTALE: E.ESTALE, ENODATA: E.ENODATA, EIO: E.EIO } as const;
