/**
 * LZMA symbol decoding over a range coder, as in the LZMA specification, for the in-process
 * xz decoder (xz-decode.ts). The output buffer is the dictionary: NARs decoded this way are
 * small and held whole anyway. Every read is bounds-checked; every symbol emits output.
 */
import { LazyError } from '../errors.js';

export function corrupt(msg: string): LazyError {
  return new LazyError('SUBST_DECOMPRESS', `xz data is corrupt: ${msg}`);
}

export class Input {
  pos = 0;
  constructor(readonly buf: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.buf.length) throw corrupt('unexpected end of input');
    return this.buf[this.pos++]!;
  }
  skip(n: number): void {
    if (this.pos + n > this.buf.length) throw corrupt('unexpected end of input');
    this.pos += n;
  }
  vli(): number {
    let v = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.byte();
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    throw corrupt('variable-length integer too long');
  }
}

export class Output {
  readonly buf: Buffer;
  pos = 0;
  /** Where the dictionary was last reset: matches may not reach before it. */
  dictStart = 0;
  constructor(readonly max: number) {
    this.buf = Buffer.allocUnsafe(max);
  }
  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
  room(n: number): void {
    if (this.pos + n > this.max) throw corrupt(`output exceeds the expected ${this.max} bytes`);
  }
}

const TOP = 2 ** 24;

export class Lzma {
  private lc = 0;
  private lp = 0;
  private pb = 0;
  private range = 0;
  private code = 0;
  private end = 0;
  private state = 0;
  private reps = [0, 0, 0, 0];
  private lit = new Uint16Array(0x300 << 4);
  private readonly isMatch = new Uint16Array(192);
  private readonly isRep = new Uint16Array(12);
  private readonly isRepG0 = new Uint16Array(12);
  private readonly isRepG1 = new Uint16Array(12);
  private readonly isRepG2 = new Uint16Array(12);
  private readonly isRep0Long = new Uint16Array(192);
  private readonly posSlot = new Uint16Array(4 * 64);
  private readonly posSpecial = new Uint16Array(115);
  private readonly align = new Uint16Array(16);
  private readonly lenProbs = new Uint16Array(2 + 16 * 8 * 2 + 256);
  private readonly repLenProbs = new Uint16Array(2 + 16 * 8 * 2 + 256);

  constructor(
    private inp: Input,
    private out: Output,
  ) {}

  /**
   * Points this decoder at another input and output, keeping its probability arrays (~40 KiB,
   * which per NAR of a 561-path closure were most of the garbage the decoder made). LZMA2 data
   * must begin with a chunk that sets properties and resets the state (decodeLzma2 enforces
   * it), so nothing of the previous stream can leak into the next.
   */
  rebind(inp: Input, out: Output): this {
    this.inp = inp;
    this.out = out;
    return this;
  }

  setProps(b: number): void {
    if (b >= 9 * 5 * 5) throw corrupt('bad LZMA properties');
    this.lc = b % 9;
    b = Math.floor(b / 9);
    this.lp = b % 5;
    this.pb = Math.floor(b / 5);
    if (this.lc + this.lp > 4) throw corrupt('LZMA2 needs lc + lp <= 4');
    if (this.lit.length !== 0x300 << (this.lc + this.lp)) this.lit = new Uint16Array(0x300 << (this.lc + this.lp));
  }

  resetState(): void {
    this.state = 0;
    this.reps = [0, 0, 0, 0];
    for (const a of [this.lit, this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2, this.isRep0Long, this.posSlot, this.posSpecial, this.align, this.lenProbs, this.repLenProbs]) {
      a.fill(1024);
    }
  }

  private byte(): number {
    if (this.inp.pos >= this.end) throw corrupt('LZMA chunk overruns its size');
    return this.inp.buf[this.inp.pos++]!;
  }

  private bit(p: Uint16Array, i: number): number {
    const prob = p[i]!;
    const bound = (this.range >>> 11) * prob;
    let bit: number;
    if (this.code < bound) {
      this.range = bound;
      p[i] = prob + ((2048 - prob) >>> 5);
      bit = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      p[i] = prob - (prob >>> 5);
      bit = 1;
    }
    if (this.range < TOP) {
      this.range = this.range * 256;
      this.code = this.code * 256 + this.byte();
    }
    return bit;
  }

  private tree(p: Uint16Array, base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(p, base + m);
    return m - (1 << bits);
  }

  private reverseTree(p: Uint16Array, base: number, bits: number): number {
    let m = 1;
    let sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(p, base + m);
      m = (m << 1) | b;
      sym |= b << i;
    }
    return sym;
  }

  private direct(bits: number): number {
    let v = 0;
    for (let i = 0; i < bits; i++) {
      this.range = this.range >>> 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      v = v * 2 + b;
      if (this.range < TOP) {
        this.range = this.range * 256;
        this.code = this.code * 256 + this.byte();
      }
    }
    return v;
  }

  /** Match length minus 2 (0…271). Layout: choice, choice2, low[16][8], mid[16][8], high[256]. */
  private len(p: Uint16Array, posState: number): number {
    if (this.bit(p, 0) === 0) return this.tree(p, 2 + posState * 8, 3);
    if (this.bit(p, 1) === 0) return 8 + this.tree(p, 2 + 128 + posState * 8, 3);
    return 16 + this.tree(p, 2 + 256, 8);
  }

  private distance(len: number): number {
    const slot = this.tree(this.posSlot, Math.min(len, 3) * 64, 6);
    if (slot < 4) return slot;
    const bits = (slot >>> 1) - 1;
    let dist = (2 | (slot & 1)) * 2 ** bits;
    if (slot < 14) return dist + this.reverseTree(this.posSpecial, dist - slot, bits);
    dist += this.direct(bits - 4) * 16;
    return dist + this.reverseTree(this.align, 0, 4);
  }

  decodeChunk(outEnd: number, inEnd: number): void {
    const { out } = this;
    const buf = out.buf;
    this.end = inEnd;
    if (this.byte() !== 0) throw corrupt('bad range coder start');
    this.range = 0xffffffff;
    this.code = 0;
    for (let i = 0; i < 4; i++) this.code = this.code * 256 + this.byte();
    if (this.code >= this.range) throw corrupt('bad range coder start');
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    const reps = this.reps;
    while (out.pos < outEnd) {
      const pos = out.pos - out.dictStart;
      const posState = pos & pbMask;
      const state = this.state;
      if (this.bit(this.isMatch, (state << 4) + posState) === 0) {
        const prev = pos > 0 ? buf[out.pos - 1]! : 0;
        const base = 0x300 * (((pos & lpMask) << this.lc) + (prev >>> (8 - this.lc)));
        let sym = 1;
        if (state >= 7) {
          if (reps[0]! >= pos) throw corrupt('match distance beyond the dictionary');
          let matchByte = buf[out.pos - reps[0]! - 1]!;
          do {
            const matchBit = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            const b = this.bit(this.lit, base + ((1 + matchBit) << 8) + sym);
            sym = (sym << 1) | b;
            if (matchBit !== b) break;
          } while (sym < 0x100);
        }
        while (sym < 0x100) sym = (sym << 1) | this.bit(this.lit, base + sym);
        buf[out.pos++] = sym - 0x100;
        this.state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      let len: number;
      if (this.bit(this.isRep, state) === 0) {
        reps[3] = reps[2]!;
        reps[2] = reps[1]!;
        reps[1] = reps[0]!;
        len = this.len(this.lenProbs, posState);
        this.state = state < 7 ? 7 : 10;
        reps[0] = this.distance(len);
        if (reps[0] === 0xffffffff) throw corrupt('end marker inside LZMA2');
      } else {
        if (this.bit(this.isRepG0, state) === 0) {
          if (this.bit(this.isRep0Long, (state << 4) + posState) === 0) {
            if (reps[0]! >= pos) throw corrupt('match distance beyond the dictionary');
            this.state = state < 7 ? 9 : 11;
            buf[out.pos] = buf[out.pos - reps[0]! - 1]!;
            out.pos++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(this.isRepG1, state) === 0) dist = reps[1]!;
          else {
            if (this.bit(this.isRepG2, state) === 0) dist = reps[2]!;
            else {
              dist = reps[3]!;
              reps[3] = reps[2]!;
            }
            reps[2] = reps[1]!;
          }
          reps[1] = reps[0]!;
          reps[0] = dist;
        }
        len = this.len(this.repLenProbs, posState);
        this.state = state < 7 ? 8 : 11;
      }
      const n = len + 2;
      const from = out.pos - reps[0]! - 1;
      if (from < out.dictStart) throw corrupt('match distance beyond the dictionary');
      if (out.pos + n > outEnd) throw corrupt('match runs past the chunk');
      // Byte by byte: source and destination may overlap (distance < length repeats).
      for (let i = 0; i < n; i++) buf[out.pos + i] = buf[from + i]!;
      out.pos += n;
    }
  }
}
