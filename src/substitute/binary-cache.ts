/**
 * A binary cache to substitute from: `file://DIR` or `http(s)://HOST/…`. Reads nix-cache-info
 * once at open, answers narinfo lookups (remembered with TTLs, see narinfo-cache.ts) and
 * streams decompressed NARs.
 */
import { LazyError } from '../errors.js';
import { parseNarInfo, type NarInfo } from '../nix/narinfo.js';
import { hashPart, type StorePath } from '../nix/store-path.js';
import { parseCacheInfo } from './cache-info.js';
import { isSafeRelativeUrl, type CacheTransport } from './cache-transport.js';
import { decompress } from './decompress.js';
import { FileTransport } from './file-cache.js';
import type { HttpOptions } from './http-cache.js';
import { NarInfoCache, type NarInfoCacheOptions } from './narinfo-cache.js';

export interface BinaryCache {
  /** The cache's URL without query parameters, as it appears in messages. */
  readonly url: string;
  /** Lower is tried first (nix-cache-info `Priority`, or `?priority=` on the URL; default 50). */
  readonly priority: number;
  readonly wantMassQuery: boolean;
  /** The narinfo of `p`, or undefined when the cache does not have it. */
  getNarInfo(p: StorePath, opts?: { signal?: AbortSignal }): Promise<NarInfo | undefined>;
  /** The NAR described by `info`, decompressed, streamed. Not verified: the importer does that. */
  getNar(info: NarInfo, opts?: { signal?: AbortSignal }): Promise<AsyncIterable<Buffer>>;
  /** Forget a remembered narinfo (e.g. after its NAR turned out to be corrupt). */
  forget(p: StorePath): void;
}

export interface OpenBinaryCacheOptions extends NarInfoCacheOptions {
  http?: HttpOptions;
  signal?: AbortSignal;
}

export async function openBinaryCache(url: string, opts: OpenBinaryCacheOptions = {}): Promise<BinaryCache> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (e) {
    throw new LazyError('SUBST_BAD_URL', `'${url}' is not a URL (use file:///dir or http(s)://host/…)`, { cause: e });
  }
  let transport: CacheTransport;
  if (parsed.protocol === 'file:') transport = new FileTransport(url.split('?')[0]!);
  // Loaded on demand: node:http, https, tls and zlib cost ~3 ms to load, for nothing with file://.
  else if (parsed.protocol === 'http:' || parsed.protocol === 'https:') transport = new (await import('./http-cache.js')).HttpTransport(url, opts.http);
  else throw new LazyError('SUBST_BAD_URL', `unsupported binary cache URL scheme '${parsed.protocol}' in ${url}`);

  const text = await transport.getText('nix-cache-info', { signal: opts.signal });
  if (text === undefined) {
    throw new LazyError('SUBST_NO_CACHE', `${transport.url} is not a binary cache (it has no nix-cache-info)`, {
      details: { url: transport.url },
    });
  }
  const info = parseCacheInfo(text, transport.url);
  const override = parsed.searchParams.get('priority');
  const priority = override !== null && Number.isInteger(Number(override)) ? Number(override) : info.priority;
  return new TransportCache(transport, priority, info.wantMassQuery, opts);
}

class TransportCache implements BinaryCache {
  readonly url: string;
  private readonly narInfos: NarInfoCache;

  constructor(
    private readonly transport: CacheTransport,
    readonly priority: number,
    readonly wantMassQuery: boolean,
    opts: NarInfoCacheOptions,
  ) {
    this.url = transport.url;
    this.narInfos = new NarInfoCache(opts);
  }

  getNarInfo(p: StorePath, opts: { signal?: AbortSignal } = {}): Promise<NarInfo | undefined> {
    const hash = hashPart(p);
    return this.narInfos.get(hash, async () => {
      const where = `${this.url}/${hash}.narinfo`;
      const text = await this.transport.getText(`${hash}.narinfo`, opts);
      if (text === undefined) return undefined;
      const info = parseNarInfo(text, where);
      if (info.storePath !== p) {
        // Same hash part, other name: the cache has another path, not the one we asked for.
        if (hashPart(info.storePath) === hash) return undefined;
        throw new LazyError('SUBST_NARINFO_MISMATCH', `${where} describes ${info.storePath}, not ${p}`, {
          details: { url: where, expected: p, actual: info.storePath },
        });
      }
      return info;
    });
  }

  async getNar(info: NarInfo, opts: { signal?: AbortSignal } = {}): Promise<AsyncIterable<Buffer>> {
    if (!isSafeRelativeUrl(info.url)) {
      throw new LazyError('SUBST_BAD_URL', `narinfo of ${info.storePath} in ${this.url} has unsafe URL '${info.url}'`, {
        details: { path: info.storePath, url: info.url },
      });
    }
    const what = `${this.url}/${info.url}`;
    const raw = await this.transport.get(info.url, opts);
    if (raw === undefined) {
      throw new LazyError('SUBST_NAR_MISSING', `${what} (the NAR of ${info.storePath}) does not exist`, {
        details: { path: info.storePath, url: what },
      });
    }
    return decompress(raw, info.compression, { what, expectedSize: info.narSize, signal: opts.signal });
  }

  forget(p: StorePath): void {
    this.narInfos.delete(hashPart(p));
  }
}
