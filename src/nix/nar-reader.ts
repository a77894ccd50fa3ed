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
}

/** Longest token (`nix-archive-1`), entry name and symlink target accepted. */
const MAX_TOKEN = 16;
export const MAX_NAME = 255;
export const MAX_TARGET = 4095;
/** Contents beyond 2^53 bytes cannot be a real file (and are not exact in a JS number). */
const MAX_CONTENTS = Number.MAX_SAFE_INTEGER;

function fail(code: string, message: string, offset: number, extra: Record<string, unknown> = {}): never {
  throw new LazyError(code, `${message} at NAR byte ${offset}`, { details: { offset, ...extra } });
}

class NarParser {
  constructor(
    readonly r: ByteReader,
    readonly sink: NarSink,
    readonly signal: AbortSignal | undefined,
  ) {}

  async u64(what: string): Promise<number> {
    const r = this.r;
    if (r.available < 8) await r.need(8, what);
    const at = r.offset;
    const b = r.take(8);
    const hi = b.readUInt32LE(4);
    if (hi > 0x1fffff) fail('NAR_TOO_LONG', `absurd length for ${what}`, at);
    return hi * 0x100000000 + b.readUInt32LE(0);
  }

  async pad(len: number, what: string): Promise<void> {
    const p = (8 - (len & 7)) & 7;
    if (p === 0) return;
    const r = this.r;
    if (r.available < p) await r.need(p, what);
    const at = r.offset;
    const b = r.take(p);
    for (let i = 0; i < p; i++) if (b[i] !== 0) fail('NAR_BAD_PADDING', `nonzero padding after ${what}`, at + i);
  }

  /** A length-prefixed string of at most `max` bytes; `at` receives its offset. */
  async bytes(max: number, what: string): Promise<Buffer> {
    const at = this.r.offset;
    const len = await this.u64(what);
    if (len > max) fail('NAR_TOO_LONG', `${what} of ${len} bytes (at most ${max})`, at, { length: len });
    const r = this.r;
    const padded = (len + 7) & ~7;
    if (r.available < padded) await r.need(padded, what);
    const b = r.take(len);
    if (padded > len) {
      const padAt = r.offset;
      const p = r.take(padded - len);
      for (let i = 0; i < p.length; i++) if (p[i] !== 0) fail('NAR_BAD_PADDING', `nonzero padding after ${what}`, padAt + i);
    }
    return b;
  }

  async token(): Promise<{ tok: string; at: number }> {
    const at = this.r.offset;
    const b = await this.bytes(MAX_TOKEN, 'token');
    return { tok: b.toString('latin1'), at };
  }

  async expect(want: string): Promise<void> {
    const { tok, at } = await this.token();
    if (tok !== want) fail('NAR_UNEXPECTED_TOKEN', `expected '${want}', got '${printable(tok)}'`, at, { expected: want, got: tok });
  }

  /** Reads one node at `path`; true when it was a directory, whose entries follow. */
  async node(path: string): Promise<boolean> {
    throwIfAborted(this.signal);
    await this.expect('(');
    await this.expect('type');
    const { tok: type, at } = await this.token();
    switch (type) {
      case 'regular':
        await this.regular(path);
        return false;
      case 'symlink': {
        await this.expect('target');
        const tAt = this.r.offset;
        const target = await this.bytes(MAX_TARGET, 'symlink target');
        if (target.length === 0 || target.includes(0)) fail('NAR_BAD_TARGET', 'empty or NUL-containing symlink target', tAt);
        await this.expect(')');
        await this.sink.symlink(path, target.toString('latin1'));
        return false;
      }
      case 'directory':
        await this.sink.directory(path);
        return true;
      default:
        return fail('NAR_UNEXPECTED_TOKEN', `unknown node type '${printable(type)}'`, at, { got: type });
    }
  }

  async regular(path: string): Promise<void> {
    let { tok, at } = await this.token();
    let executable = false;
    if (tok === 'executable') {
      executable = true;
      const vAt = this.r.offset;
      const v = await this.bytes(MAX_TOKEN, 'executable flag');
      if (v.length !== 0) fail('NAR_UNEXPECTED_TOKEN', `expected '' after 'executable'`, vAt);
      ({ tok, at } = await this.token());
    }
    if (tok !== 'contents') fail('NAR_UNEXPECTED_TOKEN', `expected 'contents', got '${printable(tok)}'`, at, { expected: 'contents', got: tok });
    const sAt = this.r.offset;
    const size = await this.u64('file size');
    if (size > MAX_CONTENTS) fail('NAR_TOO_LONG', `absurd file size ${size}`, sAt);
    const start = this.r.offset;
    const contents = this.r.stream(size, 'file contents');
    await this.sink.file(path, executable, size, contents, start);
    const consumed = this.r.offset - start;
    if (consumed < size) for await (const _ of this.r.stream(size - consumed, 'file contents'));
    await this.pad(size, 'file contents');
    await this.expect(')');
  }

  async run(): Promise<number> {
    const magicAt = this.r.offset;
    const magic = await this.bytes(MAX_TOKEN, 'magic').catch((e: unknown) => {
      if (e instanceof LazyError && e.code !== 'NAR_TRUNCATED') fail('NAR_BAD_MAGIC', 'not a NAR (bad magic)', magicAt);
      throw e;
    });
    if (magic.toString('latin1') !== NarWriter.MAGIC) fail('NAR_BAD_MAGIC', 'not a NAR (bad magic)', magicAt);
    // Open directories: their path and the previous entry name, for the sort check.
    const stack: { path: string; prev: Buffer | undefined }[] = [];
    if (await this.node('')) stack.push({ path: '', prev: undefined });
    while (stack.length > 0) {
      const dir = stack[stack.length - 1]!;
      const { tok, at } = await this.token();
      if (tok === ')') {
        stack.pop();
        if (stack.length > 0) await this.expect(')'); // closes the entry holding this directory
        continue;
      }
      if (tok !== 'entry') fail('NAR_UNEXPECTED_TOKEN', `expected 'entry' or ')', got '${printable(tok)}'`, at, { got: tok });
      await this.expect('(');
      await this.expect('name');
      const nAt = this.r.offset;
      const name = Buffer.from(await this.bytes(MAX_NAME, 'entry name'));
      checkName(name, nAt);
      if (dir.prev !== undefined) {
        const c = Buffer.compare(dir.prev, name);
        if (c === 0) fail('NAR_DUPLICATE', `duplicate entry '${printable(name.toString('latin1'))}'`, nAt);
        if (c > 0) fail('NAR_UNSORTED', `entry '${printable(name.toString('latin1'))}' after '${printable(dir.prev.toString('latin1'))}'`, nAt);
      }
      dir.prev = name;
      await this.expect('node');
      const child = dir.path === '' ? name.toString('latin1') : `${dir.path}/${name.toString('latin1')}`;
      if (await this.node(child)) stack.push({ path: child, prev: undefined });
      else await this.expect(')');
    }
    if (!(await this.r.atEnd())) fail('NAR_TRAILING', 'trailing bytes after the NAR', this.r.offset);
    return this.r.offset;
  }
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
  const narSize = await new NarParser(new ByteReader(source), sink, opts.signal).run();
  return { narSize };
}
