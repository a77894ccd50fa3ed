/**
 * One HTTP GET attempt for the binary-cache transport (http-cache.ts), on our HTTP/1.1 client
 * (http1.ts) with kept-alive connections: send (following redirects), undo the content coding,
 * read a body whole or stream it, and abort it — by a timeout or the caller — with a given error.
 *
 * Plain callbacks and events rather than AbortSignals and async iterators where the body is
 * read whole: per request, a signal (listeners, an end-of-stream hook) and an async iterator
 * were each as costly as parsing the response (1122 requests of a 561-path substitution).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pipeline, type Readable } from 'node:stream';
import type * as Tls from 'node:tls';
import type * as Zlib from 'node:zlib';
import { LazyError } from '../errors.js';
import { Http1Pool, type Http1Request, type Http1Response } from './http1.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const HEADERS = { 'User-Agent': 'lazystore', 'Accept-Encoding': 'gzip, deflate, br' };
/** Connections per origin, like the agents of node:http had. */
const MAX_SOCKETS = 16;

/** tls and zlib are loaded when first needed: a plain-http cache of uncompressed bodies needs neither. */
const lazyRequire = createRequire(import.meta.url);
let zlibModule: typeof Zlib | undefined;
const zlib = (): typeof Zlib => (zlibModule ??= lazyRequire('node:zlib') as typeof Zlib);

/** Kept-alive connections by origin, shared by all caches (idle ones never hold the process). */
const pools = new Map<string, Http1Pool>();

function poolFor(u: URL): Http1Pool {
  const secure = u.protocol === 'https:';
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
  const hostname = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const key = `${u.protocol}//${hostname}:${port}`;
  let pool = pools.get(key);
  if (!pool) {
    const tls = secure ? (lazyRequire('node:tls') as typeof Tls) : undefined;
    pool = new Http1Pool({ protocol: secure ? 'https:' : 'http:', hostname, port, secureContext: tls && extraCaContext(tls) }, MAX_SOCKETS, tls);
    pools.set(key, pool);
  }
  return pool;
}

let extraCa: Tls.SecureContext | null | undefined;

/**
 * Node's CAs plus the PEM file in LAZYSTORE_EXTRA_CA_CERTS, where bin/lazystore moves
 * NODE_EXTRA_CA_CERTS so that Node does not load it at every start; made once, at the first
 * https connection (building it parses every certificate). Undefined: Node's default store.
 */
function extraCaContext(tls: typeof Tls): Tls.SecureContext | undefined {
  if (extraCa === undefined) {
    extraCa = null;
    const file = process.env.LAZYSTORE_EXTRA_CA_CERTS;
    if (file) {
      try {
        extraCa = tls.createSecureContext({ ca: [...tls.rootCertificates, readFileSync(file, 'utf8')] });
      } catch (e) {
        // What Node does with an unreadable NODE_EXTRA_CA_CERTS: warn, go on with its own CAs.
        process.emitWarning(`ignoring extra CA certificates in ${file}: ${(e as Error).message}`);
      }
    }
  }
  return extraCa ?? undefined;
}

/** A response: status, message, length if known, and a body whose content coding is undone. */
export interface Reply {
  status: number;
  statusText: string;
  /** Content-Length of the decoded body, when the server sent one and no coding applies. */
  length: number | undefined;
  /** The whole body when it came with the head (read it with readAll, which takes it). */
  whole: Buffer | undefined;
  /** The body as a stream (made on first use when `whole`). */
  readonly body: Readable;
}

/** An attempt in flight; `abort(e)` ends it with `e` (the pending send or body read fails with it). */
export class Attempt {
  reason: LazyError | undefined;
  private req: Http1Request | undefined;
  private body: Readable | undefined;

  abort(reason: LazyError): void {
    if (this.reason) return;
    this.reason = reason;
    if (this.body) this.body.destroy(reason);
    else this.req?.destroy(reason);
  }

  /** GET `url`, following redirects; resolves once the final response's headers are in. */
  async send(url: string): Promise<Reply> {
    for (let hops = 0; ; hops++) {
      const res = await this.get(url);
      const location = res.headers.location;
      if (!REDIRECTS.has(res.statusCode) || location === undefined) return this.reply(res);
      if (!res.whole) res.body.resume();
      if (hops >= MAX_REDIRECTS) {
        throw new LazyError('SUBST_HTTP', `${url}: more than ${MAX_REDIRECTS} redirects`, { details: { url, transient: false } });
      }
      url = new URL(location, url).toString();
    }
  }

  private get(url: string): Promise<Http1Response> {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      return Promise.reject(new LazyError('SUBST_HTTP', `${url}: redirected to an unsupported scheme`, { details: { url, transient: false } }));
    }
    const headers = u.username ? { ...HEADERS, Authorization: `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}` } : HEADERS;
    const req = poolFor(u).get(u.pathname + u.search, headers);
    this.req = req;
    if (this.reason) req.destroy(this.reason);
    return req.response;
  }

  /** The response with its Content-Encoding (gzip, deflate, br) undone, as fetch did. */
  private reply(res: Http1Response): Reply {
    const status = res.statusCode;
    const statusText = res.statusMessage;
    const coding = (res.headers['content-encoding'] ?? 'identity').toLowerCase().trim();
    const decoder =
      coding === 'gzip' || coding === 'x-gzip'
        ? zlib().createGunzip()
        : coding === 'deflate'
          ? zlib().createInflate()
          : coding === 'br'
            ? zlib().createBrotliDecompress()
            : undefined;
    const declared = res.headers['content-length'];
    const length = decoder === undefined && declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
    if (decoder === undefined && res.whole !== undefined) {
      // In hand already: nothing to stream, time out or abort.
      return { status, statusText, length, whole: res.whole, get body() { return res.body; } };
    }
    if (decoder) pipeline(res.body, decoder, () => undefined); // errors surface on the decoder, which is read
    const body = decoder ?? res.body;
    this.body = body;
    if (this.reason) body.destroy(this.reason);
    return { status, statusText, length, whole: undefined, body };
  }
}

/** Lets go of a body that will not be read (a 404, an error status). */
export function discard(res: Reply): void {
  if (res.whole === undefined) res.body.resume();
}

/**
 * Reads a body whole. `onData` is called per chunk (to re-arm a stall timer). Fails with the
 * body's error: the abort reason, or a connection reset when the body was cut short.
 */
export function readAll(res: Reply, onData?: () => void): Promise<Buffer> {
  if (res.whole !== undefined) return Promise.resolve(res.whole);
  const body = res.body;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    body.on('data', (c: Buffer) => {
      chunks.push(c);
      onData?.();
    });
    body.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    body.once('error', reject);
  });
}
