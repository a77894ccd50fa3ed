/**
 * Our HTTP/1.1 client (src/substitute/http1.ts) through HttpTransport, against servers that
 * answer every way HTTP/1.1 allows — Content-Length, chunked (with extensions and trailers),
 * until-close, gzip, redirects, HTTP/1.0 — and ways it does not: each malformed response is an
 * error (its connection dropped), never a wrong body.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { HttpTransport } from '../../src/substitute/http-cache.js';

const big = Buffer.alloc(3 << 20).map((_, i) => (i * 7919) % 251);
let http: HttpServer;
let base: string;
const connections = new Set<Socket>();
let lastAuth: string | undefined;

/** Raw responses, by path, written as they are (the connection is closed after them). */
const raw: Record<string, string | Buffer> = {
  '/http10': 'HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello',
  '/until-close': 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end',
  '/bad-status': 'HTTP/9 200 OK\r\nContent-Length: 0\r\n\r\n',
  '/two-lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  '/bad-length': 'HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello',
  '/bad-te': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello',
  '/bad-chunk': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  '/folded': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n',
  '/huge-head': `HTTP/1.1 200 OK\r\nX-Pad: ${'a'.repeat(70 << 10)}\r\nContent-Length: 0\r\n\r\n`,
  '/truncated': 'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly part',
  '/chunked-ext': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n',
};
let rawServer: NetServer;
let staleHits = 0;
let rawBase: string;

beforeAll(async () => {
  http = createHttpServer((req, res) => {
    lastAuth = req.headers.authorization;
    const url = req.url ?? '/';
    if (url === '/chunked') {
      res.writeHead(200); // no length: Node sends it chunked
      res.write('one,');
      setTimeout(() => res.end('two'), 5);
    } else if (url === '/gzip') {
      const body = gzipSync('decoded by the client');
      res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': body.length }).end(body);
    } else if (url === '/big') {
      res.writeHead(200, { 'content-length': big.length }).end(big);
    } else if (url === '/redirect') {
      res.writeHead(302, { location: '/small' }).end('moved');
    } else if (url === '/small') {
      res.writeHead(200, { 'content-length': 5 }).end('small');
    } else if (url === '/bye') {
      // Answers, then closes the kept-alive connection a moment later (as a server's idle timeout does).
      res.writeHead(200, { 'content-length': 3 }).end('bye', () => setTimeout(() => req.socket.destroy(), 20));
    } else res.writeHead(404).end();
  });
  http.on('connection', (s) => {
    connections.add(s);
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;

  rawServer = createNetServer((s) => {
    let head = '';
    let served = 0;
    s.on('data', (d) => {
      head += d.toString('latin1');
      const path = /^GET (\S+)/.exec(head)?.[1];
      if (path === undefined || !head.includes('\r\n\r\n')) return;
      head = '';
      if (path === '/hang') return; // never answers
      if (path === '/stale') {
        // The first request of a connection is answered and the connection kept; a second one
        // finds it closed without an answer, like a kept-alive connection the server dropped.
        if (served++ === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh');
        else s.destroy();
        staleHits++;
        return;
      }
      s.end(raw[path] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => rawServer.listen(0, '127.0.0.1', r));
  rawBase = `http://127.0.0.1:${(rawServer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
  await new Promise((r) => rawServer.close(r));
});

const text = (t: HttpTransport, rel: string) => t.getText(rel);
async function bytes(t: HttpTransport, rel: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of (await t.get(rel))!) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('the HTTP/1.1 client', () => {
  it('reads Content-Length, chunked and gzip bodies, follows redirects, and reports 404 as absent', async () => {
    const t = new HttpTransport(base, { attempts: 1 });
    expect(await text(t, 'small')).toBe('small');
    expect(await text(t, 'chunked')).toBe('one,two');
    expect(await text(t, 'gzip')).toBe('decoded by the client');
    expect(await text(t, 'redirect')).toBe('small');
    expect(await text(t, 'missing')).toBeUndefined();
  });

  it('streams a large body intact', async () => {
    const t = new HttpTransport(base, { attempts: 1 });
    const got = await bytes(t, 'big');
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
  });

  it('keeps connections alive: many requests, few connections', async () => {
    const t = new HttpTransport(base, { attempts: 1 });
    const before = connections.size;
    for (let i = 0; i < 50; i++) expect(await text(t, 'small')).toBe('small');
    expect(connections.size - before).toBeLessThanOrEqual(1);
  });

  it('asks again on a new connection when a kept-alive one was closed by the server', async () => {
    const t = new HttpTransport(rawBase, { attempts: 1 }); // no retries of its own: the client's single retry does it
    staleHits = 0;
    expect(await text(t, 'stale')).toBe('fresh');
    expect(await text(t, 'stale')).toBe('fresh');
    expect(staleHits).toBe(3); // answered, dropped, answered on a new connection
  });

  it('notices a kept-alive connection the server closed while it was idle', async () => {
    const t = new HttpTransport(base, { attempts: 1 });
    expect(await text(t, 'bye')).toBe('bye');
    await new Promise((r) => setTimeout(r, 100));
    expect(await text(t, 'small')).toBe('small');
  });

  it('sends the credentials of the URL as Basic authorization', async () => {
    const t = new HttpTransport(base.replace('http://', 'http://user:p%40ss@'), { attempts: 1 });
    expect(await text(t, 'small')).toBe('small');
    expect(lastAuth).toBe(`Basic ${Buffer.from('user:p@ss').toString('base64')}`);
  });

  it('reads HTTP/1.0, until-close bodies and chunks with extensions and trailers', async () => {
    const t = new HttpTransport(rawBase, { attempts: 1 });
    expect(await text(t, 'http10')).toBe('hello');
    expect(await text(t, 'until-close')).toBe('until the end');
    expect(await text(t, 'chunked-ext')).toBe('hello world');
  });

  it.each(['bad-status', 'two-lengths', 'bad-length', 'bad-te', 'bad-chunk', 'folded', 'huge-head'])('refuses a malformed response (%s)', async (path) => {
    const t = new HttpTransport(rawBase, { attempts: 1 });
    await expect(t.getText(path)).rejects.toMatchObject({ code: 'SUBST_HTTP', message: expect.stringMatching(/bad HTTP response/) });
  });

  it('gives up waiting for a free connection as soon as the request is cancelled', async () => {
    const t = new HttpTransport(rawBase, { attempts: 1, headersTimeoutMs: 60_000 });
    const ctl = new AbortController();
    // Every connection of the origin busy with a request that is never answered…
    const busy = Array.from({ length: 16 }, () => t.getText('hang', { signal: ctl.signal }).catch((e: unknown) => e));
    await new Promise((r) => setTimeout(r, 50));
    // …so this one waits for a connection; cancelling it ends the wait at once.
    const waiting = new AbortController();
    const queued = t.getText('small', { signal: waiting.signal });
    const t0 = Date.now();
    waiting.abort();
    await expect(queued).rejects.toMatchObject({ code: 'ABORTED' });
    expect(Date.now() - t0).toBeLessThan(1000);
    ctl.abort();
    for (const e of await Promise.all(busy)) expect(e).toMatchObject({ code: 'ABORTED' });
  });

  it('fails a body cut short by the server as a transient error', async () => {
    const t = new HttpTransport(rawBase, { attempts: 1 });
    await expect(t.getText('truncated')).rejects.toMatchObject({ code: 'SUBST_HTTP', details: { transient: true } });
  });
});
