/**
 * The body of the NAR worker thread: walks a file tree with synchronous fs calls and produces its
 * NAR serialisation, either streamed back in large transferred chunks (`dump`), or hashed and
 * reference-scanned inside the worker (`scan`); it also canonicalises trees (`canonicalise`).
 *
 * Why a worker with sync calls: a NAR dump of 20k files is ~100k fs calls; through the promise
 * API each costs a libuv round trip and a tick on the main thread (the FUSE daemon's, which must
 * never block), through the sync API in a worker it costs a few µs and the main thread only sees
 * one message per MiB. `dump` writes into the slots of a shared ring (credits × chunkSize); the
 * parent copies a slot out when its consumer takes the chunk and returns the credit; with no
 * credit the worker `Atomics.wait`s. (Transferring fresh ArrayBuffers instead left ~100 MiB of
 * garbage backing stores in the parent per GiB: V8 does not count them towards a GC.)
 *
 * This function is serialised with `toString()` and evaluated in the worker (so it runs the same
 * from TypeScript sources under vitest, from dist/ and from the bundle): it must not reference
 * anything outside itself except its parameters, and gets modules from the `req` it is given
 * (the worker's `require`; a bare `require` here would be renamed by the bundler).
 */
import type { NarWriter } from '../nix/nar-writer.js';
import type { RefScanner } from '../nix/refscan.js';
import type { RestoreMessage, narRestoreHandler } from './nar-restore-worker.js';

export type NarJob =
  | { id: number; op: 'dump'; path: string; ctl: SharedArrayBuffer; chunkSize: number; ring: SharedArrayBuffer }
  | { id: number; op: 'scan'; path: string; ctl: SharedArrayBuffer; chunkSize: number; candidates: string[] }
  | { id: number; op: 'canonicalise'; path: string; ctl: SharedArrayBuffer; fromUid?: number }
  | RestoreMessage;

export type NarJobReply =
  | { id: number; kind: 'chunk'; slot: number; length: number }
  | { id: number; kind: 'ack' }
  | { id: number; kind: 'done'; narSize: number; narHash?: Uint8Array; found?: string[] }
  | { id: number; kind: 'error'; code: string; message: string; details: Record<string, unknown> };

/** Indexes into the job's Int32Array control block. */
export const CTL_CREDITS = 0;
export const CTL_CANCEL = 1;

export function narWorkerMain(req: NodeJS.Require, NW: typeof NarWriter, RS: typeof RefScanner, restoreHandler: typeof narRestoreHandler): void {
  const { parentPort } = req('node:worker_threads') as typeof import('node:worker_threads');
  const fs = req('node:fs') as typeof import('node:fs');
  const { createHash } = req('node:crypto') as typeof import('node:crypto');
  const port = parentPort!;
  const SLASH = Buffer.from('/');
  const O_NOFOLLOW = fs.constants.O_NOFOLLOW;

  class JobError extends Error {
    constructor(
      readonly code: string,
      message: string,
      readonly details: Record<string, unknown>,
    ) {
      super(message);
    }
  }
  class Cancelled extends Error {}

  /** Fills fixed-size chunks with NAR bytes; full chunks go to the parent or to hash + scanner. */
  class Out {
    buf: Buffer;
    n = 0;
    /** dump: the ring slot `buf` views, and whether its credit is held. */
    slot = 0;
    owned: boolean;
    narSize = 0;
    readonly cap: number;
    readonly ctl: Int32Array;
    readonly hash: import('node:crypto').Hash | undefined;
    readonly scanner: RefScanner | undefined;
    constructor(
      readonly job: Extract<NarJob, { op: 'dump' | 'scan' }>,
    ) {
      this.cap = job.chunkSize;
      this.ctl = new Int32Array(job.ctl);
      this.owned = job.op === 'scan';
      this.buf = job.op === 'scan' ? Buffer.alloc(this.cap) : Buffer.from(job.ring, 0, this.cap);
      if (job.op === 'scan') {
        this.hash = createHash('sha256');
        this.scanner = job.candidates.length > 0 ? new RS(job.candidates) : undefined;
      }
    }
    checkCancel(): void {
      if (Atomics.load(this.ctl, 1) !== 0) throw new Cancelled();
    }
    /** Free bytes in `buf`, after waiting for the slot's credit if need be. */
    room(): number {
      if (!this.owned) this.acquire();
      return this.cap - this.n;
    }
    acquire(): void {
      for (;;) {
        this.checkCancel();
        const c = Atomics.load(this.ctl, 0);
        if (c > 0) {
          if (Atomics.compareExchange(this.ctl, 0, c, c - 1) === c) break;
          continue;
        }
        Atomics.wait(this.ctl, 0, c, 1000);
      }
      this.owned = true;
    }
    write(b: Uint8Array): void {
      let off = 0;
      while (off < b.length) {
        const k = Math.min(b.length - off, this.room());
        this.buf.set(k === b.length ? b : b.subarray(off, off + k), this.n);
        this.n += k;
        off += k;
        if (this.n === this.cap) this.flush();
      }
    }
    u64(v: number): void {
      const b = Buffer.allocUnsafe(8);
      b.writeUInt32LE(v >>> 0, 0);
      b.writeUInt32LE(Math.floor(v / 0x100000000), 4);
      this.write(b);
    }
    str(s: Uint8Array): void {
      this.u64(s.length);
      this.write(s);
      this.write(NW.ZEROS.subarray(0, (8 - (s.length & 7)) & 7));
    }
    flush(): void {
      if (this.n === 0) return;
      this.narSize += this.n;
      if (this.job.op === 'dump') {
        port.postMessage({ id: this.job.id, kind: 'chunk', slot: this.slot, length: this.n } satisfies NarJobReply);
        const slots = this.job.ring.byteLength / this.cap;
        this.slot = (this.slot + 1) % slots;
        this.buf = Buffer.from(this.job.ring, this.slot * this.cap, this.cap);
        this.owned = false;
      } else {
        const view = this.buf.subarray(0, this.n);
        this.hash!.update(view);
        this.scanner?.update(view);
      }
      this.n = 0;
    }
    finish(): void {
      this.flush();
      const reply: NarJobReply = { id: this.job.id, kind: 'done', narSize: this.narSize };
      if (this.hash) reply.narHash = this.hash.digest();
      if (this.scanner) reply.found = [...this.scanner.found()];
      else if (this.job.op === 'scan') reply.found = [];
      port.postMessage(reply);
    }
  }

  const unsupported = (p: Buffer): never => {
    throw new JobError('STORE_UNSUPPORTED_FILE', `file '${p.toString()}' has an unsupported type`, { path: p.toString() });
  };

  function dumpFile(out: Out, p: Buffer): void {
    const fd = fs.openSync(p, fs.constants.O_RDONLY | O_NOFOLLOW);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) unsupported(p);
      const size = st.size;
      out.write((st.mode & 0o100) !== 0 ? NW.EXECUTABLE : NW.REGULAR);
      out.u64(size);
      let left = size;
      while (left > 0) {
        if (out.n === out.cap) out.flush();
        const room = out.room();
        const k = fs.readSync(fd, out.buf, out.n, Math.min(left, room), null);
        if (k === 0) {
          throw new JobError('STORE_FILE_CHANGED', `file '${p.toString()}' shrank while being dumped`, { path: p.toString() });
        }
        out.n += k;
        left -= k;
      }
      if (out.n === out.cap) out.flush();
      out.write(NW.ZEROS.subarray(0, (8 - (size & 7)) & 7));
      out.write(NW.CLOSE);
    } finally {
      fs.closeSync(fd);
    }
  }

  function dumpDir(out: Out, p: Buffer): void {
    out.write(NW.DIRECTORY);
    const ents = fs.readdirSync(p, { withFileTypes: true, encoding: 'buffer' });
    ents.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const d of ents) {
      out.checkCancel();
      out.write(NW.ENTRY);
      out.str(d.name);
      out.write(NW.NODE);
      const child = Buffer.concat([p, SLASH, d.name]);
      if (d.isFile()) dumpFile(out, child);
      else if (d.isDirectory()) dumpDir(out, child);
      else if (d.isSymbolicLink()) dumpLink(out, child);
      else unsupported(child);
      out.write(NW.CLOSE);
    }
    out.write(NW.CLOSE);
  }

  function dumpLink(out: Out, p: Buffer): void {
    out.write(NW.SYMLINK);
    out.str(fs.readlinkSync(p, { encoding: 'buffer' }));
    out.write(NW.CLOSE);
  }

  function dump(job: Extract<NarJob, { op: 'dump' | 'scan' }>): void {
    const out = new Out(job);
    const p = Buffer.from(job.path);
    out.write(NW.HEADER);
    const st = fs.lstatSync(p);
    if (st.isDirectory()) dumpDir(out, p);
    else if (st.isSymbolicLink()) dumpLink(out, p);
    else if (st.isFile()) dumpFile(out, p);
    else unsupported(p);
    out.finish();
  }

  /** Nix's canonicalisePathMetaData: 0444/0555 (setuid/setgid/sticky dropped), mtime 1, owner = us. */
  function canonicalise(job: Extract<NarJob, { op: 'canonicalise' }>): void {
    const ctl = new Int32Array(job.ctl);
    const euid = process.geteuid!();
    const egid = process.getegid!();
    const seen = new Set<string>();
    const walk = (p: Buffer): void => {
      if (Atomics.load(ctl, 1) !== 0) throw new Cancelled();
      const st = fs.lstatSync(p);
      const isDir = st.isDirectory();
      const isLink = st.isSymbolicLink();
      if (!isDir && !isLink && !st.isFile()) {
        throw new JobError('STORE_SPECIAL_FILE', `file '${p.toString()}' has an unsupported type (socket, fifo or device)`, {
          path: p.toString(),
          mode: st.mode,
        });
      }
      const inode = `${st.dev}:${st.ino}`;
      if (job.fromUid !== undefined && st.uid !== job.fromUid) {
        // A file we already chowned through another hard link is fine; anything else was not made by the builder.
        if (isDir || !seen.has(inode)) {
          throw new JobError('STORE_BAD_OWNERSHIP', `invalid ownership on file '${p.toString()}'`, { path: p.toString(), uid: st.uid });
        }
        return;
      }
      seen.add(inode);
      if (!isLink) {
        const mode = st.mode & 0o7777;
        if (mode !== 0o444 && mode !== 0o555) fs.chmodSync(p, 0o444 | ((st.mode & 0o100) !== 0 ? 0o111 : 0));
      }
      if (st.mtimeMs !== 1000) fs.lutimesSync(p, st.atime, 1);
      if (st.uid !== euid || st.gid !== egid) fs.lchownSync(p, euid, egid);
      if (isDir) for (const name of fs.readdirSync(p, { encoding: 'buffer' })) walk(Buffer.concat([p, SLASH, name]));
    };
    walk(Buffer.from(job.path));
    port.postMessage({ id: job.id, kind: 'done', narSize: 0 } satisfies NarJobReply);
  }

  const restore = restoreHandler((m) => port.postMessage(m), fs);

  port.on('message', (job: NarJob) => {
    if (job.op === 'restore' || job.op === 'restore-batch' || job.op === 'restore-end') {
      restore(job);
      return;
    }
    try {
      if (job.op === 'canonicalise') canonicalise(job);
      else dump(job);
    } catch (e) {
      let reply: NarJobReply;
      if (e instanceof JobError) reply = { id: job.id, kind: 'error', code: e.code, message: e.message, details: e.details };
      else if (e instanceof Cancelled) reply = { id: job.id, kind: 'error', code: 'ABORTED', message: 'operation was cancelled', details: {} };
      else {
        const err = e as NodeJS.ErrnoException;
        reply = {
          id: job.id,
          kind: 'error',
          code: 'STORE_IO',
          message: err.message,
          details: { errno: err.code, syscall: err.syscall, path: err.path },
        };
      }
      port.postMessage(reply);
    }
  });
}
