/**
 * fuse-native op table: adapters only. Each op calls the StoreView and maps failures through
 * toErrno; no logic lives here. Every write op answers EROFS (the mount is also `ro`).
 */
import { ERRNO, toErrno } from './errno.js';
import type { FuseOps } from './fuse-native.js';
import { storeStatfs } from './store-statfs.js';
import type { StoreView } from './store-view.js';

const WRITE_OPS = [
  'write', 'create', 'truncate', 'ftruncate', 'utimens', 'chown', 'chmod', 'mknod', 'setxattr',
  'removexattr', 'unlink', 'rename', 'link', 'symlink', 'mkdir', 'rmdir',
] as const;

export function makeOps(view: StoreView, opts: { stateDir: string; log: (line: string) => void }): FuseOps {
  const fail = (op: string, path: string) => (e: unknown) => toErrno(e, op, path, opts.log);
  const ops: FuseOps = {
    getattr: (path, cb) => void view.getattr(path).then((st) => cb(0, st), (e: unknown) => cb(fail('getattr', path)(e))),
    readlink: (path, cb) => void view.readlink(path).then((t) => cb(0, t), (e: unknown) => cb(fail('readlink', path)(e))),
    readdir: (path, cb) => void view.readdir(path).then((n) => cb(0, n), (e: unknown) => cb(fail('readdir', path)(e))),
    open: (path, flags, cb) => void view.open(path, flags).then((h) => cb(0, h), (e: unknown) => cb(fail('open', path)(e))),
    opendir: (path, _flags, cb) => void view.opendir(path).then(() => cb(0, 0), (e: unknown) => cb(fail('opendir', path)(e))),
    read: (path, fh, buf, len, pos, cb) => void view.handles.read(fh, buf, len, pos).then(cb, (e: unknown) => cb(fail('read', path)(e))),
    release: (_path, fh, cb) => void view.handles.release(fh).then(() => cb(0), () => cb(0)),
    releasedir: (_path, _fh, cb) => cb(0),
    getxattr: (path, name, _pos, cb) => void view.getxattr(path, name).then((v) => cb(0, v), (e: unknown) => cb(fail('getxattr', path)(e))),
    listxattr: (path, cb) => void view.listxattr(path).then((l) => cb(0, l), (e: unknown) => cb(fail('listxattr', path)(e))),
    access: (path, mode, cb) => {
      try {
        view.access(mode);
        cb(0);
      } catch (e) {
        cb(fail('access', path)(e));
      }
    },
    statfs: (_path, cb) =>
      void storeStatfs(opts.stateDir).then(
        (s) => {
          // fuse-native passes 32-bit fields: report in 4 KiB fragments, clamped.
          const clamp = (n: number) => Math.min(n, 0xffffffff);
          cb(0, {
            bsize: 4096, frsize: 4096, blocks: clamp((s.blocks * s.bsize) / 4096), bfree: 0, bavail: 0,
            files: clamp(s.files), ffree: 0, favail: 0, fsid: 0, flag: 1 /* ST_RDONLY */, namemax: s.namelen,
          });
        },
        (e: unknown) => cb(toErrno(e, 'statfs', opts.stateDir, opts.log)),
      ),
  };
  for (const name of WRITE_OPS) {
    ops[name] = (...args: unknown[]) => {
      const cb = args[args.length - 1] as (err: number) => void;
      cb(-ERRNO.EROFS);
    };
  }
  return ops;
}
