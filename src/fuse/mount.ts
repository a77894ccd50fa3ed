/**
 * Mount a StoreView, clear a stale mount left by a killed daemon, unmount. Two ways to speak
 * FUSE: as root, our own kernel-protocol session (src/fuse/kernel/: kernel-cached listings,
 * readdirplus, passthrough reads); otherwise fuse-native (libfuse 2 through fusermount).
 * `LAZYSTORE_FUSE=libfuse` picks fuse-native as root too. fuse-native options measured in docs/MOUNT.md: no op timeout (fuse-native's default fails any op after
 * 15 s and the reader starts over), kernel page cache and 3600 s attribute/entry caching
 * (warm stat 309k/s instead of 13.5k/s), `ro`/`use_ino`/`negative_timeout` smuggled in through
 * fsname because fuse-native has no raw option passthrough.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { resolve } from 'node:path';
import { LazyError } from '../errors.js';
import { Fuse, type FuseInstance } from './fuse-native.js';
import { KernelSession } from './kernel/session.js';
import { makeOps } from './ops.js';
import type { StoreView } from './store-view.js';

/** Seconds the kernel remembers that a name does not exist: short, a path may become realisable. */
export const NEGATIVE_TIMEOUT_S = 1;
export const CACHE_TIMEOUT_S = 3600;

export interface MountOptions {
  mountpoint: string;
  view: StoreView;
  /** For statfs: the filesystem holding the unpacked store. */
  stateDir: string;
  allowOther?: boolean;
  /** Default: 'kernel' as root, unless LAZYSTORE_FUSE=libfuse; 'libfuse' otherwise. */
  backend?: FuseBackend;
  /** Kernel session: let the kernel read built files itself (default on unless LAZYSTORE_FUSE_PASSTHROUGH=0). */
  passthrough?: boolean;
  log?: (line: string) => void;
}

export function defaultBackend(): FuseBackend {
  if (process.env.LAZYSTORE_FUSE === 'libfuse' || process.env.LAZYSTORE_FUSE === 'kernel') return process.env.LAZYSTORE_FUSE;
  return process.getuid?.() === 0 ? 'kernel' : 'libfuse';
}

export type FuseBackend = 'kernel' | 'libfuse';

export interface MountHandle {
  readonly mountpoint: string;
  readonly backend: FuseBackend;
  /** Unmounts (lazily if busy) and closes the view's files; safe to call twice. */
  unmount(): Promise<void>;
}

export async function mountStore(opts: MountOptions): Promise<MountHandle> {
  const mountpoint = resolve(opts.mountpoint);
  const log = opts.log ?? (() => {});
  await clearStaleMount(mountpoint, { log });
  if ((opts.backend ?? defaultBackend()) === 'kernel') {
    const session = await KernelSession.mount({
      view: opts.view, mountpoint, stateDir: opts.stateDir, allowOther: opts.allowOther,
      cacheSeconds: CACHE_TIMEOUT_S, negativeSeconds: NEGATIVE_TIMEOUT_S, log,
      passthrough: opts.passthrough ?? process.env.LAZYSTORE_FUSE_PASSTHROUGH !== '0',
    });
    let closing: Promise<void> | undefined;
    return {
      mountpoint,
      backend: 'kernel',
      unmount: () => (closing ??= session.unmount().finally(() => opts.view.close())),
    };
  }
  const ops = makeOps(opts.view, { stateDir: opts.stateDir, log });
  const fsname = ['lazystore', 'ro', 'use_ino', 'readdir_ino', `negative_timeout=${NEGATIVE_TIMEOUT_S}`];
  if (await isNonEmptyDir(mountpoint)) fsname.push('nonempty');
  const fuse = new Fuse(mountpoint, ops, {
    timeout: false,
    kernelCache: true,
    attrTimeout: CACHE_TIMEOUT_S,
    entryTimeout: CACHE_TIMEOUT_S,
    autoUnmount: true,
    force: true,
    allowOther: opts.allowOther ?? false,
    fsname: fsname.join(','),
  });
  await new Promise<void>((res, rej) =>
    fuse.mount((err) => (err ? rej(mountError(mountpoint, err)) : res())),
  );
  let done: Promise<void> | undefined;
  return {
    mountpoint,
    backend: 'libfuse',
    unmount: () => (done ??= unmountFuse(fuse, mountpoint).finally(() => opts.view.close())),
  };
}

function mountError(mountpoint: string, err: Error): LazyError {
  const hint =
    err.message === 'Mountpoint in use'
      ? ' (it is already a mountpoint: mount elsewhere and `mount --bind` that onto it, or use `lazystore shell`)'
      : '';
  return new LazyError('MOUNT_FAILED', `cannot mount at ${mountpoint}: ${err.message}${hint}`, { cause: err });
}

function unmountFuse(fuse: FuseInstance, mountpoint: string): Promise<void> {
  return new Promise<void>((res, rej) =>
    fuse.unmount((err) => (err ? rej(new LazyError('MOUNT_UNMOUNT_FAILED', `cannot unmount ${mountpoint}: ${err.message}`, { cause: err })) : res())),
  );
}

/**
 * A daemon killed without unmounting leaves "Transport endpoint is not connected" at its
 * mountpoint: detach it (`fusermount -uz`) so the new mount can take its place.
 */
export async function clearStaleMount(mountpoint: string, opts: { log?: (line: string) => void; signal?: AbortSignal } = {}): Promise<boolean> {
  opts.signal?.throwIfAborted();
  try {
    await fsp.stat(mountpoint);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'ENOTCONN' && code !== 'ECONNABORTED') {
      if (code === 'ENOENT') throw new LazyError('MOUNT_NO_MOUNTPOINT', `mountpoint ${mountpoint} does not exist`);
      throw new LazyError('MOUNT_BAD_MOUNTPOINT', `mountpoint ${mountpoint}: ${(e as Error).message}`, { cause: e });
    }
  }
  opts.log?.(`clearing stale mount at ${mountpoint}`);
  // fuse-native's unmount runs `fusermount -uz`; without fusermount, root can `umount -l`
  const viaFusermount = await new Promise<Error | null>((res) => Fuse.unmount(mountpoint, res));
  if (viaFusermount) {
    const viaUmount = await new Promise<Error | null>((res) => execFile('umount', ['-l', mountpoint], (e) => res(e)));
    if (viaUmount) throw new LazyError('MOUNT_STALE', `cannot clear stale mount at ${mountpoint}: ${viaFusermount.message}; ${viaUmount.message}`);
  }
  return true;
}

async function isNonEmptyDir(dir: string): Promise<boolean> {
  const d = await fsp.opendir(dir);
  try {
    return (await d.read()) !== null;
  } finally {
    await d.close();
  }
}
