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
import { closeSync, createReadStream, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { LazyError, throwIfAborted } from '../errors.js';
import { WholeBytes } from '../nix/whole-bytes.js';
import type { CacheTransport } from './cache-transport.js';

/** 1 MiB reads: fewer syscalls and chunks than the 64 KiB default, still flat memory. */
const READ_CHUNK = 1 << 20;

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
    let fd: number | undefined;
    try {
      fd = openSync(join(this.dir, rel), 'r');
      const { size } = fstatSync(fd);
      if (size <= READ_CHUNK) {
        // Most NARs are small: one exact-size read instead of a 1 MiB stream buffer each
        // (561 of those made the garbage collector the largest CPU cost of a closure copy).
        const buf = Buffer.allocUnsafe(size);
        let got = 0;
        for (let n = 1; got < size && n > 0; got += n) n = readSync(fd, buf, got, size - got, null);
        // A file that grew since the fstat: stream the rest rather than cutting it short.
        const more = readSync(fd, Buffer.allocUnsafe(1), 0, 1, null) > 0;
        if (!more) return new WholeBytes(got === size ? buf : buf.subarray(0, got));
        closeSync(fd);
        fd = undefined;
        return createReadStream(join(this.dir, rel), { highWaterMark: READ_CHUNK, signal: opts.signal });
      }
      const stream = createReadStream('', { fd, highWaterMark: READ_CHUNK, signal: opts.signal });
      fd = undefined; // the stream closes it
      return stream;
    } catch (e) {
      throwIfAborted(opts.signal);
      if (isNotFound(e)) return undefined;
      throw new LazyError('SUBST_IO', `cannot read ${this.url}/${rel}: ${(e as Error).message}`, { cause: e });
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  async getText(rel: string, opts: { signal?: AbortSignal } = {}): Promise<string | undefined> {
    throwIfAborted(opts.signal);
    try {
      return readFileSync(join(this.dir, rel), 'utf8');
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
