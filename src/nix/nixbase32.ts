/**
 * Nix's base-32: alphabet without e, o, u, t; the string encodes the byte array from its
 * last 5-bit group first, so it does not match RFC 4648. 20 bytes ↔ 32 characters.
 */
import { LazyError } from '../errors.js';

const ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
const VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i;

export function nix32Length(byteLength: number): number {
  return Math.ceil((byteLength * 8) / 5);
}

export function encodeNix32(bytes: Uint8Array): string {
  const len = nix32Length(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const lo = bytes[i]! >> j;
    const hi = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += ALPHABET[(lo | hi) & 0x1f];
  }
  return out;
}

export function decodeNix32(s: string): Buffer {
  const size = Math.floor((s.length * 5) / 8);
  const out = Buffer.alloc(size);
  for (let n = 0; n < s.length; n++) {
    const code = s.charCodeAt(s.length - n - 1);
    const digit = code < 128 ? VALUE[code]! : -1;
    if (digit < 0) {
      throw new LazyError('NIX32_INVALID', `invalid character '${s[s.length - n - 1]}' in nix32 string '${s}'`);
    }
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] = out[i]! | ((digit << j) & 0xff);
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1] = out[i + 1]! | carry;
    else if (carry !== 0) throw new LazyError('NIX32_INVALID', `nix32 string '${s}' has bits beyond its length`);
  }
  return out;
}

export function isNix32Char(c: string): boolean {
  const code = c.charCodeAt(0);
  return c.length === 1 && code < 128 && VALUE[code]! >= 0;
}
