/** The one errno mapping: codes, not messages, decide; unknown failures are EIO and logged. */
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { LazyError } from '../../src/errors.js';
import { toErrno } from '../../src/fuse/errno.js';

const E = constants.errno;

describe('toErrno', () => {
  it.each([
    ['FUSE_NOT_FOUND', E.ENOENT],
    ['REALISE_NOT_FOUND', E.ENOENT],
    ['PATH_BAD_HASH', E.ENOENT],
    ['FUSE_READ_ONLY', E.EROFS],
    ['FUSE_STALE', E.ESTALE],
    ['FUSE_NOT_DIR', E.ENOTDIR],
    ['FUSE_NO_XATTR', E.ENODATA],
    ['FUSE_NAME_TOO_LONG', E.ENAMETOOLONG],
    ['BUILD_FAILED', E.EIO],
    ['BUILD_TIMEOUT', E.EIO],
    ['SUBST_NAR_HASH_MISMATCH', E.EIO],
    ['ABORTED', E.EIO],
  ])('%s → %i', (code, errno) => {
    expect(toErrno(new LazyError(code, 'x'), 'op', '/p')).toBe(-errno);
  });

  it('passes the backing store errno through and turns anything else into a logged EIO', () => {
    const enoent = Object.assign(new Error('gone'), { code: 'ENOENT' });
    expect(toErrno(enoent, 'getattr', '/a')).toBe(-E.ENOENT);
    const logged: string[] = [];
    expect(toErrno(new Error('boom'), 'read', '/b', (l) => logged.push(l))).toBe(-E.EIO);
    expect(toErrno(new LazyError('BUILD_FAILED', 'builder exited 3'), 'open', '/c', (l) => logged.push(l))).toBe(-E.EIO);
    expect(logged).toEqual(['read /b: EIO: boom', 'open /c: EIO: BUILD_FAILED: builder exited 3']);
  });
});
