/**
 * A small pool of NAR worker threads (see nar-worker-main.ts), started on first use and kept
 * idle (unref'd, so they never keep the process alive) for the next job: starting a worker costs
 * ~30 ms, a scan of a small build output well under 1 ms.
 *
 * Every job gets a worker at once (a new one when none is idle): jobs can hold a worker for as
 * long as their consumer or source takes (a restore fed by a download, a dump streamed to a slow
 * client), and one job may need a second (restoring a dump), so a hard cap could deadlock.
 * Callers bound their own concurrency (builds, substitutions). At most `MAX_IDLE_WORKERS` are
 * kept; extras exit when released. Each running job holds its worker until the worker says it
 * is done (also after a cancel), so a cancelled job's worker is never handed out mid-walk.
 */
import { Worker } from 'node:worker_threads';
import { LazyError, abortError } from '../errors.js';
import { NarWriter } from '../nix/nar-writer.js';
import { RefScanner } from '../nix/refscan.js';
import { CTL_CANCEL, CTL_CREDITS, narWorkerMain, type NarJob, type NarJobReply } from './nar-worker-main.js';
import { narRestoreHandler } from './nar-restore-worker.js';

/** Idle workers kept for the next jobs (~10 MiB each). */
export const MAX_IDLE_WORKERS = 4;
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
  `(${narWorkerMain.toString()})(NarWriter, RefScanner, narRestoreHandler);`,
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

function spawn(): PoolWorker {
  const pw: PoolWorker = { worker: new Worker(SOURCE, { eval: true, name: 'lazystore-nar' }) };
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
  const pw = await acquire(signal);
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
    };
    pw.listener = (m) => {
      if (m.id !== id) return;
      finish();
      if (m.kind === 'done') resolve(m);
      else if (m.kind === 'error') reject(m.code === 'ABORTED' ? abortError(signal) : replyError(m));
    };
    pw.onFail = (e) => {
      signal?.removeEventListener('abort', onAbort);
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
