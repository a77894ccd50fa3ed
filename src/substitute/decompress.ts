/**
 * Decompression of NARs fetched from binary caches, streamed through the native tools.
 * Compression names are those of narinfo's `Compression:` field.
 */
import { LazyError } from '../errors.js';
import { pipeThroughProcess } from './pipe-process.js';

const DECOMPRESSORS: Record<string, readonly [string, readonly string[]]> = {
  xz: ['xz', ['-dc']],
  zstd: ['zstd', ['-dcq']],
  bzip2: ['bzip2', ['-dc']],
  gzip: ['gzip', ['-dc']],
};

export function isSupportedCompression(compression: string): boolean {
  return compression === 'none' || compression === '' || compression in DECOMPRESSORS;
}

/** The decompressed stream of `source`; `none` (and an empty field, as in Nix) passes it through. */
export function decompress(
  source: AsyncIterable<Uint8Array>,
  compression: string,
  opts: { what?: string; signal?: AbortSignal } = {},
): AsyncIterable<Buffer> {
  if (compression === 'none' || compression === '') return asBuffers(source);
  const tool = DECOMPRESSORS[compression];
  if (!tool) {
    throw new LazyError('SUBST_COMPRESSION_UNSUPPORTED', `unsupported compression '${compression}'${opts.what ? ` for ${opts.what}` : ''}`);
  }
  return pipeThroughProcess(tool[0], tool[1], source, { ...opts, code: 'SUBST_DECOMPRESS' });
}

async function* asBuffers(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  for await (const c of source) yield Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}
