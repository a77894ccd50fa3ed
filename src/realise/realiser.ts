/**
 * From "I need this store path" to a valid path: the one place where work is started.
 *   1. valid in the store                → its PathInfo
 *   2. a substituter has it              → realise its references, then import (≤ maxSubstitutions at once)
 *   3. a known derivation produces it    → realise the needed input outputs and inputSrcs
 *                                          concurrently, then build (≤ maxJobs at once)
 *   4. else REALISE_NOT_FOUND
 * Every request for a path, and for any output of one derivation, joins one in-flight job
 * (`inflight`, keyed `path:<p>` / `drv:<drvPath>`). Failures reach every waiter and are
 * remembered for failureTtlMs; a waiter's cancellation cancels only its own wait.
 */
import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import pLimit, { type LimitFunction } from 'p-limit';
import { LazyError, isLazyError, throwIfAborted } from '../errors.js';
import type { StorePath } from '../nix/store-path.js';
import { parseStoreBaseName, parseStorePath } from '../nix/store-path.js';
import { buildDerivation } from '../build/build-derivation.js';
import { fixedOutputSpec } from '../build/finish-outputs.js';
import type { Derivation } from '../nix/derivation.js';
import type { LocalStore } from '../store/local-store.js';
import type { PathInfo } from '../store/path-info.js';
import type { Substituters } from '../substitute/substituters.js';
import { FailureCache } from './failure-cache.js';
import { CycleWatch, Job, waitForJob } from './job.js';
import { neededInputs, type KnownDerivations } from './known-derivations.js';
import type { ProgressCounts, ProgressEvent, ProgressListener, WorkKind } from './progress.js';

export interface RealiserOptions {
  known?: KnownDerivations;
  substituters?: Substituters;
  /** Most builds at once (default: cores). */
  maxJobs?: number;
  /** Most substitutions at once (default 8: downloads wait on the network, not the CPU). */
  maxSubstitutions?: number;
  /** NIX_BUILD_CORES (default: cores). */
  cores?: number;
  /** How long a failure is answered from memory (default 60 s; 0 = never). */
  failureTtlMs?: number;
  timeoutMs?: number;
  maxSilentMs?: number;
  /** Per-build log limit in bytes (default 64 MiB, 0 = none); see BuildDerivationOptions. */
  maxLogSize?: number;
  /** Per-build bound on /build, /tmp and the outputs, in bytes (default: none); see BuildDerivationOptions. */
  maxBuildSize?: number;
}

export interface Plan {
  kind: 'valid' | 'substitute' | 'build';
  /** 'regular' for a flat fixed-output derivation's output; otherwise unknown until realised. */
  typeHint?: 'regular' | 'directory' | 'symlink';
}

export class Realiser {
  readonly store: LocalStore;
  readonly known: KnownDerivations | undefined;
  readonly substituters: Substituters | undefined;
  readonly maxJobs: number;
  readonly maxSubstitutions: number;
  private readonly opts: RealiserOptions;
  private readonly builds: LimitFunction;
  /** Builds between input realisation and registration: bounds scratch dirs prepared ahead. */
  private readonly staging: LimitFunction;
  private readonly substitutions: LimitFunction;
  private readonly inflight = new Map<string, Job<unknown>>();
  private readonly failures: FailureCache;
  private readonly cycles = new CycleWatch();
  /** Paths whose cache copy failed to import: their derivation builds them instead of asking again. */
  private readonly cacheFailed = new Set<StorePath>();
  private readonly events = new EventEmitter();
  readonly counts: ProgressCounts = { done: 0, running: 0, finishing: 0, queued: 0, failed: 0 };

  constructor(store: LocalStore, opts: RealiserOptions = {}) {
    this.store = store;
    this.known = opts.known;
    this.substituters = opts.substituters;
    this.opts = opts;
    this.maxJobs = Math.max(1, opts.maxJobs ?? availableParallelism());
    this.maxSubstitutions = Math.max(1, opts.maxSubstitutions ?? 8);
    this.builds = pLimit(this.maxJobs);
    this.staging = pLimit(2 * this.maxJobs);
    this.substitutions = pLimit(this.maxSubstitutions);
    this.failures = new FailureCache(opts.failureTtlMs ?? 60_000);
  }

  onProgress(listener: ProgressListener): () => void {
    this.events.on('progress', listener);
    return () => this.events.off('progress', listener);
  }

  /** Makes `p` valid (substituting or building as needed) and returns its PathInfo. */
  async realise(p: StorePath, opts: { signal?: AbortSignal } = {}): Promise<PathInfo> {
    throwIfAborted(opts.signal);
    const info = await this.store.queryPathInfo(p);
    if (info) return info;
    return waitForJob(this.pathJob(p), undefined, opts.signal);
  }

  /** Builds (or finds valid) every output of a known derivation. */
  async realiseDrv(drvPath: StorePath, opts: { signal?: AbortSignal } = {}): Promise<Map<string, PathInfo>> {
    throwIfAborted(opts.signal);
    return waitForJob(this.drvJob(drvPath), undefined, opts.signal);
  }

  /** What realise(p) would do, without starting work (a store lookup, a narinfo query, a readlink). */
  async plan(p: StorePath, opts: { signal?: AbortSignal } = {}): Promise<Plan | undefined> {
    if (await this.store.isValid(p)) return { kind: 'valid' };
    if ((await this.queryCaches(p, opts.signal)).found) return { kind: 'substitute' };
    const ref = await this.known?.lookupOutputFresh(p);
    if (!ref || !this.known) return undefined;
    const out = (await this.known.load(ref.drvPath)).outputs.get(ref.outputName);
    return out && fixedOutputSpec(out)?.method === 'flat' ? { kind: 'build', typeHint: 'regular' } : { kind: 'build' };
  }

  /** Asks the caches for `p`; a failed query is returned as `error`, not thrown (only cancellation is). */
  private async queryCaches(
    p: StorePath,
    signal: AbortSignal | undefined,
  ): Promise<{ found?: Awaited<ReturnType<Substituters['query']>>; error?: unknown }> {
    if (!this.substituters) return {};
    try {
      return { found: await this.substituters.query(p, { signal }) };
    } catch (e) {
      if (isLazyError(e, 'ABORTED')) throw e;
      return { error: e };
    }
  }

  /** Forgets remembered failures (all, or of one drv or path). */
  forgetFailures(key?: StorePath): void {
    if (key === undefined) this.failures.clear();
    else {
      this.failures.delete(`drv:${key}`);
      this.failures.delete(`path:${key}`);
    }
  }

  private job<T>(key: string, run: (job: Job<T>) => Promise<T>): Job<T> {
    const existing = this.inflight.get(key) as Job<T> | undefined;
    if (existing && !existing.controller.signal.aborted) return existing;
    const job = new Job<T>(key, async (j) => {
      const cached = this.failures.get(key);
      if (cached !== undefined) throw cached;
      try {
        return await run(j);
      } catch (e) {
        // remembered when the job as a whole failed (a failed cache copy that a build replaced is
        // not); "not found" and cycles are not, so a later `known add` takes effect at once
        if (!isLazyError(e, 'REALISE_NOT_FOUND') && !isLazyError(e, 'REALISE_CYCLE')) this.failures.set(key, e);
        throw e;
      }
    });
    this.inflight.set(key, job as Job<unknown>);
    this.cycles.watch(() => this.inflight.values());
    job.promise.then(
      () => this.inflight.get(key) === job && this.inflight.delete(key),
      () => this.inflight.get(key) === job && this.inflight.delete(key),
    );
    return job;
  }

  private pathJob(p: StorePath): Job<PathInfo> {
    return this.job<PathInfo>(`path:${p}`, async (job) => {
      const valid = await this.store.queryPathInfo(p);
      if (valid) return valid;
      // A cache that fails (unreachable, corrupt or untrusted copy) does not end the job: a known
      // derivation still builds the path, as Nix falls back to building; its error is kept for
      // the case where nothing can.
      let { found, error } = await this.queryCaches(p, job.signal);
      if (found && this.substituters) {
        const subst = this.substituters;
        const from = found;
        try {
          const refs = from.info.references.map((r) => parseStoreBaseName(r)).filter((r) => r !== p);
          await Promise.all(refs.map((r) => waitForJob(this.pathJob(r), job, job.signal)));
          return await this.run({ path: p }, job, () => subst.importPath(this.store, from, { signal: job.signal }));
        } catch (e) {
          if (isLazyError(e, 'ABORTED') || isLazyError(e, 'REALISE_CYCLE')) throw e;
          error = e;
          found = undefined;
          this.cacheFailed.add(p);
        }
      }
      const ref = await this.known?.lookupOutputFresh(p);
      if (ref) {
        const outs = await waitForJob(this.drvJob(ref.drvPath), job, job.signal);
        const info = outs.get(ref.outputName);
        if (info) return info;
      }
      if (error !== undefined) throw error;
      throw new LazyError('REALISE_NOT_FOUND', `don't know how to realise '${p}': no substituter has it and no known derivation produces it`, {
        details: { path: p },
      });
    });
  }

  private drvJob(drvPath: StorePath): Job<Map<string, PathInfo>> {
    return this.job(`drv:${drvPath}`, async (job) => {
      if (!this.known) throw new LazyError('REALISE_NOT_FOUND', `no known derivations to build '${drvPath}' with`, { details: { drvPath } });
      const known = this.known;
      const drv = await known.load(drvPath, { signal: job.signal });
      const outputs = new Map<string, StorePath>();
      for (const [name, o] of drv.outputs) outputs.set(name, parseStorePath(o.path));
      const valid = new Map<string, PathInfo>();
      for (const [name, p] of outputs) {
        const info = await this.store.queryPathInfo(p);
        if (info) valid.set(name, info);
      }
      if (valid.size === outputs.size) return valid;
      // like Nix: when the caches have every missing output, substitute instead of building
      if (this.substituters) {
        const missing = [...outputs].filter(([name]) => !valid.has(name));
        const retry = missing.every(([, p]) => !this.cacheFailed.has(p));
        const found = retry ? await Promise.all(missing.map(async ([, p]) => (await this.queryCaches(p, job.signal)).found)) : [];
        if (retry && found.every((f) => f !== undefined)) {
          try {
            const infos = await Promise.all(missing.map(([, p]) => waitForJob(this.pathJob(p), job, job.signal)));
            missing.forEach(([name], i) => valid.set(name, infos[i]!));
            return valid;
          } catch (e) {
            if (isLazyError(e, 'ABORTED') || isLazyError(e, 'REALISE_CYCLE')) throw e;
            // a broken or untrusted cache copy: build it instead, as Nix falls back
          }
        }
      }

      this.emit('queued', 'build', { drvPath }, +1);
      const state = { counted: false };
      try {
        const needed = await neededInputs(known, drvPath, drv, { signal: job.signal });
        await Promise.all(needed.map((p) => waitForJob(this.pathJob(p), job, job.signal)));
        const inputPaths = await this.store.closure(needed);
        return await this.staging(() => this.build({ drvPath, drv, outputs, inputPaths }, job, state));
      } finally {
        if (!state.counted) this.emit('dropped', 'build', { drvPath }, -1);
      }
    });
  }

  /**
   * One build. Scratch set-up and output registration run under `staging` (2 × maxJobs), only
   * the sandbox under `builds` (maxJobs): at --max-jobs 1 the next build's set-up (~10 ms of
   * directory and link creation here) overlaps this one's builder instead of following it.
   */
  private async build(
    what: { drvPath: StorePath; drv: Derivation; outputs: Map<string, StorePath>; inputPaths: StorePath[] },
    job: Job<unknown>,
    state: { counted: boolean },
  ): Promise<Map<string, PathInfo>> {
    const { drvPath } = what;
    throwIfAborted(job.signal);
    let sandboxed = false;
    const slot = <T>(fn: () => Promise<T>): Promise<T> =>
      this.builds(async () => {
        throwIfAborted(job.signal);
        sandboxed = state.counted = true;
        this.counts.queued--;
        this.counts.running++;
        this.publish({ type: 'started', kind: 'build', drvPath, counts: { ...this.counts } });
        try {
          return await fn();
        } finally {
          this.counts.running--;
          this.counts.finishing++;
        }
      });
    try {
      const infos = await buildDerivation(this.store, {
        ...what,
        cores: this.opts.cores ?? availableParallelism(),
        timeoutMs: this.opts.timeoutMs,
        maxSilentMs: this.opts.maxSilentMs,
        maxLogSize: this.opts.maxLogSize,
        maxBuildSize: this.opts.maxBuildSize,
        slot,
        signal: job.signal,
      });
      this.counts.finishing--;
      this.counts.done++;
      this.publish({ type: 'finished', kind: 'build', drvPath, counts: { ...this.counts } });
      return infos;
    } catch (e) {
      if (sandboxed) this.counts.finishing--;
      if (isLazyError(e, 'ABORTED')) {
        if (sandboxed) this.publish({ type: 'dropped', kind: 'build', drvPath, counts: { ...this.counts } });
      } else {
        if (!state.counted) this.counts.queued--;
        state.counted = true;
        this.counts.failed++;
        const logPath = isLazyError(e) ? (e.details.logPath as string | undefined) : undefined;
        this.publish({ type: 'failed', kind: 'build', drvPath, error: e, logPath, counts: { ...this.counts } });
      }
      throw e;
    }
  }

  /** Runs started→finished/failed bookkeeping around one substitution. */
  private async run<T>(what: { path: StorePath }, job: Job<unknown>, work: () => Promise<T>): Promise<T> {
    return this.substitutions(async () => {
      throwIfAborted(job.signal);
      this.counts.running++;
      this.publish({ type: 'started', kind: 'substitute', ...what, counts: { ...this.counts } });
      try {
        const r = await work();
        this.counts.running--;
        this.counts.done++;
        this.publish({ type: 'finished', kind: 'substitute', ...what, counts: { ...this.counts } });
        return r;
      } catch (e) {
        this.counts.running--;
        if (isLazyError(e, 'ABORTED')) {
          this.publish({ type: 'dropped', kind: 'substitute', ...what, counts: { ...this.counts } });
        } else {
          this.counts.failed++;
          this.publish({ type: 'failed', kind: 'substitute', ...what, error: e, counts: { ...this.counts } });
        }
        throw e;
      }
    });
  }

  private emit(type: 'queued' | 'dropped', kind: WorkKind, what: { drvPath?: StorePath }, delta: number): void {
    this.counts.queued += delta;
    this.publish({ type, kind, ...what, counts: { ...this.counts } });
  }

  private publish(e: ProgressEvent): void {
    this.events.emit('progress', e);
  }

  /** In-flight job count (for tests and status). */
  get inflightCount(): number {
    return this.inflight.size;
  }
}
