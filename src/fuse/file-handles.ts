/**
 * Open files of the mount: each FUSE file handle maps to an fd on the unpacked file in the
 * state directory, and reads go straight to that fd with async fs.read (never sync: a
 * synchronous call stalls every other request). fds are shared per file and idle ones are kept
 * in a small cache, because programs reopen the same files (dynamic loaders, interpreters).
 */
import { close, open, read } from 'node:fs';
import { promisify } from 'node:util';
import { LazyError } from '../errors.js';

const openAsync = promisify(open);
const closeAsync = promisify(close);

interface Entry {
  path: string;
  fd: number;
  refs: number;
}

/** Idle fds kept open for reuse; small, as each costs a descriptor for the daemon's lifetime. */
export const IDLE_FDS = 64;
/** fuse-native file handles are 32-bit. */
const MAX_HANDLE = 0x7fffffff;

export class FileHandles {
  private readonly byHandle = new Map<number, Entry>();
  private readonly byPath = new Map<string, Entry>();
  /** Idle entries, least recently released first. */
  private readonly idle = new Set<Entry>();
  private readonly opening = new Map<string, Promise<Entry>>();
  private next = 1;
  /** Reads this daemon answered itself (passthrough reads never arrive). */
  reads = 0;
  /** Called before an fd is closed (passthrough drops the backing file registered for it). */
  beforeClose: ((fd: number) => void) | undefined;

  async open(path: string): Promise<number> {
    const entry = this.byPath.get(path) ?? (await this.openShared(path));
    entry.refs++;
    this.idle.delete(entry);
    let h = this.next;
    while (this.byHandle.has(h)) h = h >= MAX_HANDLE ? 1 : h + 1;
    this.next = h >= MAX_HANDLE ? 1 : h + 1;
    this.byHandle.set(h, entry);
    return h;
  }

  /** Reads into `buf` (fuse-native's buffer) at `position`; resolves to the bytes read. */
  read(handle: number, buf: Buffer, length: number, position: number): Promise<number> {
    const entry = this.byHandle.get(handle);
    if (!entry) return Promise.reject(new LazyError('FUSE_BAD_HANDLE', `no open file ${handle}`));
    this.reads++;
    return new Promise((resolve, reject) => {
      read(entry.fd, buf, 0, length, position, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  /** The fd behind `handle` (to register it as a passthrough backing file). */
  fdOf(handle: number): number {
    const entry = this.byHandle.get(handle);
    if (!entry) throw new LazyError('FUSE_BAD_HANDLE', `no open file ${handle}`);
    return entry.fd;
  }

  async release(handle: number): Promise<void> {
    const entry = this.byHandle.get(handle);
    if (!entry) return;
    this.byHandle.delete(handle);
    if (--entry.refs > 0) return;
    this.idle.add(entry);
    while (this.idle.size > IDLE_FDS) {
      const oldest = this.idle.values().next().value as Entry;
      this.idle.delete(oldest);
      this.byPath.delete(oldest.path);
      this.beforeClose?.(oldest.fd);
      await closeAsync(oldest.fd);
    }
  }

  get openCount(): number {
    return this.byPath.size;
  }

  async closeAll(): Promise<void> {
    const entries = [...this.byPath.values()];
    this.byPath.clear();
    this.byHandle.clear();
    this.idle.clear();
    for (const e of entries) this.beforeClose?.(e.fd);
    await Promise.allSettled(entries.map((e) => closeAsync(e.fd)));
  }

  /** One open(2) per file even when many readers open it at once. */
  private openShared(path: string): Promise<Entry> {
    const pending = this.opening.get(path);
    if (pending) return pending;
    const p = openAsync(path, 'r')
      .then((fd) => {
        const entry: Entry = { path, fd, refs: 0 };
        this.byPath.set(path, entry);
        return entry;
      })
      .finally(() => this.opening.delete(path));
    this.opening.set(path, p);
    return p;
  }
}
