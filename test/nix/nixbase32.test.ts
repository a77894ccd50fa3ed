import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeNix32, encodeNix32 } from '../../src/nix/nixbase32.js';
import { compressHash, formatHash, hashOf, parseHash } from '../../src/nix/hash.js';
import { isLazyError } from '../../src/errors.js';

describe('nixbase32', () => {
  it('matches known Nix values', () => {
    // `nix-hash --type sha256 --to-base32` of sha256("") (hex e3b0c442…)
    const h = hashOf('sha256', '');
    expect(encodeNix32(h.digest)).toBe('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
    expect(formatHash(h, 'nix32')).toBe('sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
  });
  it('round-trips random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), (b) => {
        expect(decodeNix32(encodeNix32(b)).equals(Buffer.from(b))).toBe(true);
      }),
    );
  });
  it('rejects characters outside the alphabet', () => {
    expect(() => decodeNix32('e000')).toThrow();
    try {
      decodeNix32('0000000000000000000000000000000u');
    } catch (e) {
      expect(isLazyError(e, 'NIX32_INVALID')).toBe(true);
    }
  });
});

describe('hash', () => {
  const h = hashOf('sha256', 'abc');
  it('parses every form', () => {
    for (const form of ['nix32', 'hex', 'base64', 'sri'] as const) {
      expect(parseHash(formatHash(h, form)).digest.equals(h.digest)).toBe(true);
    }
    expect(parseHash(h.digest.toString('hex'), 'sha256').digest.equals(h.digest)).toBe(true);
  });
  it('rejects wrong lengths, types and algorithms', () => {
    expect(() => parseHash('sha256:abcd')).toThrow(/wrong length/);
    expect(() => parseHash('sha257:abcd')).toThrow(/unknown algorithm/);
    expect(() => parseHash('abcd')).toThrow(/no type/);
    expect(() => parseHash(formatHash(h), 'sha1')).toThrow(/should have type/);
  });
  it('xor-folds like compressHash', () => {
    const folded = compressHash(Buffer.from([1, 2, 3, 4, 5]), 2);
    expect([...folded]).toEqual([1 ^ 3 ^ 5, 2 ^ 4]);
  });
});
