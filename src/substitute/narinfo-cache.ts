/**
 * Memory of narinfo lookups per binary cache, like Nix's narinfo disk cache: a hit is kept for
 * `positiveTtlMs` (Nix: ttl-positive-narinfo-cache = 30 days), a miss for `negativeTtlMs` (Nix:
 * ttl-negative-narinfo-cache = 1 hour, so a path pushed later is seen within the hour).
 * Concurrent lookups of one path share one request.
 */
import { LRUCache } from 'lru-cache';
import type { NarInfo } from '../nix/narinfo.js';

export interface NarInfoCacheOptions {
  positiveTtlMs?: number;
  negativeTtlMs?: number;
  /** Most remembered paths (default 100 000, a few tens of MB at most). */
  max?: number;
}

export const DEFAULT_POSITIVE_TTL_MS = 30 * 24 * 3600 * 1000;
export const DEFAULT_NEGATIVE_TTL_MS = 3600 * 1000;

interface Entry {
  info: NarInfo | undefined;
}

export class NarInfoCache {
  private readonly lru: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, Promise<NarInfo | undefined>>();
  private readonly positiveTtl: number;
  private readonly negativeTtl: number;

  constructor(opts: NarInfoCacheOptions = {}) {
    this.positiveTtl = opts.positiveTtlMs ?? DEFAULT_POSITIVE_TTL_MS;
    this.negativeTtl = opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS;
    this.lru = new LRUCache<string, Entry>({ max: opts.max ?? 100_000, ttl: this.positiveTtl, ttlAutopurge: false });
  }

  /**
   * The remembered answer for `key`, else `fetch()`'s (remembered when it resolves; errors are
   * not remembered: a cache that is down now may answer in a second).
   */
  async get(key: string, fetch: () => Promise<NarInfo | undefined>): Promise<NarInfo | undefined> {
    const hit = this.lru.get(key);
    if (hit) return hit.info;
    const running = this.inflight.get(key);
    if (running) return running;
    const p = fetch().then(
      (info) => {
        this.lru.set(key, { info }, { ttl: info ? this.positiveTtl : this.negativeTtl });
        this.inflight.delete(key);
        return info;
      },
      (e: unknown) => {
        this.inflight.delete(key);
        throw e;
      },
    );
    this.inflight.set(key, p);
    return p;
  }

  /** Forget `key` (after an import found the cache's copy broken, or a push). */
  delete(key: string): void {
    this.lru.delete(key);
  }

  clear(): void {
    this.lru.clear();
  }
}
