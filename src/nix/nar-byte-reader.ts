/**
 * Pull-based reading of a chunked byte stream with absolute offsets, for the NAR parser.
 * Small reads (`need` + `take`) are served from the current chunk without awaiting when the
 * bytes are there; file contents are handed out as views of the source's chunks, never copied.
 */
import { LazyError } from '../errors.js';

const EMPTY = Buffer.alloc(0);
/** Bytes of the next chunk joined to an unread tail; more than any string the parser reads whole (≤ 4 KiB). */
const JOIN = 8192;

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Absolute offset of the next unread byte. */
  offset = 0;
  private done = false;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  get available(): number {
    return this.buf.length - this.pos;
  }

  /** What the source threw, if it failed: never to be reinterpreted as a NAR format error. */
  private sourceError: unknown;

  isSourceError(e: unknown): boolean {
    return this.sourceError !== undefined && e === this.sourceError;
  }

  /** Rest of a chunk not yet in `buf` (set when a string straddled two chunks). */
  private pending: Buffer | undefined;

  /**
   * Pulls more input into `buf`, keeping unread bytes; false at end of input. A string that
   * straddles two chunks is joined by copying the unread tail plus at most JOIN bytes of the next
   * chunk (the rest waits in `pending`), not the whole next chunk: that would copy the whole NAR
   * once more.
   */
  private async pull(): Promise<boolean> {
    let chunk = this.pending;
    this.pending = undefined;
    while (chunk === undefined) {
      if (this.done) return false;
      let r: IteratorResult<Uint8Array>;
      try {
        r = await this.it.next();
      } catch (e) {
        this.sourceError = e;
        this.done = true;
        throw e;
      }
      if (r.done === true) {
        this.done = true;
        return false;
      }
      const c = r.value;
      if (c.length > 0) chunk = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.length);
    }
    if (this.available === 0) this.buf = chunk;
    else {
      const k = Math.min(chunk.length, JOIN);
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk.subarray(0, k)]);
      if (k < chunk.length) this.pending = chunk.subarray(k);
    }
    this.pos = 0;
    return true;
  }

  /** Ensures `n` bytes are available; NAR_TRUNCATED if the input ends first. */
  async need(n: number, what: string): Promise<void> {
    while (this.available < n) {
      if (!(await this.pull())) {
        throw new LazyError('NAR_TRUNCATED', `NAR ends inside ${what} at NAR byte ${this.offset + this.available}`, {
          details: { offset: this.offset + this.available },
        });
      }
    }
  }

  /** Takes `n` bytes already made available by `need` (a view, valid until the next pull). */
  take(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    this.offset += n;
    return b;
  }

  /** Skips `n` bytes already made available. */
  skip(n: number): void {
    this.pos += n;
    this.offset += n;
  }

  /** Peeks at buffered bytes without consuming them (`k + 4 <= available`). */
  u32At(k: number): number {
    return this.buf.readUInt32LE(this.pos + k);
  }

  byteAt(k: number): number {
    return this.buf[this.pos + k]!;
  }

  /** The next `n` bytes when already buffered, without a copy; undefined if not. */
  takeIfBuffered(n: number): Buffer | undefined {
    return this.available >= n ? this.take(n) : undefined;
  }

  /** Yields the next `n` bytes as views of the source's chunks. */
  async *stream(n: number, what: string): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.available === 0) await this.need(1, what);
      const k = Math.min(left, this.available);
      left -= k;
      yield this.take(k);
    }
  }

  /** True when no byte is left (pulls once if needed). */
  async atEnd(): Promise<boolean> {
    return this.available === 0 && !(await this.pull());
  }

  /**
   * Lets go of the source when parsing stops early (a malformed NAR): its `finally` runs, so an
   * HTTP body's stall timer or a decompressor process does not outlive the failed parse.
   */
  release(): void {
    if (this.done) return;
    this.done = true;
    void this.it.return?.()?.catch(() => undefined);
  }
}
