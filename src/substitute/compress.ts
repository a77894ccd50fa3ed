/** Compression of NARs written to binary caches (`copy --to`), streamed through the native tools. */
import { LazyError } from '../errors.js';
import { pipeThroughProcess } from './pipe-process.js';

export type ExportCompression = 'none' | 'xz' | 'zstd' | 'bzip2';

const COMPRESSORS: Record<Exclude<ExportCompression, 'none'>, readonly [string, readonly string[], string]> = {
  // xz -6 single-threaded is what Nix's default (liblzma preset 6) produces.
  xz: ['xz', ['-c', '-6', '-T1'], '.xz'],
  zstd: ['zstd', ['-c', '-q', '-3'], '.zst'],
  bzip2: ['bzip2', ['-c'], '.bz2'],
};

export function parseExportCompression(s: string): ExportCompression {
  if (s === 'none' || s === 'xz' || s === 'zstd' || s === 'bzip2') return s;
  throw new LazyError('SUBST_COMPRESSION_UNSUPPORTED', `unsupported compression '${s}' (use none, xz, zstd or bzip2)`);
}

/** File name extension Nix uses for a compressed NAR: `.nar` + this. */
export function compressionExtension(c: ExportCompression): string {
  return c === 'none' ? '' : COMPRESSORS[c][2];
}

export function compress(
  source: AsyncIterable<Uint8Array>,
  compression: ExportCompression,
  opts: { what?: string; signal?: AbortSignal } = {},
): AsyncIterable<Uint8Array> {
  if (compression === 'none') return source;
  const [file, args] = COMPRESSORS[compression];
  return pipeThroughProcess(file, args, source, { ...opts, code: 'SUBST_COMPRESS' });
}
