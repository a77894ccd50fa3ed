/**
 * Unpacks a NAR stream to `destPath` (which must not exist; its parent must), canonical as Nix
 * leaves store paths: files 0444 (0555 when executable), directories 0555, mtime 1 everywhere.
 * Returns the NAR's size and sha256, computed from the same bytes.
 *
 * Safety: entry names are validated by the parser (no `/`, `.`, `..`, NUL, sorted so never
 * twice), and every entry is created new — files with O_CREAT|O_EXCL|O_NOFOLLOW, directories
 * with mkdir, symlinks with symlink — so nothing is written through a symlink or over a file.
 *
 * Speed: this thread parses and hashes; a small NAR (see LOCAL_OPS) is then written here with
 * synchronous calls; a larger one by a shared NAR worker thread, which creates the files with synchronous
 * calls (see nar-restore-worker.ts), fed batches of operations whose file contents are copied
 * into the slots of a shared ring. Files get their final mode at creation and mtime through
 * the open fd; directories are sealed (0555, mtime 1) once all entries exist. Memory: the ring
 * (RING_SLOTS × SLOT_SIZE = 16 MiB) plus the parser's current chunk, whatever the NAR's size.
 *
 * On failure the partial tree is left for the caller to remove (the store restores into tmp/).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { LazyError, throwIfAborted } from '../errors.js';
import type { Hash } from '../nix/hash.js';
import { SMALL_FILE, parseNar, parseNarSync, type NarSink } from '../nix/nar-reader.js';
import { narRestoreHandler, type RestoreMessage, type RestoreOp } from './nar-restore-worker.js';
import type { NarJobReply } from './nar-worker-main.js';
import { newJobId, openSharedChannel, replyError } from './nar-worker-pool.js';

/**
 * Bytes of file contents per batch; a `fileData` file fits in one. Each batch wakes the worker
 * (~0.3 ms on the loaded test machine): 4 MiB batches restored 20k small files in 1.0-1.3 s
 * against 1.5-2.4 s with 1 MiB ones (same runs, interleaved).
 */
const SLOT_SIZE = Math.max(4 << 20, SMALL_FILE);
/** Batches in flight: the parser runs ahead of the worker by at most this many slots. */
const RING_SLOTS = 4;
/** Operations per batch, so a NAR of many empty files still streams. */
const MAX_OPS = 4096;
/**
 * A NAR of at most LOCAL_OPS entries and LOCAL_BYTES of contents is written in this thread with
 * synchronous calls once parsed, never touching the worker (no 16 MiB ring, no messages, no
 * wake-ups). Measured on the test machine's ext4, 562 host paths: a one-file path takes 0.04 ms
 * median, 0.3-0.4 ms p99 here. An entry costs 0.02-0.05 ms, but a file create took 0.3-1.2 ms
 * while other processes loaded the disk: LOCAL_BUDGET_MS below sends small NARs to the worker
 * while the disk is that slow. 16 entries, not 4: the fixture closure's three directory NARs of
 * 5 entries each were the only restores of a 561-path substitution that needed the worker, and
 * starting it (two threads, ~30 ms of CPU each) cost more than writing them here.
 * This holds while other restores run too (a substitution's 8 jobs): once the cache reads and
 * registration had become synchronous, handing each small NAR to the worker (a message, a
 * SharedArrayBuffer, a wake-up) cost more than the overlap it bought — 561 cached paths: 0.48,
 * 0.48, 0.48 s with the worker vs 0.40, 0.45, 0.41 s in this thread (interleaved runs).
 */
const LOCAL_OPS = 16;
const LOCAL_BYTES = 64 << 10;

/**
 * Spare local buffers. A fresh zeroed 64 KiB ArrayBuffer per NAR was 36 MiB of external memory
 * for 561 small paths, which V8 answers with extra garbage collections; a buffer goes back here
 * once its contents are written (or copied to the worker's ring) and nothing refers to it.
 */
const localPool: ArrayBuffer[] = [];
const LOCAL_POOL_MAX = 16;

/**
 * Average ms an entry took to write in this thread (moving, over recent small NARs). When a NAR
 * would take more than LOCAL_BUDGET_MS by it — file creates on the shared test disk ranged from
 * 0.02 ms to 1.2 ms depending on other processes' I/O — the worker writes it instead, and the
 * average decays with each NAR so sent, so this thread tries again once the disk is quick.
 */
let localMsPerEntry = 0;
const LOCAL_BUDGET_MS = 0.5;

/** The restore handler run in this thread for small NARs; replies arrive synchronously. */
let localReplies: Parameters<Parameters<typeof narRestoreHandler>[0]>[0][] = [];
let localHandler: ((m: RestoreMessage) => void) | undefined;
function applyLocally(msgs: RestoreMessage[]): void {
  localHandler ??= narRestoreHandler((m) => void localReplies.push(m), fs);
  localReplies = [];
  for (const m of msgs) {
    localHandler(m);
    const err = localReplies.find((r) => r.kind === 'error');
    if (err) throw replyError(err);
  }
}

/**
 * The operations that write `nar`, a NAR held whole in memory, when it is small enough to be
 * written in this thread (see LOCAL_OPS, LOCAL_BYTES, LOCAL_BUDGET_MS); undefined when it is not
 * (restoreNar then streams it to the worker). The whole NAR is parsed, and so validated, here:
 * a malformed one fails (NAR_*) before anything is written. File contents stay views of `nar`.
 */
export function planSmallNar(nar: Buffer): RestoreOp[] | undefined {
  if (nar.length > SMALL_NAR) return undefined;
  const ops: RestoreOp[] = [];
  let contents = 0;
  parseNarSync(nar, {
    directory: (path) => void ops.push(['d', path]),
    symlink: (path, target) => void ops.push(['l', path, target]),
    fileData(path, executable, data, narOffset) {
      contents += data.length;
      ops.push(['f', path, executable ? 0o555 : 0o444, narOffset, data.length]);
    },
  });
  if (ops.length > LOCAL_OPS || contents > LOCAL_BYTES) return undefined;
  if (localMsPerEntry * ops.length > LOCAL_BUDGET_MS) {
    localMsPerEntry *= 0.9;
    return undefined;
  }
  return ops;
}

/** Writes a NAR planned by planSmallNar at `destPath` (which must not exist), synchronously. */
export function writeSmallNar(nar: Buffer, ops: RestoreOp[], destPath: string): void {
  const id = newJobId();
  const t0 = performance.now();
  applyLocally([
    { op: 'restore', id, root: destPath, ring: NO_RING, slotSize: 0 },
    { op: 'restore-batch', id, slot: 0, ops, data: nar },
    { op: 'restore-end', id, abort: false },
  ]);
  localMsPerEntry = 0.7 * localMsPerEntry + (0.3 * (performance.now() - t0)) / Math.max(1, ops.length);
}

/** Largest whole NAR planSmallNar parses: its contents must fit LOCAL_BYTES anyway. */
const SMALL_NAR = 2 * LOCAL_BYTES;
const NO_RING = new ArrayBuffer(0);

export async function restoreNar(
  source: AsyncIterable<Uint8Array>,
  destPath: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ narSize: number; narHash: Hash }> {
  const { signal } = opts;
  throwIfAborted(signal);
  return restore(source, destPath, signal);
}

async function restore(source: AsyncIterable<Uint8Array>, destPath: string, signal: AbortSignal | undefined): Promise<{ narSize: number; narHash: Hash }> {
  const hash = createHash('sha256');
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const c of source) {
      hash.update(c);
      yield c;
    }
  }

  const id = newJobId();
  // Until the NAR outgrows the local limits, contents collect in a private buffer and no worker
  // is involved; then they move to slot 0 of the shared ring and the worker takes over.
  let local = true;
  const localBuf = localPool.pop() ?? new ArrayBuffer(LOCAL_BYTES);
  const releaseLocalBuf = (): void => void (localPool.length < LOCAL_POOL_MAX && localPool.push(localBuf));
  let buf: Buffer = Buffer.from(localBuf);
  let cap = LOCAL_BYTES;
  let failed: LazyError | undefined;
  let finished = false; // the worker has no more state for this job
  let inflight = 0;
  let wake: (() => void) | undefined;
  const listener = (m: NarJobReply): void => {
    if (m.kind === 'ack') inflight--;
    else if (m.kind === 'error') {
      failed ??= replyError(m);
      finished = true;
    } else if (m.kind === 'done') finished = true;
    wake?.();
  };
  const onFail = (e: Error): void => {
    failed ??= new LazyError('STORE_WORKER_FAILED', `NAR worker failed: ${e.message}`, { cause: e });
    finished = true;
    wake?.();
  };
  let channel: ReturnType<typeof openSharedChannel> | undefined;
  const event = (): Promise<void> => new Promise<void>((r) => (wake = r)).then(() => void (wake = undefined));
  /** Moves the job to the worker; `last` when the whole NAR is parsed (one slot of its size then). */
  const toWorker = (last = false): ReturnType<typeof openSharedChannel> => {
    const slotSize = last ? Math.max(used, 8) : SLOT_SIZE;
    const ring = new SharedArrayBuffer(last ? slotSize : RING_SLOTS * slotSize);
    const ringBuf = Buffer.from(ring);
    buf.copy(ringBuf, 0, 0, used);
    buf = ringBuf;
    releaseLocalBuf();
    cap = slotSize;
    local = false;
    const ch = openSharedChannel(id, listener, onFail);
    ch.post({ op: 'restore', id, root: destPath, ring, slotSize });
    return ch;
  };

  let slot = 0;
  let used = 0;
  let ops: RestoreOp[] = [];
  const flush = async (): Promise<void> => {
    if (failed) throw failed;
    throwIfAborted(signal); // once per MiB, so a huge file's contents stop too
    channel ??= toWorker(); // a flush means the NAR outgrew the local limits
    if (ops.length === 0) return;
    channel.post({ op: 'restore-batch', id, slot, ops: JSON.stringify(ops) });
    inflight++;
    ops = [];
    used = 0;
    slot = (slot + 1) % RING_SLOTS;
    // Acks come in order: with fewer than RING_SLOTS batches out, the next slot is free.
    while (inflight >= RING_SLOTS && !failed) await event();
    if (failed) throw failed;
  };

  const push = (op: RestoreOp): void | Promise<void> => {
    ops.push(op);
    if (ops.length > (local ? LOCAL_OPS : MAX_OPS - 1)) return flush();
  };
  const sink: NarSink = {
    directory: (path) => push(['d', path]),
    symlink: (path, target) => push(['l', path, target]),
    fileData(path, executable, data) {
      if (data.length > cap - used) return flush().then(() => sink.fileData!(path, executable, data, 0));
      const off = used;
      used += data.copy(buf, slot * SLOT_SIZE + used);
      return push(['f', path, executable ? 0o555 : 0o444, off, data.length]);
    },
    async file(path, executable, size, contents) {
      const mode = executable ? 0o555 : 0o444;
      if (size <= SLOT_SIZE) {
        if (size > cap - used) await flush();
        const off = used;
        for await (const c of contents) used += c.copy(buf, slot * SLOT_SIZE + used);
        await push(['f', path, mode, off, size]);
        return;
      }
      await push(['o', path, mode]);
      for await (const c of contents) {
        let at = 0;
        while (at < c.length) {
          if (used === cap) await flush();
          const k = c.copy(buf, slot * SLOT_SIZE + used, at, Math.min(c.length, at + cap - used));
          ops.push(['w', used, k]);
          used += k;
          at += k;
        }
      }
      await push(['c']);
    },
  };

  const end = async (abort: boolean): Promise<void> => {
    if (channel === undefined) return;
    if (!finished) {
      channel.post({ op: 'restore-end', id, abort });
      while (!finished) await event();
    }
    channel.close();
  };

  let narSize: number;
  try {
    ({ narSize } = await parseNar(hashed(), sink, { signal }));
    const inThread = local && localMsPerEntry * ops.length <= LOCAL_BUDGET_MS;
    if (local && !inThread) localMsPerEntry *= 0.9;
    if (inThread) {
      throwIfAborted(signal);
      const t0 = performance.now();
      applyLocally([
        { op: 'restore', id, root: destPath, ring: localBuf, slotSize: LOCAL_BYTES },
        { op: 'restore-batch', id, slot: 0, ops: JSON.stringify(ops) },
        { op: 'restore-end', id, abort: false },
      ]);
      localMsPerEntry = 0.7 * localMsPerEntry + (0.3 * (performance.now() - t0)) / ops.length;
      releaseLocalBuf();
    } else {
      if (local) channel = toWorker(true);
      await flush();
    }
  } catch (e) {
    await end(true);
    throw failed ?? e;
  }
  await end(false);
  if (failed) throw failed;
  return { narSize, narHash: { algo: 'sha256', digest: hash.digest() } };
}
