/**
 * Runs one bubblewrap sandbox to completion: the options go through `--args 3`, stdout and
 * stderr share one pipe (kernel-ordered like Nix's single log pipe) copied to the log file up
 * to maxLogSize, or without a limit go straight to the log file's fd; stdin is /dev/null. bwrap is spawned as its own process group
 * (detached → setsid) with --die-with-parent and a PID namespace, so killing the group on
 * cancellation or timeout takes the whole build down.
 */
import { spawn } from 'node:child_process';
import { fstat, write } from 'node:fs';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { LazyError, abortError } from '../errors.js';

const fstatAsync = promisify(fstat);
const writeAsync = promisify(write);

/** Default for maxLogSize (see docs/CONFIGURATION.md): 64 MiB. */
export const DEFAULT_MAX_LOG_SIZE = 64 * 1024 * 1024;

export interface RunSandboxOptions {
  /** Options for bwrap (NUL-separated), see bwrapArgs. */
  args: Buffer;
  /** `--`, builder, args (see builderArgv). */
  argv: string[];
  /** Open (append) fd of the build log; receives the builder's stdout and stderr. */
  logFd: number;
  /** For messages. */
  drvPath: string;
  logPath: string;
  timeoutMs?: number;
  maxSilentMs?: number;
  /**
   * Kill the build once its log would pass this many bytes (0/undefined: no limit, and the
   * builder writes to logFd directly). The log then holds exactly this many bytes plus one line
   * saying so; it never passes the limit on disk (the builder's output goes through a pipe).
   */
  maxLogSize?: number;
  /** More fds for bwrap, at 4, 5, … (e.g. `--file 4 /build/x`). */
  fds?: number[];
  /** Host user to run bwrap as (see build-user.ts); default: this process's. */
  user?: { uid: number; gid: number };
  /** Called with bwrap's pid once it runs, and with undefined when it has exited. */
  onProcess?: (pid: number | undefined) => void;
  signal?: AbortSignal;
}

/** Executable used for sandboxes ($LAZYSTORE_BWRAP overrides, for tests and odd installs). */
export function bwrapExecutable(): string {
  return process.env.LAZYSTORE_BWRAP ?? 'bwrap';
}

/** Resolves when the builder exits 0; rejects with BUILD_FAILED/BUILD_TIMEOUT/BUILD_SILENT/ABORTED. */
export async function runSandbox(opts: RunSandboxOptions): Promise<void> {
  const { signal } = opts;
  if (signal?.aborted) throw abortError(signal);
  const details = { drvPath: opts.drvPath, logPath: opts.logPath };
  const maxLog = opts.maxLogSize ?? 0;
  const spawnOpts = { detached: true, ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}) };
  // With a log limit the builder writes into one pipe (stderr joined to stdout by sh, which then
  // execs bwrap, so the order is still the kernel's) and copyLog stops at exactly the limit;
  // the builder blocks on the full pipe meanwhile, so it can never write past it.
  const child =
    maxLog > 0
      ? spawn('/bin/sh', ['-c', 'exec "$0" "$@" 2>&1', bwrapExecutable(), '--args', '3', ...opts.argv], {
          stdio: ['ignore', 'pipe', 'ignore', 'pipe', ...(opts.fds ?? [])],
          ...spawnOpts,
        })
      : spawn(bwrapExecutable(), ['--args', '3', ...opts.argv], { stdio: ['ignore', opts.logFd, opts.logFd, 'pipe', ...(opts.fds ?? [])], ...spawnOpts });
  let killedFor: LazyError | undefined;
  const kill = (why: LazyError): void => {
    killedFor ??= why;
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  };
  const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', (e) => reject(new LazyError('BUILD_SPAWN', `cannot run ${bwrapExecutable()}: ${e.message}`, { cause: e, details })));
    child.once('exit', (code, sig) => resolve({ code, sig }));
  });
  if (child.pid !== undefined) opts.onProcess?.(child.pid);
  const argsPipe = child.stdio[3] as NodeJS.WritableStream | null;
  argsPipe?.on('error', () => undefined); // bwrap died before reading: the exit status says why
  argsPipe?.end(opts.args);

  const onAbort = (): void => kill(abortError(signal));
  signal?.addEventListener('abort', onAbort, { once: true });
  const timers: NodeJS.Timeout[] = [];
  if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) {
    const s = Math.round(opts.timeoutMs / 1000);
    timers.push(setTimeout(() => kill(new LazyError('BUILD_TIMEOUT', `building of '${opts.drvPath}' timed out after ${s} seconds`, { details })), opts.timeoutMs));
  }
  if (opts.maxSilentMs !== undefined && opts.maxSilentMs > 0) {
    // Silence = the log file did not grow. Polled: a few checks per allowed silence, ≥ 50 ms apart.
    let lastSize = -1;
    let lastChange = Date.now();
    const every = Math.max(50, Math.min(1000, opts.maxSilentMs / 4));
    const s = Math.round(opts.maxSilentMs / 1000);
    const poll = setInterval(() => {
      fstatAsync(opts.logFd).then((st) => {
        if (st.size !== lastSize) {
          lastSize = st.size;
          lastChange = Date.now();
        } else if (Date.now() - lastChange >= (opts.maxSilentMs ?? 0)) {
          kill(new LazyError('BUILD_SILENT', `building of '${opts.drvPath}' timed out after ${s} seconds of silence`, { details }));
        }
      }, () => undefined);
    }, every);
    timers.push(poll);
  }
  const copied =
    maxLog > 0 && child.stdout
      ? copyLog(child.stdout, opts.logFd, maxLog).then(
          (passed) => {
            if (passed) {
              kill(
                new LazyError('BUILD_LOG_LIMIT', `build of '${opts.drvPath}' was killed: it exceeded the maximum log size of ${maxLog} bytes`, {
                  details: { ...details, maxLogSize: maxLog },
                }),
              );
            }
          },
          () => undefined,
        )
      : Promise.resolve();
  try {
    const { code, sig } = await exited;
    await copied;
    if (killedFor) throw killedFor;
    if (code !== 0) {
      const how = code !== null ? `failed with exit code ${code}` : `was killed by signal ${sig ?? '?'}`;
      throw new LazyError('BUILD_FAILED', `builder for '${opts.drvPath}' ${how}`, { details: { ...details, exitCode: code } });
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    signal?.removeEventListener('abort', onAbort);
    opts.onProcess?.(undefined);
  }
}

/**
 * Copies the builder's output to the log fd until EOF (false) or until it would pass `limit`
 * (true): then the log holds exactly `limit` bytes plus a line saying so, and reading stops.
 */
async function copyLog(from: Readable, fd: number, limit: number): Promise<boolean> {
  let pos = 0;
  let writable = true;
  for await (const chunk of from as AsyncIterable<Buffer>) {
    // A log that cannot be written (the disk is full) loses the rest, as a builder writing to the
    // file itself would; the output is still drained so the build runs on and fails for itself.
    if (!writable) continue;
    if (chunk.length > limit - pos) {
      const note = Buffer.from(`\nlazystore: log truncated: the build exceeded the maximum log size of ${limit} bytes and was killed\n`);
      await writeAll(fd, Buffer.concat([chunk.subarray(0, limit - pos), note]), pos).catch(() => undefined);
      return true;
    }
    try {
      await writeAll(fd, chunk, pos);
      pos += chunk.length;
    } catch {
      writable = false;
    }
  }
  return false;
}

async function writeAll(fd: number, buf: Buffer, pos: number): Promise<void> {
  for (let off = 0; off < buf.length; ) {
    const { bytesWritten } = await writeAsync(fd, buf, off, buf.length - off, pos + off);
    off += bytesWritten;
  }
}
