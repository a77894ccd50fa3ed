/**
 * A small HTTP/1.1 client for binary-cache GETs: kept-alive connections per origin, one request
 * at a time on each, responses framed by Content-Length, chunked transfer coding, or the end of
 * the connection. Why not node:http: substituting a closure is two GETs per path, and
 * node:http spent ~0.2 ms of CPU on each (ClientRequest, IncomingMessage, header objects,
 * agent bookkeeping), against ~0.03 ms here — 561 narinfo GETs over 8 connections: 125 ms of
 * CPU vs 17 ms, same run. Everything else (redirects, content codings, retries, timeouts)
 * stays with the callers (http-request.ts, http-cache.ts).
 *
 * Responses come from caches we do not trust: the head is limited to 64 KiB, chunk-size lines
 * to 1 KiB, framing headers are checked (one Content-Length value, digits only; a
 * Transfer-Encoding other than chunked is refused), and a response the parser does not
 * understand fails with ERR_HTTP_PROTOCOL and its connection is dropped, never reused.
 */
import * as net from 'node:net';
import { Readable } from 'node:stream';
import type * as Tls from 'node:tls';

/**
 * A response whose head is in. `whole` is the body when it came with the head (most small
 * responses: no stream is made for them); otherwise `body` streams it (decoded from chunks).
 */
export interface Http1Response {
  statusCode: number;
  statusMessage: string;
  /** Header values by lower-case name (the first of repeated ones). */
  headers: Record<string, string>;
  whole: Buffer | undefined;
  /** The body as a stream (made on first use for a `whole` one). */
  readonly body: Readable;
}

export interface Http1Origin {
  protocol: 'http:' | 'https:';
  /** Host name or address, without IPv6 brackets. */
  hostname: string;
  port: number;
  /** For https: the TLS settings (CA store) to connect with. */
  secureContext?: Tls.SecureContext;
}

/** A GET in flight: resolves at the response head; `destroy` ends it (and its connection). */
export interface Http1Request {
  response: Promise<Http1Response>;
  destroy(reason: Error): void;
}

const MAX_HEAD = 64 << 10;
const MAX_CHUNK_LINE = 1024;

function protocolError(message: string): Error {
  return Object.assign(new Error(`bad HTTP response: ${message}`), { code: 'ERR_HTTP_PROTOCOL' });
}

/** Kept-alive connections to one origin, at most `maxSockets` at once; the rest wait. */
export class Http1Pool {
  private readonly idle: Connection[] = [];
  private open = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly origin: Http1Origin,
    private readonly maxSockets: number,
    private readonly tls: typeof Tls | undefined,
  ) {}

  get(path: string, headers: Record<string, string>): Http1Request {
    let destroyed: Error | undefined;
    let current: Exchange | undefined;
    let stopWaiting: ((e: Error) => void) | undefined;
    const response = (async (): Promise<Http1Response> => {
      for (let tries = 0; ; tries++) {
        // Waiting for a free connection ends at once if the request is destroyed meanwhile;
        // a connection that comes later goes back to the pool.
        const next = this.connection();
        const conn = await Promise.race([next, new Promise<never>((_, reject) => (stopWaiting = reject))]).catch((e: unknown) => {
          void next.then((c) => this.release(c, true));
          throw e;
        });
        stopWaiting = undefined;
        if (destroyed) {
          this.release(conn, true);
          throw destroyed;
        }
        const reused = conn.used;
        current = conn.send(this.head(path, headers), (reusable) => this.release(conn, reusable));
        try {
          return await current.head;
        } catch (e) {
          // A kept-alive connection the server had closed fails before any byte comes back:
          // asked again once on a new connection, as browsers and curl do.
          if (destroyed || !reused || current.gotBytes || tries > 0) throw e;
        }
      }
    })();
    return {
      response,
      destroy(reason) {
        destroyed ??= reason;
        if (stopWaiting) stopWaiting(reason);
        else current?.destroy(reason);
      },
    };
  }

  private head(path: string, headers: Record<string, string>): string {
    const { hostname, port, protocol } = this.origin;
    const host = hostname.includes(':') ? `[${hostname}]` : hostname;
    const defaultPort = protocol === 'https:' ? 443 : 80;
    let head = `GET ${path} HTTP/1.1\r\nHost: ${port === defaultPort ? host : `${host}:${port}`}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    return `${head}\r\n`;
  }

  private async connection(): Promise<Connection> {
    for (;;) {
      const c = this.idle.pop();
      if (c) {
        if (c.alive) return c;
        continue;
      }
      if (this.open < this.maxSockets) {
        this.open++;
        return new Connection(this.connect(), () => this.closed());
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private connect(): net.Socket {
    const { protocol, hostname, port, secureContext } = this.origin;
    if (protocol === 'https:') {
      return this.tls!.connect({
        host: hostname,
        port,
        servername: net.isIP(hostname) ? undefined : hostname,
        secureContext,
        ALPNProtocols: ['http/1.1'],
      });
    }
    return net.connect({ host: hostname, port });
  }

  private release(conn: Connection, reusable: boolean): void {
    if (reusable && conn.alive) {
      conn.rest();
      this.idle.push(conn);
    } else conn.close();
    this.waiting.shift()?.();
  }

  private closed(): void {
    this.open--;
    const i = this.idle.findIndex((c) => !c.alive);
    if (i >= 0) this.idle.splice(i, 1);
    this.waiting.shift()?.();
  }
}

/** One request/response on a connection. */
interface Exchange {
  head: Promise<Http1Response>;
  /** Some byte of the response arrived (a failure then is not a stale connection). */
  gotBytes: boolean;
  destroy(reason: Error): void;
}

/** A socket and the parser of the response in progress on it. */
class Connection {
  alive = true;
  /** It has carried a request before (a stale kept-alive connection fails the next one). */
  used = false;
  private buf: Buffer | undefined;
  private onBytes: ((chunk: Buffer) => void) | undefined;
  private onEnd: ((err: Error | undefined) => void) | undefined;

  constructor(
    private readonly socket: net.Socket,
    onClose: () => void,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      if (this.onBytes) this.onBytes(d);
      else this.close(); // bytes nobody asked for: the connection is out of step
    });
    let closed = false;
    const gone = (err?: Error): void => {
      this.alive = false;
      this.onEnd?.(err);
      if (closed) return;
      closed = true;
      onClose();
    };
    socket.on('error', (e) => gone(e));
    socket.on('end', () => gone());
    socket.on('close', () => gone());
  }

  /** Idle: does not keep the process alive. */
  rest(): void {
    this.socket.unref();
  }

  close(): void {
    this.alive = false;
    this.socket.destroy();
  }

  send(head: string, done: (reusable: boolean) => void): Exchange {
    this.socket.ref();
    this.used = true;
    this.buf = undefined;
    let body: Readable | undefined;
    let finished = false;
    const exchange: Exchange = { head: undefined as unknown as Promise<Http1Response>, gotBytes: false, destroy: () => undefined };
    const finish = (reusable: boolean): void => {
      if (finished) return;
      finished = true;
      this.onBytes = undefined;
      this.onEnd = undefined;
      if (reusable) this.socket.resume(); // paused for a slow reader: its bytes are all pushed
      else this.close();
      done(reusable);
    };
    exchange.head = new Promise<Http1Response>((resolve, reject) => {
      let framing: Framing | undefined;
      const fail = (err: Error): void => {
        finish(false);
        if (body) body.destroy(err);
        else reject(err);
      };
      exchange.destroy = fail;
      this.onEnd = (err) => {
        if (framing?.untilClose && !err) {
          body!.push(null);
          finish(false);
          return;
        }
        fail(err ?? Object.assign(new Error('the connection closed before the response was complete'), { code: 'ECONNRESET' }));
      };
      this.onBytes = (chunk) => {
        exchange.gotBytes = true;
        try {
          if (!framing) {
            this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
            const parsed = parseHead(this.buf);
            if (parsed === undefined) return;
            const { response, rest } = parsed;
            this.buf = undefined;
            framing = new Framing(response);
            const first = framing.feed(rest);
            if (framing.done) {
              // The whole body came with the head: handed over as bytes, no stream.
              const whole = first.length === 1 ? first[0]! : Buffer.concat(first);
              let stream: Readable | undefined;
              finish(framing.keepAlive);
              resolve({
                statusCode: response.statusCode,
                statusMessage: response.statusMessage,
                headers: response.headers,
                whole,
                get body() {
                  return (stream ??= Readable.from([whole], { objectMode: false }));
                },
              });
              return;
            }
            const socket = this.socket;
            const stream = new Readable({
              read: () => void socket.resume(),
              destroy: (err, cb) => {
                if (!framing!.done) finish(false);
                cb(err);
              },
            });
            body = stream;
            resolve({ statusCode: response.statusCode, statusMessage: response.statusMessage, headers: response.headers, whole: undefined, body: stream });
            for (const piece of first) if (!stream.push(piece)) socket.pause();
            return;
          }
          const out = framing.feed(chunk);
          for (const piece of out) if (!body!.push(piece)) this.socket.pause();
          if (framing.done) {
            body!.push(null);
            finish(framing.keepAlive);
          }
        } catch (e) {
          fail(e as Error);
        }
      };
    });
    exchange.head.catch(() => undefined);
    this.socket.write(head, 'latin1');
    return exchange;
  }
}

/** Status line and headers, once the whole head is in `buf`; the bytes after it. */
function parseHead(buf: Buffer): { response: Omit<Http1Response, 'body' | 'whole'> & { version: number }; rest: Buffer } | undefined {
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEAD) throw protocolError(`response head over ${MAX_HEAD} bytes`);
      return undefined;
    }
    if (end > MAX_HEAD) throw protocolError(`response head over ${MAX_HEAD} bytes`);
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const status = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (!status) throw protocolError(`status line '${lines[0]!.slice(0, 80)}'`);
    const statusCode = Number(status[2]);
    const headers: Record<string, string> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0 || line[0] === ' ' || line[0] === '\t') throw protocolError(`header line '${line.slice(0, 80)}'`);
      const name = line.slice(0, colon).toLowerCase();
      if (/[^!#$%&'*+.^_`|~0-9a-z-]/.test(name)) throw protocolError(`header name '${name.slice(0, 80)}'`);
      const value = line.slice(colon + 1).trim();
      if (name === 'content-length' && headers[name] !== undefined && headers[name] !== value) throw protocolError('conflicting Content-Length');
      headers[name] ??= value;
    }
    const rest = buf.subarray(end + 4);
    // Interim responses (100 Continue, 103 Early Hints) come before the real one.
    if (statusCode >= 100 && statusCode < 200 && statusCode !== 101) {
      buf = rest;
      continue;
    }
    return { response: { statusCode, statusMessage: status[3] ?? '', headers, version: Number(status[1]) }, rest };
  }
}

/** How the body of a response ends, and what of each chunk of bytes belongs to it. */
class Framing {
  done = false;
  readonly keepAlive: boolean;
  readonly untilClose: boolean;
  private left = 0;
  private readonly chunked: boolean;
  /** Chunked: 'size' (reading a size line), 'data', 'crlf' (after data), 'trailer'. */
  private state: 'size' | 'data' | 'crlf' | 'trailer' = 'size';
  private line = '';

  constructor(res: { statusCode: number; headers: Record<string, string>; version: number }) {
    const { headers } = res;
    const connection = (headers.connection ?? '').toLowerCase();
    let keepAlive = res.version === 1 ? !/\bclose\b/.test(connection) : /\bkeep-alive\b/.test(connection);
    const te = headers['transfer-encoding'];
    this.chunked = false;
    this.untilClose = false;
    if (res.statusCode === 204 || res.statusCode === 304) {
      this.done = true;
    } else if (te !== undefined) {
      if (te.toLowerCase() !== 'chunked') throw protocolError(`Transfer-Encoding '${te.slice(0, 80)}'`);
      this.chunked = true;
      keepAlive &&= headers['content-length'] === undefined; // both framings: not reused
    } else if (headers['content-length'] !== undefined) {
      const cl = headers['content-length'];
      if (!/^\d{1,15}$/.test(cl)) throw protocolError(`Content-Length '${cl.slice(0, 80)}'`);
      this.left = Number(cl);
      this.done = this.left === 0;
    } else {
      this.untilClose = true;
      keepAlive = false;
    }
    this.keepAlive = keepAlive;
  }

  /** The body bytes in `chunk` (views of it); throws on bytes after the body. */
  feed(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    if (this.untilClose) {
      if (chunk.length > 0) out.push(chunk);
      return out;
    }
    if (!this.chunked) {
      if (chunk.length > this.left) throw protocolError('more bytes than Content-Length');
      if (chunk.length > 0) out.push(chunk);
      this.left -= chunk.length;
      this.done = this.left === 0;
      return out;
    }
    let i = 0;
    while (i < chunk.length) {
      if (this.done) throw protocolError('bytes after the last chunk');
      if (this.state === 'data') {
        const n = Math.min(this.left, chunk.length - i);
        out.push(chunk.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'crlf';
        continue;
      }
      const nl = chunk.indexOf(10, i);
      const end = nl < 0 ? chunk.length : nl + 1;
      this.line += chunk.toString('latin1', i, end);
      i = end;
      if (this.line.length > MAX_CHUNK_LINE) throw protocolError('chunk line too long');
      if (nl < 0) break;
      const line = this.line.endsWith('\r\n') ? this.line.slice(0, -2) : this.line.slice(0, -1);
      this.line = '';
      if (this.state === 'crlf') {
        if (line !== '') throw protocolError('no CRLF after chunk data');
        this.state = 'size';
      } else if (this.state === 'size') {
        const m = /^([0-9a-fA-F]{1,15})[ \t]*(;.*)?$/.exec(line);
        if (!m) throw protocolError(`chunk size '${line.slice(0, 80)}'`);
        this.left = parseInt(m[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.done = true; // end of trailers
      }
    }
    return out;
  }
}
