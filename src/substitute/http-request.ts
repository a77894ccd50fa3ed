/**
 * One HTTP GET attempt for the binary-cache transport (http-cache.ts), on node:http(s) with
 * kept-alive connections: send (following redirects), undo the content coding, read a body
 * whole or stream it, and abort it — by a timeout or the caller — with a given error.
 *
 * Plain callbacks and events rather than AbortSignals and async iterators where the body is
 * read whole: per request, a signal (listeners, an end-of-stream hook) and an async iterator
 * were each as costly as parsing the response (1122 requests of a 561-path substitution).
 */
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { pipeline, type Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { LazyError } from '../errors.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const ACCEPT = { 'accept-encoding': 'gzip, deflate, br' };
const MAX_REDIRECTS = 10;

/** Kept-alive connections, shared by all caches (idle sockets are unref'd: they never hold the process). */
const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
let httpsAgent: https.Agent | undefined;

/**
 * The https agent, made at the first https request: Node's CAs, plus the PEM file in
 * LAZYSTORE_EXTRA_CA_CERTS, where bin/lazystore moves NODE_EXTRA_CA_CERTS so that Node does
 * not load it at every start (one secure context for all connections: building it parses
 * every certificate).
 */
function httpsAgentFor(): https.Agent {
  if (httpsAgent) return httpsAgent;
  const file = process.env.LAZYSTORE_EXTRA_CA_CERTS;
  let secureContext: SecureContext | undefined;
  if (file) {
    try {
      secureContext = createSecureContext({ ca: [...rootCertificates, readFileSync(file, 'utf8')] });
    } catch (e) {
      // What Node does with an unreadable NODE_EXTRA_CA_CERTS: warn, go on with its own CAs.
      process.emitWarning(`ignoring extra CA certificates in ${file}: ${(e as Error).message}`);
    }
  }
  httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16, secureContext });
  return httpsAgent;
}

/** A response: status, message, length if known, and a body whose content coding is undone. */
export interface Reply {
  status: number;
  statusText: string;
  /** Content-Length of the decoded body, when the server sent one and no coding applies. */
  length: number | undefined;
  body: Readable;
}

/** An attempt in flight; `abort(e)` ends it with `e` (the pending send or body read fails with it). */
export class Attempt {
  reason: LazyError | undefined;
  private req: http.ClientRequest | undefined;
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
      if (!REDIRECTS.has(res.statusCode ?? 0) || location === undefined) return this.reply(res);
      res.resume();
      if (hops >= MAX_REDIRECTS) {
        throw new LazyError('SUBST_HTTP', `${url}: more than ${MAX_REDIRECTS} redirects`, { details: { url, transient: false } });
      }
      url = new URL(location, url).toString();
    }
  }

  private get(url: string): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        reject(new LazyError('SUBST_HTTP', `${url}: redirected to an unsupported scheme`, { details: { url, transient: false } }));
        return;
      }
      const secure = u.protocol === 'https:';
      // Options, not the URL object: Node would convert the URL and merge the two per request.
      const req = (secure ? https : http).get(
        {
          protocol: u.protocol,
          hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
          port: u.port === '' ? undefined : Number(u.port),
          path: u.pathname + u.search,
          auth: u.username ? `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}` : undefined,
          agent: secure ? httpsAgentFor() : httpAgent,
          headers: ACCEPT,
        },
        resolve,
      );
      req.on('error', reject);
      this.req = req;
      if (this.reason) req.destroy(this.reason);
    });
  }

  /** The response with its Content-Encoding (gzip, deflate, br) undone, as fetch did. */
  private reply(res: http.IncomingMessage): Reply {
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
    const declared = res.headers['content-length'];
    const length = decoder === undefined && declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
    if (decoder) pipeline(res, decoder, () => undefined); // errors surface on the decoder, which is read
    this.body = decoder ?? res;
    if (this.reason) this.body.destroy(this.reason);
    return { status, statusText, length, body: this.body };
  }
}

/**
 * Reads a body whole. `onData` is called per chunk (to re-arm a stall timer). Fails with the
 * body's error: the abort reason, or a connection reset when the body was cut short.
 */
export function readAll(body: Readable, onData?: () => void): Promise<Buffer> {
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
