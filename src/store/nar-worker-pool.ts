/**
 * A small pool of NAR worker threads (see nar-worker-main.ts), started on first use and kept
 * idle (unref'd, so they never keep the process alive) for the next job: starting a worker costs
 * ~30 ms, a scan of a small build output well under 1 ms.
 *
 * Three kinds of jobs, bounded differently so that nothing can deadlock and thread counts stay
 * small (500 concurrent imports once meant 500 workers):
 *  - `scan`/`canonicalise` never wait on anything but the disk: at most MAX_BOUNDED_JOBS run,
 *    the rest queue.
 *  - `dump` waits on its consumer (a slow HTTP client, or a restore being fed by it), so every
 *    dump gets its own worker at once (a new one when none is idle); a cap could deadlock.
 *  - restores never block a worker (each batch is applied synchronously, then the worker is
 *    free), so they share MAX_RESTORE_WORKERS workers, however many run.
 * At most MAX_IDLE_WORKERS exclusive workers are kept idle; extras exit when released. A job
 * holds its worker until the worker says it is done (also after a cancel), so a cancelled job's
 * worker is never handed out mid-walk.
 */
import { Worker } from 'node:worker_threads';
import { LazyError, abortError } from '../errors.js';
import { NarWriter } from '../nix/nar-writer.js';
import { RefScanner } from '../nix/refscan.js';
import { CTL_CANCEL, CTL_CREDITS, narWorkerMain, type NarJob, type NarJobReply } from './nar-worker-main.js';
import { narRestoreHandler } from './nar-restore-worker.js';

/** Idle workers kept for the next jobs (~10 MiB each). */
export const MAX_IDLE_WORKERS = 4;
/** `scan`/`canonicalise` jobs at once: two cores; more only contend for the page cache. */
export const MAX_BOUNDED_JOBS = 4;
/** Workers shared by all restores. */
export const MAX_RESTORE_WORKERS = 2;
/** Transfer unit of `dump`: one postMessage per MiB keeps message overhead under 1%. */
export const DUMP_CHUNK_SIZE = 1 << 20;
/** Chunks a `dump` may have in flight before the worker waits for the consumer (memory bound). */
export const DUMP_CREDITS = 4;
/** Working buffer of `scan`, reused: hashing is cheaper per call on larger slices. */
export const SCAN_CHUNK_SIZE = 256 << 10;

const SOURCE = [
  '"use strict";',
  `const NarWriter = ${NarWriter.toString()};`,
  `const RefScanner = ${RefScanner.toString()};`,
  `const narRestoreHandler = ${narRestoreHandler.toString()};`,
  `(${narWorkerMain.toString()})(require, NarWriter, RefScanner, narRestoreHandler);`,
].join('\n');

type Listener = (m: NarJobReply) => void;
export interface PoolWorker {
  worker: Worker;
  listener?: Listener;
  onFail?: (e: Error) => void;
}

const idle: PoolWorker[] = [];
let nextId = 1;
export const newJobId = (): number => nextId++;

/**
 * The worker gets no execArgv: it would inherit the parent's, and under `node --input-type=module
 * -e …` (or a default-type/loader flag) the CommonJS SOURCE above would be evaluated as ESM and
 * fail with "require is not defined". SOURCE is self-contained, so it needs no flags.
 */
function spawn(): PoolWorker {
  const pw: PoolWorker = { worker: new Worker(SOURCE, { eval: true, name: 'lazystore-nar', execArgv: [] }) };
  pw.worker.on('message', (m: NarJobReply) => pw.listener?.(m));
  let dead = false;
  const fail = (e: Error): void => {
    if (dead) return;
    dead = true;
    const i = idle.indexOf(pw);
    if (i >= 0) idle.splice(i, 1);
    pw.onFail?.(e);
  };
  pw.worker.on('error', fail);
  pw.worker.on('exit', (code) => fail(new Error(`NAR worker exited with code ${code}`)));
  return pw;
}

/** A worker for a job of the caller's own protocol (restore); give it back with `release`. */
export async function acquire(signal?: AbortSignal): Promise<PoolWorker> {
  if (signal?.aborted) throw abortError(signal);
  const pw = idle.pop() ?? spawn();
  pw.worker.ref();
  return pw;
}

export function release(pw: PoolWorker): void {
  pw.listener = undefined;
  pw.onFail = undefined;
  pw.worker.unref();
  if (idle.length < MAX_IDLE_WORKERS) idle.push(pw);
  else void pw.worker.terminate();
}

let boundedRunning = 0;
const boundedQueue: (() => void)[] = [];

async function boundedStart(signal?: AbortSignal): Promise<void> {
  while (boundedRunning >= MAX_BOUNDED_JOBS) {
    await new Promise<void>((r) => boundedQueue.push(r));
    if (signal?.aborted) {
      boundedQueue.shift()?.(); // pass the turn on
      throw abortError(signal);
    }
  }
  boundedRunning++;
}

function boundedEnd(): void {
  boundedRunning--;
  boundedQueue.shift()?.();
}

interface SharedWorker {
  pw: PoolWorker;
  jobs: Map<number, { listener: Listener; onFail: (e: Error) => void }>;
}
const restoreWorkers: SharedWorker[] = [];

/**
 * A channel to one of the shared restore workers for job `id`: replies for `id` go to
 * `listener`; `onFail` if the worker dies. `close` when the worker has no state left for `id`.
 */
export function openSharedChannel(id: number, listener: Listener, onFail: (e: Error) => void): { post(m: NarJob): void; close(): void } {
  let sw = restoreWorkers.reduce<SharedWorker | undefined>((a, b) => (a === undefined || b.jobs.size < a.jobs.size ? b : a), undefined);
  if (sw === undefined || (sw.jobs.size > 0 && restoreWorkers.length < MAX_RESTORE_WORKERS)) {
    const fresh: SharedWorker = { pw: spawn(), jobs: new Map() };
    fresh.pw.listener = (m) => fresh.jobs.get(m.id)?.listener(m);
    fresh.pw.onFail = (e) => {
      restoreWorkers.splice(restoreWorkers.indexOf(fresh), 1);
      for (const j of fresh.jobs.values()) j.onFail(e);
      fresh.jobs.clear();
    };
    restoreWorkers.push(fresh);
    sw = fresh;
  }
  const shared = sw;
  shared.jobs.set(id, { listener, onFail });
  shared.pw.worker.ref();
  return {
    post: (m) => shared.pw.worker.postMessage(m),
    close: () => {
      shared.jobs.delete(id);
      if (shared.jobs.size === 0) shared.pw.worker.unref();
    },
  };
}

export function replyError(m: Extract<NarJobReply, { kind: 'error' }>): LazyError {
  return new LazyError(m.code, m.message, { details: m.details });
}

type JobSpec = NarJob extends infer J ? (J extends NarJob ? Omit<J, 'id' | 'ctl'> : never) : never;

/**
 * Runs a job to completion (`scan`, `canonicalise`); resolves with the worker's final reply.
 * Abort sets the job's cancel flag; the worker stops at the next file.
 */
export async function runNarJob(spec: JobSpec, opts: { signal?: AbortSignal } = {}): Promise<Extract<NarJobReply, { kind: 'done' }>> {
  const { signal } = opts;
  await boundedStart(signal);
  let pw: PoolWorker;
  try {
    pw = await acquire(signal);
  } catch (e) {
    boundedEnd();
    throw e;
  }
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      Atomics.store(ctl, CTL_CANCEL, 1);
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (): void => {
      signal?.removeEventListener('abort', onAbort);
      release(pw);
      boundedEnd();
    };
    pw.listener = (m) => {
      if (m.id !== id) return;
      finish();
      if (m.kind === 'done') resolve(m);
      else if (m.kind === 'error') reject(m.code === 'ABORTED' ? abortError(signal) : replyError(m));
    };
    pw.onFail = (e) => {
      signal?.removeEventListener('abort', onAbort);
      boundedEnd();
      reject(new LazyError('STORE_WORKER_FAILED', `NAR worker failed: ${e.message}`, { cause: e }));
    };
    pw.worker.postMessage({ ...spec, id, ctl: ctl.buffer } as NarJob);
  });
}

/** Streams a `dump` job's chunks; leaving the loop early cancels the worker's walk. */
export async function* streamNarJob(path: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
  const { signal } = opts;
  const pw = await acquire(signal);
  const ctl = new Int32Array(new SharedArrayBuffer(8));
  ctl[CTL_CREDITS] = DUMP_CREDITS;
  const id = nextId++;
  const queue: (NarJobReply | Error)[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const push = (m: NarJobReply | Error): void => {
    queue.push(m);
    wake?.();
  };
  pw.listener = (m) => {
    if (m.id !== id) return;
    if (m.kind !== 'chunk') {
      ended = true;
      release(pw);
    }
    push(m);
  };
  pw.onFail = (e) => {
    ended = true;
    push(new LazyError('STORE_WORKER_FAILED', `NAR worker failed: ${e.message}`, { cause: e }));
  };
  const onAbort = (): void => {
    Atomics.store(ctl, CTL_CANCEL, 1);
    Atomics.notify(ctl, CTL_CREDITS);
    push(abortError(signal));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const ring = new SharedArrayBuffer(DUMP_CREDITS * DUMP_CHUNK_SIZE);
  pw.worker.postMessage({ op: 'dump', path, id, ctl: ctl.buffer, chunkSize: DUMP_CHUNK_SIZE, ring } satisfies NarJob);
  try {
    for (;;) {
      const m = queue.shift();
      if (m === undefined) {
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        continue;
      }
      if (m instanceof Error) throw m;
      if (m.kind === 'error') throw m.code === 'ABORTED' ? abortError(signal) : replyError(m);
      if (m.kind === 'done') return;
      if (m.kind !== 'chunk') continue;
      // Copy the slot out (into memory V8 accounts for, so GC keeps up) and hand the slot back.
      const chunk = Buffer.allocUnsafe(m.length);
      Buffer.from(ring, m.slot * DUMP_CHUNK_SIZE, m.length).copy(chunk);
      Atomics.add(ctl, CTL_CREDITS, 1);
      Atomics.notify(ctl, CTL_CREDITS);
      yield chunk;
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!ended) {
      // Stop the walk; the worker returns to the pool when it reports the cancel.
      Atomics.store(ctl, CTL_CANCEL, 1);
      Atomics.notify(ctl, CTL_CREDITS);
    }
  }
}
