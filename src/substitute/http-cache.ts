/**
 * `http(s)://` binary caches over node:http(s) with keep-alive connections. Transient failures
 * (5xx, 429, connection resets, timeouts) are retried with exponential backoff, as Nix's
 * `download-attempts` (5) does; 404, 410 and 403 mean "not here" (S3 answers 403 for a missing
 * key) and are never retried. Redirects are followed (at most MAX_REDIRECTS).
 *
 * Why not the global fetch: its Request/Response/Headers objects and WHATWG body streams cost
 * ~0.25 ms of CPU per request here; substituting 561 small paths (1122 requests) spent 0.3 s of
 * a 0.98 s profile inside undici against 0.47 s for all of `nix copy`.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import * as zlib from 'node:zlib';
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
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** Kept-alive connections, shared by all caches (idle sockets are unref'd: they never hold the process). */
const AGENTS = {
  'http:': new http.Agent({ keepAlive: true, maxSockets: 16 }),
  'https:': new https.Agent({ keepAlive: true, maxSockets: 16 }),
};

/** A response: status, message and a body whose content coding is already undone. */
interface Reply {
  status: number;
  statusText: string;
  body: AsyncIterable<Uint8Array> & { destroy(e?: Error): void; resume(): unknown };
}

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
    return this.withRetries(rel, opts.signal, async (res) => (res ? await readAll(res) : undefined), true);
  }

  /**
   * Runs `use` on the response of one attempt (undefined for not-found). With `retryBody`, a
   * failure inside `use` is retried as well; otherwise only getting the headers is.
   */
  private async withRetries<T>(
    rel: string,
    signal: AbortSignal | undefined,
    use: (res: Reply | undefined, ctl: AbortController) => Promise<T>,
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
        const res = await fetchFollowing(url, ctl.signal);
        // A small body read whole stays under the same deadline; a streamed one gets a stall timer.
        if (!retryBody) clearTimeout(timer);
        if (NOT_FOUND.has(res.status)) {
          res.body.resume();
          return await use(undefined, ctl);
        }
        if (res.status < 200 || res.status > 299) {
          res.body.resume();
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
  private async *body(res: Reply, ctl: AbortController, rel: string, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
    const url = `${this.url}/${rel}`;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => ctl.abort(new LazyError('SUBST_HTTP_TIMEOUT', `${url}: no data for ${this.stallTimeoutMs} ms`)), this.stallTimeoutMs);
    };
    const onAbort = (): void => ctl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let done = false;
    try {
      throwIfAborted(signal);
      arm();
      for await (const chunk of res.body) {
        arm();
        yield chunk;
      }
      done = true;
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      throw toHttpError(e, url, ctl.signal.reason);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      // A consumer that stopped early: drop the connection rather than read the rest.
      if (!done) res.body.destroy();
    }
  }
}

/** GET `url` (aborted by `signal`), following redirects; the body is not read yet. */
async function fetchFollowing(url: string, signal: AbortSignal): Promise<Reply> {
  for (let hops = 0; ; hops++) {
    const res = await get(url, signal);
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) return reply(res);
    res.resume();
    if (hops >= MAX_REDIRECTS) {
      throw new LazyError('SUBST_HTTP', `${url}: more than ${MAX_REDIRECTS} redirects`, { details: { url, transient: false } });
    }
    url = new URL(location, url).toString();
  }
}

function get(url: string, signal: AbortSignal): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      reject(new LazyError('SUBST_HTTP', `${url}: redirected to an unsupported scheme`, { details: { url, transient: false } }));
      return;
    }
    const mod = u.protocol === 'https:' ? https : http;
    const req = mod.get(u, { agent: AGENTS[u.protocol], signal, headers: { 'accept-encoding': 'gzip, deflate, br' } }, resolve);
    req.on('error', reject);
  });
}

/** The response with its Content-Encoding (gzip, deflate, br) undone, as fetch did. */
function reply(res: http.IncomingMessage): Reply {
  const status = res.statusCode ?? 0;
  const statusText = res.statusMessage ?? '';
  const coding = (res.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
  const decoder =
    coding === 'gzip' || coding === 'x-gzip'
      ? zlib.createGunzip()
      : coding === 'deflate'
        ? zlib.createInflate()
        : coding === 'br'
          ? zlib.createBrotliDecompress()
          : undefined;
  if (decoder === undefined) return { status, statusText, body: res };
  pipeline(res, decoder, () => undefined); // errors surface on the decoder, which is iterated
  return { status, statusText, body: decoder };
}

async function readAll(res: Reply): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res.body) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  return Buffer.concat(chunks).toString('utf8');
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
