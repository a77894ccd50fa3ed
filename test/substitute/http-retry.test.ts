/**
 * Retries against a real HTTP server that misbehaves on purpose: 5xx and connection resets are
 * retried with backoff, 404/403 are answers (never retried), a stalled body times out.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FIXTURES, manifest } from '../helpers/fixtures.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { HttpTransport } from '../../src/substitute/http-cache.js';
import { parseStorePath } from '../../src/nix/store-path.js';

type Mode = { kind: 'ok' } | { kind: 'cut'; times: number } | { kind: 'status'; status: number; times: number } | { kind: 'reset'; times: number } | { kind: 'stall' };
let mode: Mode = { kind: 'ok' };
const hits = new Map<string, number>();
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const url = req.url ?? '/';
    const n = (hits.get(url) ?? 0) + 1;
    hits.set(url, n);
    if (mode.kind === 'status' && n <= mode.times) {
      res.writeHead(mode.status).end('nope');
      return;
    }
    if (mode.kind === 'reset' && n <= mode.times) {
      req.socket.destroy();
      return;
    }
    // A body too large to be read whole (HttpTransport streams those).
    const big = url === '/nar/big.nar' ? Promise.resolve(Buffer.alloc(3 << 20)) : undefined;
    (big ?? readFile(join(FIXTURES, 'cache', url))).then(
      (data) => {
        if (mode.kind === 'cut' && url.startsWith('/nar/') && n <= mode.times) {
          res.writeHead(200, { 'content-length': data.length });
          res.write(data.subarray(0, Math.floor(data.length / 2)), () => res.destroy());
          return;
        }
        if (mode.kind === 'stall' && url.startsWith('/nar/')) {
          res.writeHead(200, { 'content-length': data.length });
          res.write(data.subarray(0, 10)); // then nothing
          return;
        }
        res.writeHead(200).end(data);
      },
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});
beforeEach(() => {
  mode = { kind: 'ok' };
  hits.clear();
});

const out = () => manifest().derivations.find((d) => d.label === 'single')!.outputs.out!;
const narinfoUrl = () => `/${out().path.slice(11, 43)}.narinfo`;
const fast = { http: { backoffMs: 1, attempts: 4 } };

describe('HTTP retries', () => {
  it('retries 5xx until it succeeds', async () => {
    const cache = await openBinaryCache(base, fast);
    mode = { kind: 'status', status: 503, times: 2 };
    expect((await cache.getNarInfo(parseStorePath(out().path)))?.storePath).toBe(out().path);
    expect(hits.get(narinfoUrl())).toBe(3);
  });

  it('retries connection resets', async () => {
    const cache = await openBinaryCache(base, fast);
    mode = { kind: 'reset', times: 2 };
    expect(await cache.getNarInfo(parseStorePath(out().path))).toBeDefined();
    expect(hits.get(narinfoUrl())).toBe(3);
  });

  it('gives up after the attempts with SUBST_HTTP', async () => {
    const cache = await openBinaryCache(base, fast);
    mode = { kind: 'status', status: 500, times: 100 };
    await expect(cache.getNarInfo(parseStorePath(out().path))).rejects.toMatchObject({ code: 'SUBST_HTTP' });
    expect(hits.get(narinfoUrl())).toBe(4);
  });

  it.each([404, 403, 410])('treats %i as absent, once', async (status) => {
    const cache = await openBinaryCache(base, fast);
    mode = { kind: 'status', status, times: 100 };
    expect(await cache.getNarInfo(parseStorePath(out().path))).toBeUndefined();
    expect(hits.get(narinfoUrl())).toBe(1);
  });

  it('does not retry other 4xx', async () => {
    const t = new HttpTransport(base, { backoffMs: 1 });
    mode = { kind: 'status', status: 400, times: 100 };
    await expect(t.getText('x.narinfo')).rejects.toMatchObject({ code: 'SUBST_HTTP', details: { status: 400, transient: false } });
    expect(hits.get('/x.narinfo')).toBe(1);
  });

  it('fails a stalled NAR body with SUBST_HTTP_TIMEOUT', async () => {
    const cache = await openBinaryCache(base, { http: { backoffMs: 1, stallTimeoutMs: 300 } });
    const info = (await cache.getNarInfo(parseStorePath(out().path)))!;
    mode = { kind: 'stall' };
    // A small NAR is read whole before getNar returns; a large one while it is iterated.
    await expect(
      (async () => {
        for await (const _ of await cache.getNar(info)) void _;
      })(),
    ).rejects.toMatchObject({ code: 'SUBST_HTTP_TIMEOUT' });
  });

  it('fails a stalled large (streamed) body with SUBST_HTTP_TIMEOUT', async () => {
    const t = new HttpTransport(base, { backoffMs: 1, stallTimeoutMs: 300 });
    mode = { kind: 'stall' };
    const body = (await t.get('nar/big.nar'))!;
    let got = 0;
    await expect(
      (async () => {
        for await (const c of body) got += c.length;
      })(),
    ).rejects.toMatchObject({ code: 'SUBST_HTTP_TIMEOUT' });
    expect(got).toBe(10);
  });

  it('restarts an import whose NAR download broke off midway, and gives up after the attempts', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { LocalStore } = await import('../../src/store/local-store.js');
    const { Substituters } = await import('../../src/substitute/substituters.js');
    const state = await mkdtemp(join(tmpdir(), 'lazystore-http-'));
    try {
      const store = await LocalStore.open(state);
      const subs = new Substituters([await openBinaryCache(base, fast)], { requireSigs: false, importAttempts: 3 });
      const p = parseStorePath(out().path);
      const found = (await subs.query(p))!;
      mode = { kind: 'cut', times: 2 };
      const info = await subs.importPath(store, found);
      expect(info.narSize).toBe(out().narSize);
      expect(hits.get(`/${found.info.url}`)).toBe(3);

      const other = await LocalStore.open(join(state, 'other'));
      hits.clear();
      mode = { kind: 'cut', times: 100 };
      await expect(subs.importPath(other, found)).rejects.toMatchObject({ code: 'SUBST_HTTP', details: { path: p } });
      expect(hits.get(`/${found.info.url}`)).toBe(3);
      expect(await other.isValid(p)).toBe(false);
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  });

  it('cancels through the signal', async () => {
    const cache = await openBinaryCache(base, fast);
    mode = { kind: 'status', status: 503, times: 100 };
    const ctl = new AbortController();
    ctl.abort();
    await expect(cache.getNarInfo(parseStorePath(out().path), { signal: ctl.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
