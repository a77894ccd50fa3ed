/**
 * Memory of narinfo lookups per binary cache, like Nix's narinfo disk cache: a hit is kept for
 * `positiveTtlMs` (Nix: ttl-positive-narinfo-cache = 30 days), a miss for `negativeTtlMs` (Nix:
 * ttl-negative-narinfo-cache = 1 hour, so a path pushed later is seen within the hour).
 * Concurrent lookups of one path share one request. At most `max` answers are kept, least
 * recently used dropped first.
 *
 * A Map in recency order (a hit is moved to the end) rather than lru-cache: that one allocates
 * its arrays for `max` entries up front, 7.5 ms for the default 100 000 with TTLs — paid by
 * every `lazystore copy` run, which remembers a few hundred.
 */
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
  /** performance.now() after which the entry is stale. */
  expires: number;
}

export class NarInfoCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inflight = new Map<string, Promise<NarInfo | undefined>>();
  private readonly positiveTtl: number;
  private readonly negativeTtl: number;
  private readonly max: number;

  constructor(opts: NarInfoCacheOptions = {}) {
    this.positiveTtl = opts.positiveTtlMs ?? DEFAULT_POSITIVE_TTL_MS;
    this.negativeTtl = opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS;
    this.max = Math.max(1, opts.max ?? 100_000);
  }

  /**
   * The remembered answer for `key`, else `fetch()`'s (remembered when it resolves; errors are
   * not remembered: a cache that is down now may answer in a second).
   */
  async get(key: string, fetch: () => Promise<NarInfo | undefined>): Promise<NarInfo | undefined> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      if (hit.expires > performance.now()) {
        this.entries.set(key, hit); // most recently used
        return hit.info;
      }
    }
    const running = this.inflight.get(key);
    if (running) return running;
    const p = fetch().then(
      (info) => {
        this.remember(key, info);
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
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  private remember(key: string, info: NarInfo | undefined): void {
    const ttl = info ? this.positiveTtl : this.negativeTtl;
    if (!(ttl > 0)) return; // a zero TTL remembers nothing
    this.entries.delete(key);
    this.entries.set(key, { info, expires: performance.now() + ttl });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }
}
