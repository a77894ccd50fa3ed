/**
 * `lazystore serve`: the store as an HTTP binary cache (node:http). Routes:
 *   /nix-cache-info                      StoreDir, WantMassQuery, Priority
 *   /<hash>.narinfo                      from the path's metadata, optionally signed on the fly
 *   /nar/<hash>-<narhash>.nar            streamed uncompressed from the unpacked path (dumpPath)
 *   /log/<drv basename>                  build logs
 * The NAR URL carries the NAR hash, so a proxy never serves a stale NAR for a path rebuilt
 * with other contents; a mismatch is a 404.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LazyError } from '../errors.js';
import { formatHash } from '../nix/hash.js';
import { formatNarInfo, narInfoFingerprint, parseNarInfo } from '../nix/narinfo.js';
import { signFingerprint, type SecretKey } from '../nix/signing.js';
import { hashPart, type StorePath } from '../nix/store-path.js';
import type { LocalStore } from '../store/local-store.js';
import { dumpPath } from '../store/nar-dump.js';
import { pathInfoToNarInfo, type PathInfo } from '../store/path-info.js';
import { narInfoFile } from '../store/store-layout.js';
import { formatCacheInfo } from './cache-info.js';

export interface ServeOptions {
  signingKey?: SecretKey;
  /** Advertised in nix-cache-info (default 40, as cache.nixos.org; ties keep configuration order). */
  priority?: number;
  /** Called for each failed request (default: nothing; the CLI logs them). */
  onError?: (e: unknown, url: string) => void;
}

const NIX32_HASH = /^[0-9a-df-np-sv-z]{32}$/;

export function createCacheServer(store: LocalStore, opts: ServeOptions = {}): Server {
  const cacheInfo = formatCacheInfo({ wantMassQuery: true, priority: opts.priority ?? 40 });
  return createServer((req, res) => {
    handle(store, opts, cacheInfo, req, res).catch((e: unknown) => {
      opts.onError?.(e, req.url ?? '');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      else res.destroy();
    });
  });
}

/** Listens on `host:port` (port 0: any free one); resolves to the cache URL and a closer. */
export async function serveStore(
  store: LocalStore,
  listen: string,
  opts: ServeOptions = {},
): Promise<{ url: string; server: Server; close(): Promise<void> }> {
  const colon = listen.lastIndexOf(':');
  const host = colon > 0 ? listen.slice(0, colon).replace(/^\[|\]$/g, '') : '127.0.0.1';
  const port = Number(colon >= 0 ? listen.slice(colon + 1) : listen);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new LazyError('SUBST_BAD_LISTEN', `bad listen address '${listen}' (want HOST:PORT)`);
  const server = createCacheServer(store, opts);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new LazyError('SUBST_LISTEN', `cannot listen on ${listen}: ${e.message}`, { cause: e })));
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const h = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${h}:${actualPort}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(store: LocalStore, opts: ServeOptions, cacheInfo: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    return send(res, 405, 'text/plain', 'method not allowed\n');
  }
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const head = req.method === 'HEAD';
  if (path === '/nix-cache-info') return send(res, 200, 'text/x-nix-cache-info', cacheInfo, head);

  let m = /^\/([^/]{32})\.narinfo$/.exec(path);
  if (m) {
    const info = await pathOfHash(store, m[1]!);
    if (!info) return send(res, 404, 'text/plain', 'not found\n', head);
    const narInfo = pathInfoToNarInfo(info);
    narInfo.url = narUrl(info);
    if (opts.signingKey) {
      const key = opts.signingKey;
      narInfo.sigs = [...narInfo.sigs.filter((s) => !s.startsWith(`${key.name}:`)), signFingerprint(key, narInfoFingerprint(narInfo))];
    }
    return send(res, 200, 'text/x-nix-narinfo', formatNarInfo(narInfo), head);
  }

  m = /^\/nar\/([^/]{32})-([^/]+)\.nar$/.exec(path);
  if (m) {
    const info = await pathOfHash(store, m[1]!);
    if (!info || narUrl(info) !== path.slice(1)) return send(res, 404, 'text/plain', 'not found\n', head);
    res.writeHead(200, { 'content-type': 'application/x-nix-nar', 'content-length': String(info.narSize) });
    if (head) return void res.end();
    // A client that goes away stops the dump.
    const ctl = new AbortController();
    res.once('close', () => ctl.abort());
    await pipeline(Readable.from(dumpPath(store.realPath(info.path), { signal: ctl.signal })), res).catch((e: unknown) => {
      if (!ctl.signal.aborted) throw e;
    });
    return;
  }

  m = /^\/log\/([^/]+\.drv)$/.exec(path);
  if (m && !m[1]!.startsWith('.')) {
    const file = store.logPath(m[1]!);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) return send(res, 404, 'text/plain', 'not found\n', head);
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': String(st.size) });
    if (head) return void res.end();
    await pipeline(createReadStream(file), res);
    return;
  }
  return send(res, 404, 'text/plain', 'not found\n', head);
}

function narUrl(info: PathInfo): string {
  return `nar/${hashPart(info.path)}-${formatHash(info.narHash, 'nix32', false)}.nar`;
}

/** The valid path with this hash part: its narinfo file names it (the store's layout). */
async function pathOfHash(store: LocalStore, hash: string): Promise<PathInfo | undefined> {
  if (!NIX32_HASH.test(hash)) return undefined;
  let text: string;
  try {
    text = await readFile(narInfoFile(store.layout, hash), 'utf8');
  } catch {
    return undefined;
  }
  const storePath: StorePath = parseNarInfo(text, hash).storePath;
  return store.queryPathInfo(storePath);
}

function send(res: ServerResponse, status: number, type: string, body: string, head = false): void {
  const buf = Buffer.from(body);
  res.writeHead(status, { 'content-type': type, 'content-length': String(buf.length) });
  res.end(head ? undefined : buf);
}
