/**
 * Decompression of NARs fetched from binary caches. Compression names are those of narinfo's
 * `Compression:` field. Streams go through the native tools (`xz -dc`, `zstd -dc`, …), so
 * memory stays flat whatever the NAR size; small xz NARs are decoded in-process instead
 * (xz-decode.ts), which saves a process per path of a closure of small paths.
 */
import { LazyError, throwIfAborted } from '../errors.js';
import { pipeThroughProcess } from './pipe-process.js';
import { WholeBytes } from '../nix/whole-bytes.js';
import { xzDecompressSync } from './xz-decode.js';

const DECOMPRESSORS: Record<string, readonly [string, readonly string[]]> = {
  xz: ['xz', ['-dc']],
  zstd: ['zstd', ['-dcq']],
  bzip2: ['bzip2', ['-dc']],
  gzip: ['gzip', ['-dc']],
};

/**
 * Largest NAR decoded in-process. The JS decoder runs on the event loop: 256 KiB is a few ms,
 * while spawning `xz` costs ~6 ms of its own per NAR; bigger NARs stream through the tool.
 */
export const IN_PROCESS_XZ_MAX = 256 * 1024;

export interface DecompressOptions {
  what?: string;
  /** The decompressed size the narinfo promises (NarSize); enables in-process xz when small. */
  expectedSize?: number;
  signal?: AbortSignal;
}

export function isSupportedCompression(compression: string): boolean {
  return compression === 'none' || compression === '' || compression in DECOMPRESSORS;
}

/** The decompressed stream of `source`; `none` (and an empty field, as in Nix) passes it through. */
export function decompress(source: AsyncIterable<Uint8Array>, compression: string, opts: DecompressOptions = {}): AsyncIterable<Buffer> {
  if (compression === 'none' || compression === '') return source instanceof WholeBytes ? source : asBuffers(source);
  const tool = DECOMPRESSORS[compression];
  if (!tool) {
    throw new LazyError('SUBST_COMPRESSION_UNSUPPORTED', `unsupported compression '${compression}'${opts.what ? ` for ${opts.what}` : ''}`);
  }
  const { expectedSize } = opts;
  if (compression === 'xz' && expectedSize !== undefined && expectedSize > 0 && expectedSize <= IN_PROCESS_XZ_MAX) {
    // Held whole already: decoded now, and handed on whole (the importer's synchronous path).
    if (source instanceof WholeBytes) {
      const out = decodeXz(source.bytes, expectedSize);
      if (out !== undefined) return new WholeBytes(out);
    }
    return smallXz(source, expectedSize, opts);
  }
  return pipeThroughProcess(tool[0], tool[1], source, { what: opts.what, signal: opts.signal, code: 'SUBST_DECOMPRESS' });
}

/**
 * Buffers the compressed bytes (at most a little over `expectedSize`: xz never grows data by
 * more than ~0.1% + headers) and decodes them in one call. Anything unusual — more input than
 * that, a filter the JS decoder lacks, corrupt data, a size other than promised — is handed to
 * the native tool with the bytes already read, so errors are the tool's, as for large NARs.
 */
async function* smallXz(source: AsyncIterable<Uint8Array>, expectedSize: number, opts: DecompressOptions): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  const limit = expectedSize + (expectedSize >>> 9) + 4096;
  let total = 0;
  let ended = false;
  try {
    while (total <= limit) {
      const r = await it.next();
      if (r.done) {
        ended = true;
        break;
      }
      chunks.push(r.value);
      total += r.value.length;
    }
    throwIfAborted(opts.signal);
    if (ended) {
      const out = decodeXz(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), expectedSize);
      if (out !== undefined) {
        yield out;
        return;
      }
    }
    const rest = (async function* (): AsyncGenerator<Uint8Array> {
      yield* chunks;
      if (!ended) for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      ended = true;
    })();
    yield* pipeThroughProcess('xz', ['-dc'], rest, { what: opts.what, signal: opts.signal, code: 'SUBST_DECOMPRESS' });
  } finally {
    // A consumer that stops early must not leave the source (a file handle, a socket) open.
    if (!ended) await it.return?.();
  }
}

/** The in-process decode, or undefined for anything unusual (the native tool then decides). */
function decodeXz(input: Uint8Array, expectedSize: number): Buffer | undefined {
  try {
    const out = xzDecompressSync(input, expectedSize);
    return out.length === expectedSize ? out : undefined;
  } catch {
    return undefined;
  }
}

async function* asBuffers(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  for await (const c of source) yield Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}
