/**
 * One unit of in-flight work (a path to substitute/find, or a derivation to build) shared by
 * every caller that wants it. A waiter's cancellation rejects only that waiter; the job is
 * cancelled only when its last waiter goes away. Jobs record which jobs they wait for, so a
 * wait that would close a cycle fails (REALISE_CYCLE) instead of hanging.
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

/** True when `from` waits (transitively) for `to`. */
export function waitsFor(from: Job<unknown>, to: Job<unknown>): boolean {
  const seen = new Set<Job<unknown>>();
  const stack: Job<unknown>[] = [from];
  for (let j = stack.pop(); j !== undefined; j = stack.pop()) {
    if (j === to) return true;
    if (seen.has(j)) continue;
    seen.add(j);
    for (const k of j.waitsOn) stack.push(k);
  }
  return false;
}

/**
 * Waits for `job` on behalf of `parent` (another job) or of an outside caller, with `signal`
 * cancelling only this wait.
 */
export async function waitForJob<T>(job: Job<T>, parent: Job<unknown> | undefined, signal: AbortSignal | undefined): Promise<T> {
  if (parent) {
    if (waitsFor(job as Job<unknown>, parent)) {
      throw new LazyError('REALISE_CYCLE', `dependency cycle: ${parent.key} needs ${job.key}, which needs ${parent.key}`, {
        details: { from: parent.key, to: job.key },
      });
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
