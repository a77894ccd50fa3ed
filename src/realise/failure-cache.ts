/**
 * Remembers failed builds and substitutions for a while, so a path whose build just failed
 * answers at once (the same error, with the failing drv and its log) instead of rebuilding
 * on every read. Cancellations are never remembered.
 */
import { isLazyError } from '../errors.js';

export class FailureCache {
  private readonly entries = new Map<string, { error: unknown; until: number }>();
  constructor(private readonly ttlMs: number) {}

  get(key: string): unknown {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (Date.now() >= e.until) {
      this.entries.delete(key);
      return undefined;
    }
    return e.error;
  }

  /** Records `error` for `key` unless it is a cancellation or the TTL is 0. */
  set(key: string, error: unknown): void {
    if (this.ttlMs <= 0 || isLazyError(error, 'ABORTED')) return;
    this.entries.set(key, { error, until: Date.now() + this.ttlMs });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
