/**
 * The configured binary caches, in priority order: find who has a path, and import it into the
 * store verified — signature (or content address), NarSize and NarHash while streaming — so
 * that nothing unverified or partial is ever registered.
 */
import { LazyError, abortError, isLazyError, throwIfAborted } from '../errors.js';
import { countValidSigs, type NarInfo } from '../nix/narinfo.js';
import type { PublicKey } from '../nix/signing.js';
import { parseStoreBaseName, type StorePath } from '../nix/store-path.js';
import { pathInfoFromNarInfo, type PathInfo } from '../store/path-info.js';
import { WholeBytes } from '../nix/whole-bytes.js';
import type { BinaryCache } from './binary-cache.js';
import { isContentAddressedPath } from './content-address.js';

/** What importing needs from the store (LocalStore provides it). */
export interface ImportTarget {
  isValid(p: StorePath, opts?: { signal?: AbortSignal }): Promise<boolean>;
  queryPathInfo(p: StorePath, opts?: { signal?: AbortSignal }): Promise<PathInfo | undefined>;
  /**
   * Restores the NAR, checks NarSize (while streaming), NarHash and CA against `expected`, and
   * registers atomically; on failure nothing is left (STORE_NAR_SIZE_MISMATCH,
   * STORE_NAR_HASH_MISMATCH, STORE_CA_MISMATCH, NAR_* from the reader).
   */
  addFromNar(stream: AsyncIterable<Uint8Array>, expected: PathInfo, opts?: { signal?: AbortSignal }): Promise<PathInfo>;
}

export interface Found {
  info: NarInfo;
  cache: BinaryCache;
}

export interface SubstitutersOptions {
  trustedKeys?: readonly PublicKey[];
  /** Refuse paths without a valid signature by a trusted key (default true, like Nix). */
  requireSigs?: boolean;
  /** Whole-import attempts on transient network failures (default 3). */
  importAttempts?: number;
}

export class Substituters {
  /** Sorted by priority, lower first; equal priorities keep the given order. */
  readonly caches: readonly BinaryCache[];
  private readonly trustedKeys: readonly PublicKey[];
  private readonly requireSigs: boolean;
  private readonly importAttempts: number;

  constructor(caches: readonly BinaryCache[], opts: SubstitutersOptions = {}) {
    this.caches = [...caches].map((c, i) => [c, i] as const).sort((a, b) => a[0].priority - b[0].priority || a[1] - b[1]).map(([c]) => c);
    this.trustedKeys = opts.trustedKeys ?? [];
    this.requireSigs = opts.requireSigs ?? true;
    this.importAttempts = Math.max(1, opts.importAttempts ?? 3);
  }

  /**
   * The first cache (by priority) that has `p`, or undefined when every cache said it has not.
   * A cache that fails is skipped; if none has the path and one failed, throws
   * SUBST_QUERY_FAILED (details.errors) — "unknown" must not be mistaken for "absent".
   */
  async query(p: StorePath, opts: { signal?: AbortSignal } = {}): Promise<Found | undefined> {
    const errors: LazyError[] = [];
    for (const cache of this.caches) {
      throwIfAborted(opts.signal);
      try {
        const info = await cache.getNarInfo(p, opts);
        if (info) return { info, cache };
      } catch (e) {
        if (isLazyError(e, 'ABORTED')) throw e;
        errors.push(isLazyError(e) ? e : new LazyError('SUBST_QUERY_FAILED', String(e), { cause: e }));
      }
    }
    if (errors.length === 0) return undefined;
    throw new LazyError('SUBST_QUERY_FAILED', `cannot query ${p}: ${errors.map((e) => e.message).join('; ')}`, {
      cause: errors[0],
      details: { path: p, errors: errors.map((e) => ({ code: e.code, message: e.message })) },
    });
  }

  /** Throws SUBST_SIG unless `info` is trusted: signed by a trusted key, or content-addressed. */
  checkTrust(info: NarInfo, cache: BinaryCache): void {
    if (!this.requireSigs || isContentAddressedPath(info)) return;
    if (countValidSigs(info, this.trustedKeys) > 0) return;
    const why = info.sigs.length === 0 ? 'it has no signature' : `none of its signatures (${info.sigs.map((s) => s.split(':')[0]).join(', ')}) is valid under a trusted key`;
    throw new LazyError('SUBST_SIG', `${info.storePath} from ${cache.url} is not trusted: ${why}`, {
      details: {
        path: info.storePath,
        cache: cache.url,
        expected: this.trustedKeys.map((k) => k.name),
        actual: info.sigs,
      },
    });
  }

  /**
   * Imports `found` into `store`: trust first, then the NAR streamed through the checks into
   * `store.addFromNar`. References other than the path itself must already be valid. Transient
   * network failures restart the import (nothing partial is left by a failed one).
   */
  async importPath(store: ImportTarget, found: Found, opts: { signal?: AbortSignal } = {}): Promise<PathInfo> {
    const { info, cache } = found;
    const { signal } = opts;
    throwIfAborted(signal);
    this.checkTrust(info, cache);
    const expected = pathInfoFromNarInfo(info, `${cache.url}/${info.storePath.slice(11, 43)}.narinfo`);
    if (expected.narHash.algo !== 'sha256') {
      throw new LazyError('SUBST_BAD_NARINFO', `${info.storePath}: NarHash must be sha256, not ${expected.narHash.algo}`, {
        details: { path: info.storePath },
      });
    }
    for (const ref of info.references) {
      const r = parseStoreBaseName(ref);
      if (r !== info.storePath && !(await store.isValid(r, { signal }))) {
        throw new LazyError('SUBST_MISSING_REFERENCE', `cannot import ${info.storePath}: its reference ${r} is not valid yet`, {
          details: { path: info.storePath, reference: r },
        });
      }
    }
    // Valid meanwhile? addFromNar looks (and then discards the download unread).
    for (let attempt = 1; ; attempt++) {
      const watch = new SourceWatch();
      try {
        return await store.addFromNar(watch.wrap(await cache.getNar(info, { signal })), expected, { signal });
      } catch (caught) {
        // A failing download or decompressor is the real cause, whatever the NAR reader made of it.
        const e = watch.error ?? caught;
        if (signal?.aborted) throw abortError(signal);
        if (isLazyError(e) && e.details.transient === true && attempt < this.importAttempts) continue;
        // A broken copy: forget the narinfo so a fixed cache is seen without waiting for the TTL.
        if (isLazyError(e) && e.code !== 'ABORTED') cache.forget(info.storePath);
        throw fromCache(e, info, cache);
      }
    }
  }
}

/** Remembers the error the NAR source itself threw, if any. */
class SourceWatch {
  error: unknown;
  /** A source held whole cannot fail any more: it is passed on as it is. */
  wrap(source: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    return source instanceof WholeBytes ? source : this.watch(source);
  }

  private async *watch(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      yield* source;
    } catch (e) {
      this.error = e;
      throw e;
    }
  }
}

/** The store's error, with the cache it came from added to the message and details. */
function fromCache(e: unknown, info: NarInfo, cache: BinaryCache): unknown {
  if (!isLazyError(e) || e.code === 'ABORTED') return e;
  return new LazyError(e.code, `substituting ${info.storePath} from ${cache.url}: ${e.message}`, {
    cause: e,
    details: { ...e.details, path: info.storePath, cache: cache.url },
  });
}
