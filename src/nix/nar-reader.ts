/**
 * Streaming NAR parser (format: see nar-writer.ts). Reports each node to a `NarSink` as it is
 * read; file contents are passed as a stream of views of the input chunks, so memory does not
 * grow with the NAR's size. Directory depth is handled with an explicit stack, not recursion.
 *
 * Rejects, each with a `NAR_*` code and the byte offset of the offending string in
 * `details.offset`: bad magic (NAR_BAD_MAGIC), an unexpected or unknown token
 * (NAR_UNEXPECTED_TOKEN), a length beyond the limit for its field (NAR_TOO_LONG), nonzero
 * padding (NAR_BAD_PADDING), an invalid entry name — empty, `.`, `..`, containing `/` or NUL
 * (NAR_BAD_NAME), entries not strictly ascending bytewise (NAR_UNSORTED, NAR_DUPLICATE), input
 * ending early (NAR_TRUNCATED), and bytes after the root node (NAR_TRAILING).
 *
 * Paths given to the sink are relative, `''` for the root, `/`-joined, as *byte strings* (one
 * char per byte, latin1): NAR names are bytes, not text. `Buffer.from(path, 'latin1')` gives
 * the bytes back. Symlink targets likewise.
 */
import { LazyError, throwIfAborted } from '../errors.js';
import { ByteReader } from './nar-byte-reader.js';
import { NarWriter } from './nar-writer.js';

type MaybePromise = void | Promise<void>;

export interface NarSink {
  directory(path: string): MaybePromise;
  symlink(path: string, target: string): MaybePromise;
  /**
   * A regular file of `size` bytes whose contents start at NAR byte `narOffset`. The sink
   * should consume `contents`; whatever it leaves unread is skipped once it returns.
   */
  file(path: string, executable: boolean, size: number, contents: AsyncIterable<Buffer>, narOffset: number): MaybePromise;
  /**
   * Optional fast path: a file of at most SMALL_FILE bytes whose contents are already buffered,
   * as one view (valid during the call; copy what you keep). Used instead of `file` when present.
   */
  fileData?(path: string, executable: boolean, contents: Buffer, narOffset: number): MaybePromise;
}

/** Longest token (`nix-archive-1`), entry name and symlink target accepted. */
const MAX_TOKEN = 16;
export const MAX_NAME = 255;
export const MAX_TARGET = 4095;
/** Contents beyond 2^53 bytes cannot be a real file (and are not exact in a JS number). */
const MAX_CONTENTS = Number.MAX_SAFE_INTEGER;
/** Largest file handed to `NarSink.fileData` in one piece. */
export const SMALL_FILE = 1 << 20;

function fail(code: string, message: string, offset: number, extra: Record<string, unknown> = {}): never {
  throw new LazyError(code, `${message} at NAR byte ${offset}`, { details: { offset, ...extra } });
}

class NarParser {
  /** Offset of the last token read, for errors. */
  private tokAt = 0;

  constructor(
    readonly r: ByteReader,
    readonly sink: NarSink,
    readonly signal: AbortSignal | undefined,
  ) {}

  // Every read has a synchronous path for when the bytes are already buffered (almost always:
  // chunks are KiB to MiB, tokens 16 bytes) and an async one that pulls more input. The sync
  // path saves ~3 promise round trips per token: a quarter of the restore's main-thread time.

  /** A length-prefixed string of at most `max` bytes, if fully buffered (then consumed). */
  bytesSync(max: number, what: string): Buffer | undefined {
    const r = this.r;
    if (r.available < 8) return undefined;
    const at = r.offset;
    const hi = r.u32At(4);
    if (hi > 0x1fffff) fail('NAR_TOO_LONG', `absurd length for ${what}`, at);
    const len = hi * 0x100000000 + r.u32At(0);
    if (len > max) fail('NAR_TOO_LONG', `${what} of ${len} bytes (at most ${max})`, at, { length: len });
    const padded = (len + 7) & ~7;
    if (r.available < 8 + padded) return undefined;
    r.skip(8);
    const b = r.take(len);
    for (let i = 0; i < padded - len; i++) if (r.byteAt(i) !== 0) fail('NAR_BAD_PADDING', `nonzero padding after ${what}`, r.offset + i);
    r.skip(padded - len);
    return b;
  }

  async bytesAsync(max: number, what: string): Promise<Buffer> {
    const r = this.r;
    await r.need(8, what);
    const at = r.offset;
    const hi = r.u32At(4);
    if (hi > 0x1fffff) fail('NAR_TOO_LONG', `absurd length for ${what}`, at);
    const len = hi * 0x100000000 + r.u32At(0);
    if (len > max) fail('NAR_TOO_LONG', `${what} of ${len} bytes (at most ${max})`, at, { length: len });
    await r.need(8 + ((len + 7) & ~7), what);
    return this.bytesSync(max, what)!;
  }

  bytes(max: number, what: string): Buffer | Promise<Buffer> {
    return this.bytesSync(max, what) ?? this.bytesAsync(max, what);
  }

  token(): string | Promise<string> {
    this.tokAt = this.r.offset;
    const b = this.bytesSync(MAX_TOKEN, 'token');
    return b ? b.toString('latin1') : this.bytesAsync(MAX_TOKEN, 'token').then((x) => x.toString('latin1'));
  }

  private mismatch(want: string, tok: string): never {
    return fail('NAR_UNEXPECTED_TOKEN', `expected '${want}', got '${printable(tok)}'`, this.tokAt, { expected: want, got: tok });
  }

  /** Consumes `want`; returns a promise only when it had to wait for input. */
  expect(want: string): void | Promise<void> {
    const t = this.token();
    if (typeof t === 'string') {
      if (t !== want) this.mismatch(want, t);
      return;
    }
    return t.then((tok) => {
      if (tok !== want) this.mismatch(want, tok);
    });
  }

  async u64(what: string): Promise<number> {
    const r = this.r;
    if (r.available < 8) await r.need(8, what);
    const at = r.offset;
    const hi = r.u32At(4);
    if (hi > 0x1fffff) fail('NAR_TOO_LONG', `absurd length for ${what}`, at);
    const v = hi * 0x100000000 + r.u32At(0);
    r.skip(8);
    return v;
  }

  async pad(len: number, what: string): Promise<void> {
    const p = (8 - (len & 7)) & 7;
    if (p === 0) return;
    const r = this.r;
    if (r.available < p) await r.need(p, what);
    for (let i = 0; i < p; i++) if (r.byteAt(i) !== 0) fail('NAR_BAD_PADDING', `nonzero padding after ${what}`, r.offset + i);
    r.skip(p);
  }

  /** Reads one node at `path`; true when it was a directory, whose entries follow. */
  async node(path: string): Promise<boolean> {
    throwIfAborted(this.signal);
    let w = this.expect('(');
    if (w) await w;
    w = this.expect('type');
    if (w) await w;
    let type = this.token();
    if (typeof type !== 'string') type = await type;
    const at = this.tokAt;
    switch (type) {
      case 'regular':
        await this.regular(path);
        return false;
      case 'symlink': {
        w = this.expect('target');
        if (w) await w;
        const tAt = this.r.offset;
        let target = this.bytes(MAX_TARGET, 'symlink target');
        if (!Buffer.isBuffer(target)) target = await target;
        if (target.length === 0 || target.includes(0)) fail('NAR_BAD_TARGET', 'empty or NUL-containing symlink target', tAt);
        w = this.expect(')');
        if (w) await w;
        const s = this.sink.symlink(path, target.toString('latin1'));
        if (s) await s;
        return false;
      }
      case 'directory': {
        const s = this.sink.directory(path);
        if (s) await s;
        return true;
      }
      default:
        return fail('NAR_UNEXPECTED_TOKEN', `unknown node type '${printable(type)}'`, at, { got: type });
    }
  }

  async regular(path: string): Promise<void> {
    let tok = this.token();
    if (typeof tok !== 'string') tok = await tok;
    let executable = false;
    if (tok === 'executable') {
      executable = true;
      const vAt = this.r.offset;
      let v = this.bytes(MAX_TOKEN, 'executable flag');
      if (!Buffer.isBuffer(v)) v = await v;
      if (v.length !== 0) fail('NAR_UNEXPECTED_TOKEN', `expected '' after 'executable'`, vAt);
      tok = this.token();
      if (typeof tok !== 'string') tok = await tok;
    }
    if (tok !== 'contents') this.mismatch('contents', tok);
    const sAt = this.r.offset;
    const size = await this.u64('file size');
    if (size > MAX_CONTENTS) fail('NAR_TOO_LONG', `absurd file size ${size}`, sAt);
    const start = this.r.offset;
    const whole = this.sink.fileData && size <= SMALL_FILE ? this.r.takeIfBuffered(size) : undefined;
    if (whole) {
      const s = this.sink.fileData!(path, executable, whole, start);
      if (s) await s;
    } else {
      const s = this.sink.file(path, executable, size, this.r.stream(size, 'file contents'), start);
      if (s) await s;
      const consumed = this.r.offset - start;
      if (consumed < size) for await (const _ of this.r.stream(size - consumed, 'file contents'));
    }
    await this.pad(size, 'file contents');
    const w = this.expect(')');
    if (w) await w;
  }

  async run(): Promise<number> {
    const magicAt = this.r.offset;
    let magic: Buffer;
    try {
      const m = this.bytes(MAX_TOKEN, 'magic');
      magic = Buffer.isBuffer(m) ? m : await m;
    } catch (e) {
      // Only the parser's own complaints about the first string mean "not a NAR"; whatever the
      // source threw (a download, a decompressor, an abort, a caller's size limit) is the cause
      // and passes through unchanged.
      if (e instanceof LazyError && (e.code === 'NAR_TOO_LONG' || e.code === 'NAR_BAD_PADDING') && !this.r.isSourceError(e)) {
        fail('NAR_BAD_MAGIC', 'not a NAR (bad magic)', magicAt);
      }
      throw e;
    }
    if (magic.toString('latin1') !== NarWriter.MAGIC) fail('NAR_BAD_MAGIC', 'not a NAR (bad magic)', magicAt);
    // Open directories: their path and the previous entry name, for the sort check.
    const stack: { path: string; prev: Buffer | undefined }[] = [];
    if (await this.node('')) stack.push({ path: '', prev: undefined });
    while (stack.length > 0) {
      const dir = stack[stack.length - 1]!;
      let tok = this.token();
      if (typeof tok !== 'string') tok = await tok;
      if (tok === ')') {
        stack.pop();
        if (stack.length > 0) {
          const w = this.expect(')'); // closes the entry holding this directory
          if (w) await w;
        }
        continue;
      }
      if (tok !== 'entry') fail('NAR_UNEXPECTED_TOKEN', `expected 'entry' or ')', got '${printable(tok)}'`, this.tokAt, { got: tok });
      let w = this.expect('(');
      if (w) await w;
      w = this.expect('name');
      if (w) await w;
      const nAt = this.r.offset;
      let nb = this.bytes(MAX_NAME, 'entry name');
      if (!Buffer.isBuffer(nb)) nb = await nb;
      const child = entryPath(dir, Buffer.from(nb), nAt);
      w = this.expect('node');
      if (w) await w;
      if (await this.node(child)) stack.push({ path: child, prev: undefined });
      else {
        w = this.expect(')');
        if (w) await w;
      }
    }
    if (!(await this.r.atEnd())) fail('NAR_TRAILING', 'trailing bytes after the NAR', this.r.offset);
    return this.r.offset;
  }
}

/** What `parseNarSync` reports to: like NarSink, every file's contents as one view. */
export interface SyncNarSink {
  directory(path: string): void;
  symlink(path: string, target: string): void;
  /** `contents` is a view of the NAR buffer (valid as long as it is). */
  fileData(path: string, executable: boolean, contents: Buffer, narOffset: number): void;
}

/**
 * `parseNar` for a NAR held whole in memory, without a promise: the NARs of most store paths are
 * a few hundred bytes, and for those the streaming parser's per-token machinery (async calls,
 * a chunk reader) cost more than the parse. Same checks, same error codes and offsets as
 * NarParser above — the malformed-NAR corpus and the property tests hold both parsers to the
 * same answers. Directory depth uses an explicit stack, as there.
 */
export function parseNarSync(buf: Buffer, sink: SyncNarSink): { narSize: number } {
  let pos = 0;
  let tokAt = 0;
  const truncated = (what: string): never => {
    throw new LazyError('NAR_TRUNCATED', `NAR ends inside ${what} at NAR byte ${buf.length}`, { details: { offset: buf.length } });
  };
  const u64 = (what: string): number => {
    if (buf.length - pos < 8) truncated(what);
    const hi = buf.readUInt32LE(pos + 4);
    if (hi > 0x1fffff) fail('NAR_TOO_LONG', `absurd length for ${what}`, pos);
    const v = hi * 0x100000000 + buf.readUInt32LE(pos);
    pos += 8;
    return v;
  };
  const pad = (len: number, what: string): void => {
    const p = (8 - (len & 7)) & 7;
    if (buf.length - pos < p) truncated(what);
    for (let i = 0; i < p; i++) if (buf[pos + i] !== 0) fail('NAR_BAD_PADDING', `nonzero padding after ${what}`, pos + i);
    pos += p;
  };
  const bytes = (max: number, what: string): Buffer => {
    const at = pos;
    const len = u64(what);
    if (len > max) fail('NAR_TOO_LONG', `${what} of ${len} bytes (at most ${max})`, at, { length: len });
    if (buf.length - pos < ((len + 7) & ~7)) truncated(what);
    const b = buf.subarray(pos, pos + len);
    pos += len;
    pad(len, what);
    return b;
  };
  const token = (): string => {
    tokAt = pos;
    return bytes(MAX_TOKEN, 'token').toString('latin1');
  };
  const expect = (want: string): void => {
    // The bytes compared in place (most tokens are expected ones); anything else takes the
    // general path below, which reports exactly what is wrong.
    const n = want.length;
    const padded = (n + 7) & ~7;
    if (buf.length - pos >= 8 + padded && buf.readUInt32LE(pos) === n && buf.readUInt32LE(pos + 4) === 0) {
      let i = 0;
      while (i < n && buf[pos + 8 + i] === want.charCodeAt(i)) i++;
      while (i >= n && i < padded && buf[pos + 8 + i] === 0) i++;
      if (i === padded) {
        tokAt = pos;
        pos += 8 + padded;
        return;
      }
    }
    const t = token();
    if (t !== want) fail('NAR_UNEXPECTED_TOKEN', `expected '${want}', got '${printable(t)}'`, tokAt, { expected: want, got: t });
  };
  /** One node at `path`; true when it was a directory, whose entries follow. */
  const node = (path: string): boolean => {
    expect('(');
    expect('type');
    const type = token();
    const at = tokAt;
    if (type === 'regular') {
      let tok = token();
      let executable = false;
      if (tok === 'executable') {
        executable = true;
        const vAt = pos;
        if (bytes(MAX_TOKEN, 'executable flag').length !== 0) fail('NAR_UNEXPECTED_TOKEN', `expected '' after 'executable'`, vAt);
        tok = token();
      }
      if (tok !== 'contents') fail('NAR_UNEXPECTED_TOKEN', `expected 'contents', got '${printable(tok)}'`, tokAt, { expected: 'contents', got: tok });
      const sAt = pos;
      const size = u64('file size');
      if (size > MAX_CONTENTS) fail('NAR_TOO_LONG', `absurd file size ${size}`, sAt);
      if (buf.length - pos < size) truncated('file contents');
      const start = pos;
      pos += size;
      sink.fileData(path, executable, buf.subarray(start, pos), start);
      pad(size, 'file contents');
      expect(')');
      return false;
    }
    if (type === 'symlink') {
      expect('target');
      const tAt = pos;
      const target = bytes(MAX_TARGET, 'symlink target');
      if (target.length === 0 || target.includes(0)) fail('NAR_BAD_TARGET', 'empty or NUL-containing symlink target', tAt);
      expect(')');
      sink.symlink(path, target.toString('latin1'));
      return false;
    }
    if (type === 'directory') {
      sink.directory(path);
      return true;
    }
    return fail('NAR_UNEXPECTED_TOKEN', `unknown node type '${printable(type)}'`, at, { got: type });
  };

  let magic: Buffer;
  try {
    magic = bytes(MAX_TOKEN, 'magic');
  } catch (e) {
    if (e instanceof LazyError && (e.code === 'NAR_TOO_LONG' || e.code === 'NAR_BAD_PADDING')) fail('NAR_BAD_MAGIC', 'not a NAR (bad magic)', 0);
    throw e;
  }
  if (magic.toString('latin1') !== NarWriter.MAGIC) fail('NAR_BAD_MAGIC', 'not a NAR (bad magic)', 0);
  const stack: { path: string; prev: Buffer | undefined }[] = [];
  if (node('')) stack.push({ path: '', prev: undefined });
  while (stack.length > 0) {
    const dir = stack[stack.length - 1]!;
    const tok = token();
    if (tok === ')') {
      stack.pop();
      if (stack.length > 0) expect(')');
      continue;
    }
    if (tok !== 'entry') fail('NAR_UNEXPECTED_TOKEN', `expected 'entry' or ')', got '${printable(tok)}'`, tokAt, { got: tok });
    expect('(');
    expect('name');
    const nAt = pos;
    const child = entryPath(dir, bytes(MAX_NAME, 'entry name'), nAt);
    expect('node');
    if (node(child)) stack.push({ path: child, prev: undefined });
    else expect(')');
  }
  if (pos !== buf.length) fail('NAR_TRAILING', 'trailing bytes after the NAR', pos);
  return { narSize: pos };
}

/**
 * The path of the entry `name` (read at NAR byte `at`) in the open directory `dir`: the name
 * must be valid and sort strictly after the previous one (NAR_BAD_NAME, NAR_DUPLICATE,
 * NAR_UNSORTED). `name` must stay unchanged: it becomes `dir.prev`.
 */
function entryPath(dir: { path: string; prev: Buffer | undefined }, name: Buffer, at: number): string {
  checkName(name, at);
  if (dir.prev !== undefined) {
    const c = Buffer.compare(dir.prev, name);
    if (c === 0) fail('NAR_DUPLICATE', `duplicate entry '${printable(name.toString('latin1'))}'`, at);
    if (c > 0) fail('NAR_UNSORTED', `entry '${printable(name.toString('latin1'))}' after '${printable(dir.prev.toString('latin1'))}'`, at);
  }
  dir.prev = name;
  return dir.path === '' ? name.toString('latin1') : `${dir.path}/${name.toString('latin1')}`;
}

function checkName(name: Buffer, at: number): void {
  const s = name.toString('latin1');
  if (name.length === 0 || s === '.' || s === '..' || name.includes(0x2f) || name.includes(0)) {
    fail('NAR_BAD_NAME', `invalid entry name '${printable(s)}'`, at, { name: s });
  }
}

function printable(s: string): string {
  return JSON.stringify(s).slice(1, -1);
}

/** Parses a whole NAR from `source`, feeding `sink`; resolves with the NAR's size in bytes. */
export async function parseNar(source: AsyncIterable<Uint8Array>, sink: NarSink, opts: { signal?: AbortSignal } = {}): Promise<{ narSize: number }> {
  const reader = new ByteReader(source);
  try {
    return { narSize: await new NarParser(reader, sink, opts.signal).run() };
  } catch (e) {
    reader.release();
    throw e;
  }
}
