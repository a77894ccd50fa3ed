/**
 * `http(s)://` binary caches over Node's global fetch. Transient failures (5xx, 429, connection
 * resets, timeouts) are retried with exponential backoff, as Nix's `download-attempts` (5) does;
 * 404, 410 and 403 mean "not here" (S3 answers 403 for a missing key) and are never retried.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LazyError, abortError, throwIfAborted } from '../errors.js';
import type { CacheTransport } from './cache-transport.js';

export interface HttpOptions {
  /** Attempts per request, the first included (default 5, like Nix). */
  attempts?: number;
  /** First backoff delay; doubles per attempt, with ±50% jitter (default 250 ms). */
  backoffMs?: number;
  /** Give up on an attempt that has no response headers after this long (default 30 s). */
  headersTimeoutMs?: number;
  /** Fail a body that delivers no byte for this long (default 60 s). */
  stallTimeoutMs?: number;
}

const NOT_FOUND = new Set([403, 404, 410]);

function isTransientStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

export class HttpTransport implements CacheTransport {
  readonly url: string;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly headersTimeoutMs: number;
  private readonly stallTimeoutMs: number;

  constructor(url: string, opts: HttpOptions = {}) {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LazyError('SUBST_BAD_URL', `not an http(s) URL: ${url}`);
    u.search = '';
    u.hash = '';
    this.url = u.toString().replace(/\/+$/, '');
    this.attempts = Math.max(1, opts.attempts ?? 5);
    this.backoffMs = opts.backoffMs ?? 250;
    this.headersTimeoutMs = opts.headersTimeoutMs ?? 30_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 60_000;
  }

  async get(rel: string, opts: { signal?: AbortSignal } = {}): Promise<AsyncIterable<Uint8Array> | undefined> {
    return this.withRetries(rel, opts.signal, async (res, ctl) => (res ? this.body(res, ctl, rel, opts.signal) : undefined));
  }

  async getText(rel: string, opts: { signal?: AbortSignal } = {}): Promise<string | undefined> {
    // Small files: the body read is inside the retry loop too.
    return this.withRetries(rel, opts.signal, async (res) => (res ? await res.text() : undefined), true);
  }

  /**
   * Runs `use` on the response of one attempt (undefined for not-found). With `retryBody`, a
   * failure inside `use` is retried as well; otherwise only getting the headers is.
   */
  private async withRetries<T>(
    rel: string,
    signal: AbortSignal | undefined,
    use: (res: Response | undefined, ctl: AbortController) => Promise<T>,
    retryBody = false,
  ): Promise<T> {
    const url = `${this.url}/${rel}`;
    let last: LazyError | undefined;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
      throwIfAborted(signal);
      if (attempt > 0) {
        const delay = this.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random());
        await sleep(delay, undefined, { signal }).catch(() => throwIfAborted(signal));
      }
      const ctl = new AbortController();
      const timer = setTimeout(() => ctl.abort(new LazyError('SUBST_HTTP_TIMEOUT', `${url}: no response after ${this.headersTimeoutMs} ms`)), this.headersTimeoutMs);
      const onAbort = (): void => ctl.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      let handedOver = false;
      try {
        const res = await fetch(url, { signal: ctl.signal, redirect: 'follow' });
        // A small body read whole stays under the same deadline; a streamed one gets a stall timer.
        if (!retryBody) clearTimeout(timer);
        if (NOT_FOUND.has(res.status)) {
          await res.body?.cancel();
          return await use(undefined, ctl);
        }
        if (!res.ok) {
          await res.body?.cancel();
          const e = new LazyError('SUBST_HTTP', `${url}: HTTP ${res.status} ${res.statusText}`, {
            details: { url, status: res.status, transient: isTransientStatus(res.status) },
          });
          if (!isTransientStatus(res.status)) throw e;
          last = e;
          continue;
        }
        if (!retryBody) {
          handedOver = true;
          return await use(res, ctl);
        }
        return await use(res, ctl);
      } catch (e) {
        if (signal?.aborted) throw abortError(signal);
        const err = toHttpError(e, url, ctl.signal.reason);
        if (!err.details.transient || handedOver) throw err;
        last = err;
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
    }
    throw new LazyError('SUBST_HTTP', `${last?.message ?? url} (gave up after ${this.attempts} attempts)`, {
      cause: last,
      details: { ...last?.details, url, attempts: this.attempts, transient: true },
    });
  }

  /** The response body with a stall timer; errors become SUBST_HTTP with `transient`. */
  private async *body(res: Response, ctl: AbortController, rel: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const url = `${this.url}/${rel}`;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(new LazyError('SUBST_HTTP_TIMEOUT', `${url}: no data for ${this.stallTimeoutMs} ms`)), this.stallTimeoutMs);
    };
    const onAbort = (): void => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      throwIfAborted(signal);
      if (!res.body) return;
      arm();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        arm();
        yield chunk;
      }
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      throw toHttpError(e, url, ctl.signal.reason);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (!ctl.signal.aborted) ctl.abort();
    }
  }
}

/** Network-level failures (resets, refused connections, timeouts) are transient. */
function toHttpError(e: unknown, url: string, abortReason: unknown): LazyError {
  if (abortReason instanceof LazyError) return abortReason.details.transient === undefined ? withTransient(abortReason) : abortReason;
  if (e instanceof LazyError) return e;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const msg = cause?.message ?? (e as Error).message;
  return new LazyError('SUBST_HTTP', `${url}: ${msg}${cause?.code ? ` (${cause.code})` : ''}`, {
    cause: e,
    details: { url, transient: true },
  });
}

function withTransient(e: LazyError): LazyError {
  return new LazyError(e.code, e.message, { cause: e.cause, details: { ...e.details, transient: true } });
}
