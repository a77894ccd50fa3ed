/**
 * Streams bytes through a filter process (`xz -dc`, `zstd -c`, …) without buffering: the
 * source is piped into its stdin with backpressure and its stdout is yielded chunk by chunk.
 * The native tools decode xz at ~100 MB/s per core, several times a JS decoder, and keep
 * memory flat whatever the NAR size.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { LazyError, abortError, throwIfAborted } from '../errors.js';

export interface PipeProcessOptions {
  /** Names the data in error messages (e.g. the NAR URL). */
  what?: string;
  /** Error code when the process fails (default SUBST_FILTER_FAILED). */
  code?: string;
  signal?: AbortSignal;
}

/** Errors the feeding side sees only because the process stopped reading (it failed or finished). */
function isPipeClosed(e: unknown): boolean {
  const code = (e as { code?: string } | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED';
}

export async function* pipeThroughProcess(
  file: string,
  args: readonly string[],
  source: AsyncIterable<Uint8Array>,
  opts: PipeProcessOptions = {},
): AsyncGenerator<Buffer> {
  const { signal } = opts;
  throwIfAborted(signal);
  // Killed when the consumer stops early (break / throw) as well as when `signal` aborts.
  const local = new AbortController();
  const cancel = signal ? AbortSignal.any([signal, local.signal]) : local.signal;
  const proc = execa(file, args, {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: { stdout: false, stderr: true },
    maxBuffer: { stderr: 64 * 1024 },
    cancelSignal: cancel,
    forceKillAfterDelay: 2000,
    reject: false,
  });
  let feedError: unknown;
  const feeding = pipeline(Readable.from(source), proc.stdin).catch((e: unknown) => {
    feedError = e;
  });
  let finished = false;
  try {
    for await (const chunk of proc.stdout) yield chunk as Buffer;
    const result = await proc;
    await feeding;
    if (signal?.aborted) throw abortError(signal);
    // The source's own failure (a network error, a size limit) explains a truncated stream
    // better than the filter's "unexpected end of input".
    if (feedError !== undefined && !isPipeClosed(feedError)) throw feedError;
    if (result.exitCode !== 0 || result.signal !== undefined) {
      const stderr = String(result.stderr ?? '').trim().split('\n').slice(-2).join('; ');
      throw new LazyError(
        opts.code ?? 'SUBST_FILTER_FAILED',
        `${file} ${args.join(' ')} failed on ${opts.what ?? 'its input'}: ${stderr || `exit ${result.exitCode ?? result.signal}`}`,
        { details: { file, exitCode: result.exitCode, signal: result.signal, stderr } },
      );
    }
    if (feedError !== undefined) throw feedError;
    finished = true;
  } finally {
    if (!finished) {
      local.abort();
      await proc.catch(() => undefined);
      await feeding;
    }
  }
}
