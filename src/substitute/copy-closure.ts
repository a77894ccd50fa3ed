/**
 * `copy --from`: substitute the closure of some paths. Every path is queried and imported at
 * most once; a path is imported only after all its references are valid; at most `jobs`
 * queries/imports run at once (waiting for references holds no slot, so it cannot deadlock).
 */
import pLimit from 'p-limit';
import { LazyError, throwIfAborted } from '../errors.js';
import { parseStoreBaseName, type StorePath } from '../nix/store-path.js';
import type { PathInfo } from '../store/path-info.js';
import type { ImportTarget, Substituters } from './substituters.js';

export interface CopyProgress {
  path: StorePath;
  state: 'valid' | 'imported';
  info?: PathInfo;
  narSize?: number;
}

export interface CopyClosureOptions {
  /** Most queries/imports at once (default 8: downloads overlap with hashing and unpacking). */
  jobs?: number;
  signal?: AbortSignal;
  onProgress?: (p: CopyProgress) => void;
}

export interface CopyClosureResult {
  /** Paths imported by this call, references before referrers. */
  imported: StorePath[];
  /** Paths of the closure that were valid already. */
  alreadyValid: StorePath[];
}

export async function copyClosure(
  store: ImportTarget,
  substituters: Substituters,
  paths: Iterable<StorePath>,
  opts: CopyClosureOptions = {},
): Promise<CopyClosureResult> {
  const { signal } = opts;
  const limit = pLimit(Math.max(1, opts.jobs ?? 8));
  const jobs = new Map<StorePath, Promise<void>>();
  const result: CopyClosureResult = { imported: [], alreadyValid: [] };
  // Stop starting new work after the first failure; in-flight imports finish or abort cleanly.
  const failed = new AbortController();
  const stop = signal ? AbortSignal.any([signal, failed.signal]) : failed.signal;

  const ensure = (p: StorePath): Promise<void> => {
    let job = jobs.get(p);
    if (!job) {
      job = run(p);
      job.catch(() => failed.abort());
      jobs.set(p, job);
    }
    return job;
  };

  const run = async (p: StorePath): Promise<void> => {
    const found = await limit(async () => {
      throwIfAborted(stop);
      if (await store.isValid(p, { signal })) return 'valid' as const;
      const f = await substituters.query(p, { signal });
      if (!f) {
        throw new LazyError('SUBST_NOT_FOUND', `no binary cache has ${p} (asked ${substituters.caches.map((c) => c.url).join(', ') || 'none'})`, {
          details: { path: p },
        });
      }
      return f;
    });
    if (found === 'valid') {
      result.alreadyValid.push(p);
      opts.onProgress?.({ path: p, state: 'valid' });
      return;
    }
    const refs = found.info.references.map((r) => parseStoreBaseName(r)).filter((r) => r !== p);
    await Promise.all(refs.map(ensure));
    const info = await limit(() => {
      throwIfAborted(stop);
      return substituters.importPath(store, found, { signal });
    });
    result.imported.push(p);
    opts.onProgress?.({ path: p, state: 'imported', info, narSize: info.narSize });
  };

  const roots = [...new Set(paths)];
  const outcomes = await Promise.allSettled(roots.map(ensure));
  // Wait for everything started (references of failed roots too) before reporting.
  await Promise.allSettled([...jobs.values()]);
  const error = await firstRealError([...jobs.values()], outcomes);
  if (error !== undefined) throw error;
  return result;
}

/** The first rejection that is not merely "stopped because another job failed". */
async function firstRealError(all: Promise<void>[], roots: PromiseSettledResult<void>[]): Promise<unknown> {
  const errors: unknown[] = [];
  for (const job of all) {
    try {
      await job;
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length === 0 && roots.every((r) => r.status === 'fulfilled')) return undefined;
  return errors.find((e) => !(e instanceof LazyError && e.code === 'ABORTED')) ?? errors[0];
}
