/**
 * One unit of in-flight work (a path to substitute/find, or a derivation to build) shared by
 * every caller that wants it. A waiter's cancellation rejects only that waiter; the job is
 * cancelled only when its last waiter goes away. Jobs record which jobs they wait for, so the
 * realiser can find waits that form a cycle (findCycles) and fail them instead of hanging.
 */
import { setMaxListeners } from 'node:events';
import { LazyError, abortError } from '../errors.js';

export class Job<T> {
  readonly key: string;
  readonly controller = new AbortController();
  readonly promise: Promise<T>;
  settled = false;
  waiters = 0;
  /** Jobs this job is waiting for right now. */
  readonly waitsOn = new Set<Job<unknown>>();

  constructor(key: string, run: (job: Job<T>) => Promise<T>) {
    this.key = key;
    setMaxListeners(0, this.controller.signal); // one listener per waiting child job, unbounded by design
    this.promise = Promise.resolve()
      .then(() => run(this))
      .finally(() => {
        this.settled = true;
      });
    this.promise.catch(() => undefined); // waiters observe the failure; never unhandled
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }
}

/**
 * Jobs that wait for each other in a cycle, found by one depth-first pass over the wait
 * graph (O(jobs + waits)). Run periodically rather than on every wait: a per-wait search
 * costs O(in-flight jobs) each time, quadratic for a 10,000-node DAG.
 */
export function findCycles(jobs: Iterable<Job<unknown>>): Job<unknown>[][] {
  const state = new Map<Job<unknown>, 1 | 2>(); // 1 = on the stack, 2 = done
  const cycles: Job<unknown>[][] = [];
  for (const root of jobs) {
    if (state.has(root)) continue;
    const stack: { job: Job<unknown>; next: Iterator<Job<unknown>> }[] = [{ job: root, next: root.waitsOn.values() }];
    state.set(root, 1);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const n = top.next.next();
      if (n.done) {
        state.set(top.job, 2);
        stack.pop();
        continue;
      }
      const k = n.value;
      const s = state.get(k);
      if (s === 1) cycles.push(stack.slice(stack.findIndex((f) => f.job === k)).map((f) => f.job));
      else if (s === undefined) {
        state.set(k, 1);
        stack.push({ job: k, next: k.waitsOn.values() });
      }
    }
  }
  return cycles;
}

/**
 * Waits for `job` on behalf of `parent` (another job) or of an outside caller, with `signal`
 * cancelling only this wait.
 */
export async function waitForJob<T>(job: Job<T>, parent: Job<unknown> | undefined, signal: AbortSignal | undefined): Promise<T> {
  if (parent) {
    if ((job as Job<unknown>) === parent) {
      throw new LazyError('REALISE_CYCLE', `dependency cycle: ${parent.key} needs itself`, { details: { from: parent.key, to: job.key } });
    }
    parent.waitsOn.add(job as Job<unknown>);
  }
  job.waiters++;
  try {
    return await raceAbort(job.promise, signal);
  } finally {
    job.waiters--;
    parent?.waitsOn.delete(job as Job<unknown>);
    if (job.waiters === 0 && !job.settled) job.controller.abort(new LazyError('ABORTED', `nobody waits for ${job.key} any more`));
  }
}

/** `p`, or an ABORTED rejection as soon as `signal` fires (p keeps running). */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Checks the in-flight jobs for wait cycles every CHECK_MS while there are any, and fails the
 * jobs of each cycle with REALISE_CYCLE (a forged or corrupt index can make one).
 */
export class CycleWatch {
  static readonly CHECK_MS = 500;
  private timer: NodeJS.Timeout | undefined;

  watch(jobs: () => Iterable<Job<unknown>>): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      const all = [...jobs()];
      if (all.length === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
        return;
      }
      for (const cycle of findCycles(all)) {
        const keys = cycle.map((j) => j.key);
        const err = new LazyError('REALISE_CYCLE', `dependency cycle: ${[...keys, keys[0]].join(' → ')}`, { details: { cycle: keys } });
        for (const j of cycle) j.controller.abort(err);
      }
    }, CycleWatch.CHECK_MS);
    this.timer.unref();
  }
}
