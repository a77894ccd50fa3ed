/**
 * Per-path mutual exclusion between lazystore processes (and async tasks of one process).
 *
 * Scheme: a lock is a listening Unix socket in Linux's *abstract* namespace, named after the
 * state directory (device + inode, so every path spelling and bind mount of it agrees) and the
 * lock key. bind() of an abstract name is atomic and exclusive, and the kernel drops the name
 * the instant its owner dies, however it dies (SIGKILL included). So there is no stale lock to
 * detect and take over: the O_EXCL-lock-file alternative needs a pid liveness guess and a
 * takeover step that two breakers can race into both "holding" the lock. A waiter connects to
 * the holder's socket and sleeps until the connection closes (holder released or died) — no
 * polling. Limitation: processes sharing a state directory must share a network namespace
 * (abstract names are per network namespace); lazystore's own processes always do, sandboxed
 * builders never take store locks.
 *
 * Taking and letting go: with the store_lock addon (native/store_lock.c) a lock is a socket,
 * bind and listen, and a close — a few µs, no event loop; without it, a net.Server (~20 µs and a
 * close callback). Both bind the same address bytes, so they exclude each other.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { LazyError, abortError, throwIfAborted } from '../errors.js';
import { loadAddon } from '../native/addons.js';

export type Release = () => Promise<void>;

interface LockAddon {
  /** A listening socket's fd, or -1 when the name is taken. */
  lockTake(name: Buffer): number;
  lockRelease(fd: number): void;
}

/** Lock names for one state directory. */
export class StoreLocks {
  private readonly prefix: string;
  /** In-process holders, so tasks of one process queue on a promise instead of a socket. */
  private readonly local = new Map<string, Promise<void>>();

  private readonly addon: LockAddon | null;

  /** `native: false` takes locks through net.Server even when the addon is built (tests). */
  constructor(stateDir: string, opts: { native?: boolean } = {}) {
    this.addon = opts.native === false ? null : loadAddon<LockAddon>('store_lock');
    const st = statSync(stateDir);
    const id = createHash('sha256').update(`${st.dev}:${st.ino}`).digest('hex').slice(0, 24);
    this.prefix = `\0lazystore/${id}/`;
  }

  /** Waits until this process holds `key`, then resolves to its release function. */
  async acquire(key: string, opts: { signal?: AbortSignal } = {}): Promise<Release> {
    const { signal } = opts;
    for (;;) {
      throwIfAborted(signal);
      const held = this.local.get(key);
      if (held === undefined) break;
      await raceAbort(held, signal);
    }
    const releaseLocal = this.holdLocally(key);
    try {
      for (;;) {
        throwIfAborted(signal);
        const release = await this.take(this.prefix + key, releaseLocal);
        if (release) return release;
        await waitForHolder(this.prefix + key, signal);
      }
    } catch (e) {
      releaseLocal();
      throw e;
    }
  }

  /** Takes `key` if nobody holds it; undefined when another task or process does. */
  async tryAcquire(key: string): Promise<Release | undefined> {
    if (this.local.has(key)) return undefined;
    const releaseLocal = this.holdLocally(key);
    try {
      const release = await this.take(this.prefix + key, releaseLocal);
      if (release) return release;
    } catch (e) {
      releaseLocal();
      throw e;
    }
    releaseLocal();
    return undefined;
  }

  /** Binds `name` if free; its release also lets the next local task in. */
  private async take(name: string, releaseLocal: () => void): Promise<Release | undefined> {
    if (this.addon) {
      let fd: number;
      try {
        fd = this.addon.lockTake(Buffer.from(name));
      } catch (e) {
        throw new LazyError('STORE_LOCK', `cannot take store lock: ${(e as Error).message}`, { cause: e });
      }
      if (fd < 0) return undefined;
      const addon = this.addon;
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        addon.lockRelease(fd);
        releaseLocal();
      };
    }
    const server = await tryListen(name);
    return server ? releaser(server, releaseLocal) : undefined;
  }

  /** Marks `key` held by this process; the returned function lets the next local task in. */
  private holdLocally(key: string): () => void {
    let done!: () => void;
    this.local.set(key, new Promise<void>((resolve) => (done = resolve)));
    return () => {
      this.local.delete(key);
      done();
    };
  }
}

function releaser(server: Server, releaseLocal: () => void): Release {
  const waiters = new Set<Socket>();
  server.on('connection', (s) => {
    waiters.add(s);
    s.on('error', () => undefined);
    s.on('close', () => waiters.delete(s));
  });
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of waiters) s.destroy();
    });
    releaseLocal();
  };
}

/** Binds the abstract name; undefined when someone else has it. */
function tryListen(name: string): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') resolve(undefined);
      else reject(new LazyError('STORE_LOCK', `cannot take store lock: ${e.message}`, { cause: e }));
    });
    server.listen({ path: name, exclusive: true }, () => resolve(server));
  });
}

/** Resolves when the current holder of `name` lets go (or was never listening). */
function waitForHolder(name: string, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path: name });
    let settled = false;
    const finish = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      sock.destroy();
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => finish(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    let connected = false;
    let retrying = false;
    sock.on('connect', () => (connected = true));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // Once connected, any end of the connection (close, ECONNRESET when the holder dies or
      // releases) means the holder let go. Before that: ECONNREFUSED (bound but not yet or no
      // longer listening) and EAGAIN (backlog full) mean the holder is between states — look
      // again shortly.
      if (connected) finish();
      else if (e.code === 'ECONNREFUSED' || e.code === 'EAGAIN' || e.code === 'ENOENT' || e.code === 'ECONNRESET') {
        retrying = true;
        setTimeout(() => finish(), 5);
      } else finish(new LazyError('STORE_LOCK', `cannot wait for store lock: ${e.message}`, { cause: e }));
    });
    sock.on('close', () => {
      if (!retrying) finish();
    });
    sock.on('data', () => undefined);
  });
}

function raceAbort(p: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
