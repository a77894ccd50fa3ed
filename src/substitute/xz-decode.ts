/**
 * An in-process decoder for small .xz files (LZMA2 filter only), written from the xz file
 * format and LZMA specifications. Why: a closure is mostly small NARs, and spawning `xz -dc`
 * costs ~6 ms each (2 cores, 8 at once) against well under 1 ms to decode a few KiB here.
 * Large NARs still stream through the native tool (decompress.ts), so this never holds more
 * than `maxSize` bytes and never blocks the event loop for long.
 *
 * Integrity is the NAR hash's job (checked by the store): the xz check fields are skipped.
 * Hostile input can only make it throw: every read is bounds-checked, output is capped at
 * `maxSize`, and every decoded symbol produces output, so it always terminates.
 */
import { Input, Lzma, Output, corrupt } from './lzma-decoder.js';

/** Thrown for valid xz that uses features decoded only by the native tool (e.g. BCJ filters). */
export class XzUnsupported extends Error {}

const MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const CHECK_SIZE = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

/** Decodes a whole .xz file (concatenated streams allowed); at most `maxSize` output bytes. */
export function xzDecompressSync(data: Uint8Array, maxSize: number): Buffer {
  const inp = new Input(data);
  const out = new Output(maxSize);
  let streams = 0;
  while (inp.pos < data.length) {
    if (streams > 0 && data[inp.pos] === 0) {
      inp.skip(4); // stream padding, in multiples of 4 zero bytes
      continue;
    }
    for (const m of MAGIC) if (inp.byte() !== m) throw corrupt('bad stream header magic');
    if (inp.byte() !== 0) throw new XzUnsupported('unknown stream flags');
    const checkType = inp.byte();
    if (checkType > 15) throw corrupt('bad stream flags');
    inp.skip(4); // CRC32 of the flags
    for (;;) {
      const headerSizeByte = inp.byte();
      if (headerSizeByte === 0) break; // index indicator
      decodeBlock(inp, headerSizeByte, out);
      while ((inp.pos & 3) !== 0) if (inp.byte() !== 0) throw corrupt('nonzero block padding');
      inp.skip(CHECK_SIZE[checkType]!);
    }
    // Index: records, padding, CRC32; then the 12-byte stream footer.
    const records = inp.vli();
    for (let i = 0; i < records; i++) {
      inp.vli();
      inp.vli();
    }
    while ((inp.pos & 3) !== 0) if (inp.byte() !== 0) throw corrupt('nonzero index padding');
    inp.skip(4);
    inp.skip(10);
    if (inp.byte() !== 0x59 || inp.byte() !== 0x5a) throw corrupt('bad stream footer magic');
    streams++;
  }
  if (streams === 0) throw corrupt('empty input');
  return out.result();
}

function decodeBlock(inp: Input, headerSizeByte: number, out: Output): void {
  const start = inp.pos - 1;
  const headerEnd = start + (headerSizeByte + 1) * 4;
  const flags = inp.byte();
  if ((flags & 0x3c) !== 0) throw new XzUnsupported('reserved block flags');
  if ((flags & 3) !== 0) throw new XzUnsupported('more than one filter');
  if (flags & 0x40) inp.vli(); // compressed size
  if (flags & 0x80) inp.vli(); // uncompressed size
  if (inp.vli() !== 0x21) throw new XzUnsupported('filter other than LZMA2');
  if (inp.vli() !== 1) throw corrupt('bad LZMA2 properties size');
  const dictByte = inp.byte();
  if (dictByte > 40) throw corrupt('bad LZMA2 dictionary size');
  if (inp.pos > headerEnd - 4) throw corrupt('block header too short');
  inp.pos = headerEnd; // padding and CRC32 of the header
  if (inp.pos > inp.buf.length) throw corrupt('unexpected end of input');
  decodeLzma2(inp, out);
}

/** One decoder for every call: decoding is synchronous, so calls never overlap. */
let shared: Lzma | undefined;

function decodeLzma2(inp: Input, out: Output): void {
  const lz = shared?.rebind(inp, out) ?? (shared = new Lzma(inp, out));
  let needDictReset = true;
  let needProps = true;
  for (;;) {
    const control = inp.byte();
    if (control === 0) return;
    if (control === 1 || control === 2) {
      if (control === 1) {
        out.dictStart = out.pos;
        needDictReset = false;
      } else if (needDictReset) throw corrupt('missing dictionary reset');
      const size = ((inp.byte() << 8) | inp.byte()) + 1;
      inp.skip(size);
      out.room(size);
      out.buf.set(inp.buf.subarray(inp.pos - size, inp.pos), out.pos);
      out.pos += size;
      continue;
    }
    if (control < 0x80) throw corrupt(`bad LZMA2 control byte ${control}`);
    const unpacked = (control & 0x1f) * 65536 + ((inp.byte() << 8) | inp.byte()) + 1;
    const packed = ((inp.byte() << 8) | inp.byte()) + 1;
    const reset = (control >> 5) & 3;
    if (reset === 3) {
      out.dictStart = out.pos;
      needDictReset = false;
    } else if (needDictReset) throw corrupt('missing dictionary reset');
    if (reset >= 2) {
      lz.setProps(inp.byte());
      needProps = false;
    } else if (needProps) throw corrupt('missing LZMA properties');
    if (reset >= 1) lz.resetState();
    const end = inp.pos + packed;
    if (end > inp.buf.length) throw corrupt('unexpected end of input');
    out.room(unpacked);
    lz.decodeChunk(out.pos + unpacked, end);
    if (inp.pos !== end) throw corrupt('LZMA chunk size mismatch');
  }
}
