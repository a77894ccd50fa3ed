/**
 * `file://DIR` binary caches: files read straight from disk. Small files (narinfos, the NARs of
 * most paths) are read with synchronous calls, larger NARs streamed.
 *
 * Why synchronous: a promise-API read of a small file is open, fstat, read, read and close, each
 * a round trip through libuv's thread pool (a wake-up of a pool thread and of the event loop),
 * and those round trips, not the reads, were the largest cost of substituting 561 small paths
 * from a local cache (0.14 s of 0.68 s of CPU profile). The same calls made synchronously take
 * ~5-10 µs each from the page cache. A cache on a slow network filesystem would stall the event
 * loop for the length of one small read; that is the trade.
 */
import { closeSync, createReadStream, openSync, readFileSync, readSync } from 'node:fs';
import { LazyError, throwIfAborted } from '../errors.js';
import { WholeBytes } from '../nix/whole-bytes.js';
import type { CacheTransport } from './cache-transport.js';

/** 1 MiB reads: fewer syscalls and chunks than the 64 KiB default, still flat memory. */
const READ_CHUNK = 1 << 20;
/** Where small files are read (one byte more than READ_CHUNK tells a file that does not fit). */
const scratch = Buffer.allocUnsafe(READ_CHUNK + 1);

export class FileTransport implements CacheTransport {
  readonly url: string;
  readonly dir: string;

  constructor(url: string) {
    const u = new URL(url);
    if (u.protocol !== 'file:') throw new LazyError('SUBST_BAD_URL', `not a file:// URL: ${url}`);
    this.dir = decodeURIComponent(u.pathname).replace(/\/+$/, '') || '/';
    this.url = `file://${this.dir}`;
  }

  async get(rel: string, opts: { signal?: AbortSignal } = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    throwIfAborted(opts.signal);
    const file = this.file(rel);
    let fd: number | undefined;
    try {
      // Most NARs are small: read into a scratch buffer and kept as an exact-size copy (no
      // fstat, whose Stats object cost more than the read; no 1 MiB stream buffer per NAR, which
      // once made the garbage collector the largest cost of a closure copy).
      fd = openSync(file, 'r');
      let got = 0;
      for (let n = 1; n > 0 && got < scratch.length; got += n) n = readSync(fd, scratch, got, scratch.length - got, null);
      if (got <= READ_CHUNK) return new WholeBytes(Buffer.from(scratch.subarray(0, got)));
      // Larger than the scratch: streamed from the start.
      return createReadStream(file, { highWaterMark: READ_CHUNK, signal: opts.signal });
    } catch (e) {
      throwIfAborted(opts.signal);
      if (isNotFound(e)) return undefined;
      throw new LazyError('SUBST_IO', `cannot read ${this.url}/${rel}: ${(e as Error).message}`, { cause: e });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** `rel` is a safe relative path (isSafeRelativeUrl, or a name of ours): concatenated, not joined. */
  private file(rel: string): string {
    return this.dir === '/' ? `/${rel}` : `${this.dir}/${rel}`;
  }

  async getText(rel: string, opts: { signal?: AbortSignal } = {}): Promise<string | undefined> {
    throwIfAborted(opts.signal);
    try {
      return readFileSync(this.file(rel), 'utf8');
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw new LazyError('SUBST_IO', `cannot read ${this.url}/${rel}: ${(e as Error).message}`, { cause: e });
    }
  }
}

function isNotFound(e: unknown): boolean {
  const code = (e as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
