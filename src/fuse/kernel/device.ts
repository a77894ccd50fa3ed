/**
 * /dev/fuse, mounted and read: the connection a kernel-protocol session talks over.
 *
 * Mounting needs root (CAP_SYS_ADMIN in the mount's user namespace): we open /dev/fuse and let
 * `mount -i` (util-linux, no helpers) make the mount(2) call with `fd=3`, the fd it inherits.
 * A worker thread does the blocking reads (one request per read, as the kernel hands them out)
 * and posts each request to the main thread, so no libuv pool thread is pinned; replies are
 * written from the main thread, one write(2) per reply, which never blocks on /dev/fuse.
 */
import { closeSync, open, readFileSync, writeFile, writeSync, writevSync } from 'node:fs';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { promisify } from 'node:util';
import { LazyError } from '../../errors.js';

const openAsync = promisify(open);

/** Largest request we read: the kernel refuses a buffer smaller than max_write + headers. */
export const MAX_WRITE = 4096;
const READ_BUFFER = 64 * 1024;

export interface FuseDevice {
  readonly fd: number;
  readonly mountpoint: string;
  /** Resolves when the kernel ends the connection (unmounted or aborted). */
  readonly ended: Promise<void>;
  /** Sends one reply; a reply to a request the kernel dropped (interrupted) is ignored. */
  write(buf: Buffer, data?: Buffer): void;
  /**
   * Readahead of the mount's own page cache (reads the daemon serves; passthrough reads use the
   * backing file's). The kernel starts FUSE mounts at 128 KiB; best effort.
   */
  setReadahead(kib: number): Promise<void>;
  /** Lazy unmount, then abort what is left of the connection (busy readers get ENOTCONN). */
  unmount(): Promise<void>;
}

export interface MountDeviceOptions {
  mountpoint: string;
  allowOther?: boolean;
  onRequest(req: Buffer): void;
  signal?: AbortSignal;
}

/** The reader, run as eval'd source so it works from src (vitest) and dist alike. */
const READER = `
const { workerData, parentPort } = require('node:worker_threads');
const { readSync } = require('node:fs');
const buf = Buffer.allocUnsafe(workerData.size);
for (;;) {
  let n;
  try {
    n = readSync(workerData.fd, buf, 0, buf.length, null);
  } catch (e) {
    // ENOENT: the request was interrupted before we read it; EINTR/EAGAIN: try again
    if (e.code === 'ENOENT' || e.code === 'EINTR' || e.code === 'EAGAIN') continue;
    parentPort.postMessage({ end: e.code === 'ENODEV' ? null : String(e.message) });
    break;
  }
  const req = new Uint8Array(n);
  req.set(buf.subarray(0, n));
  parentPort.postMessage(req, [req.buffer]);
}`;

export async function mountDevice(opts: MountDeviceOptions): Promise<FuseDevice> {
  opts.signal?.throwIfAborted();
  let fd: number;
  try {
    fd = await openAsync('/dev/fuse', 'r+');
  } catch (e) {
    throw new LazyError('MOUNT_FAILED', `cannot open /dev/fuse: ${(e as Error).message}`, { cause: e });
  }
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const options = ['ro', 'nosuid', 'nodev', 'fd=3', 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`];
  if (opts.allowOther) options.push('allow_other');
  try {
    await mountWithFd(fd, ['-i', '-t', 'fuse.lazystore', '-o', options.join(','), 'lazystore', opts.mountpoint], opts.signal);
  } catch (e) {
    closeSync(fd);
    throw new LazyError('MOUNT_FAILED', `cannot mount at ${opts.mountpoint}: ${(e as Error).message}`, { cause: e });
  }
  return startDevice(fd, opts);
}

/**
 * Unmounts `mountpoint` when this process dies, however it dies (libfuse's auto_unmount does
 * the same with a fusermount that outlives the daemon): a detached shell reads the pipe we hold
 * open, and when the kernel closes it at our exit, it detaches the mount (`umount -l`). Without
 * it a SIGKILLed daemon would leave "Transport endpoint is not connected" until the next start.
 */
function unmountWhenGone(mountpoint: string): ChildProcess {
  // only a dead mount (ENOTCONN): a daemon started since may have mounted there already
  const script = 'read _ignored; stat "$0" >/dev/null 2>&1 || exec umount -l "$0"';
  const watchdog = spawn('sh', ['-c', script, mountpoint], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  watchdog.unref();
  watchdog.on('error', () => {}); // no sh: no watchdog, the next start clears the stale mount
  (watchdog.stdin as Socket | null)?.unref(); // the pipe must not keep this process alive
  return watchdog;
}

function startDevice(fd: number, opts: MountDeviceOptions): FuseDevice {
  const watchdog = unmountWhenGone(opts.mountpoint);
  const worker = new Worker(READER, { eval: true, name: 'lazystore-fuse-reader', execArgv: [], workerData: { fd, size: READ_BUFFER } });
  worker.unref();
  let finish!: () => void;
  const ended = new Promise<void>((resolve) => (finish = resolve));
  let open = true;
  const end = () => {
    if (!open) return;
    open = false;
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    finish();
  };
  worker.on('message', (m: Uint8Array | { end: string | null }) => {
    if (m instanceof Uint8Array) opts.onRequest(Buffer.from(m.buffer, m.byteOffset, m.byteLength));
    else end();
  });
  worker.on('error', end);
  worker.on('exit', end);
  const connection = connectionOf(opts.mountpoint);
  return {
    fd,
    mountpoint: opts.mountpoint,
    ended,
    write(buf, data) {
      if (!open) return;
      try {
        if (data && data.length > 0) writevSync(fd, [buf, data]);
        else writeSync(fd, buf);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENODEV') throw e;
      }
    },
    async setReadahead(kib) {
      if (connection === undefined) return;
      await promisify(writeFile)(`/sys/class/bdi/0:${connection}/read_ahead_kb`, String(kib)).catch(() => {});
    },
    async unmount() {
      if (!open) return;
      watchdog.kill('SIGKILL'); // we unmount ourselves; it must not unmount a later mount there
      const umount = await run('umount', ['-l', opts.mountpoint]);
      if (umount && !umount.includes('not mounted')) {
        const viaFusermount = await run('fusermount', ['-u', '-z', opts.mountpoint]);
        if (viaFusermount) throw new LazyError('MOUNT_UNMOUNT_FAILED', `cannot unmount ${opts.mountpoint}: ${umount}; ${viaFusermount}`);
      }
      // Unmounted with nothing open, the kernel has ended the connection already; a busy
      // mount keeps it until its last user leaves: abort it, as a libfuse daemon's exit would.
      const stillOpen = await Promise.race([ended.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 200).unref())]);
      if (stillOpen && connection !== undefined) {
        await promisify(writeFile)(`/sys/fs/fuse/connections/${connection}/abort`, '1').catch(() => {});
      }
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000).unref())]);
      end();
    },
  };
}

/** The connection number of the FUSE mount at `mountpoint` (its st_dev minor), from mountinfo. */
function connectionOf(mountpoint: string): number | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
    const f = line.split(' ');
    if (f[4] === mountpoint.replace(/ /g, '\\040')) {
      const [major, minor] = (f[2] ?? '').split(':').map(Number);
      return major === 0 ? minor : undefined;
    }
  }
  return undefined;
}

/** `mount ARGS` with /dev/fuse as its fd 3. */
function mountWithFd(fd: number, args: string[], signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mount', args, { stdio: ['ignore', 'ignore', 'pipe', fd], signal });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(stderr.trim() || `mount exited ${code}`))));
  });
}

function run(cmd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => execFile(cmd, args, (err, _o, stderr) => resolve(err ? stderr.trim() || err.message : undefined)));
}
