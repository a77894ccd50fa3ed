import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RefScanner } from '../../src/nix/refscan.js';

const H1 = 'a8bvgsvj08sdj8r5dzyglmahmb6dslki';
const H2 = '71fc7s32zl20dc955bhghy5dvalm7ndz';
const H3 = '0000000000000000000000000000000z';

function scan(chunks: Uint8Array[], candidates = [H1, H2, H3]): string[] {
  const s = new RefScanner(candidates);
  for (const c of chunks) s.update(c);
  return [...s.found()].sort();
}

describe('RefScanner', () => {
  const text = Buffer.from(`#!/bin/sh\nexec /nix/store/${H1}-fixture-single/bin/x "$@" # ${H2}`);

  it('finds hash parts in one chunk', () => {
    expect(scan([text])).toEqual([H1, H2].sort());
    expect(scan([Buffer.from(`${H3.slice(1)}`)])).toEqual([]);
  });

  it('finds hashes across every possible split into two and three chunks', () => {
    for (let i = 0; i <= text.length; i++) {
      expect(scan([text.subarray(0, i), text.subarray(i)]), `split at ${i}`).toEqual([H1, H2].sort());
      for (let j = i; j <= text.length; j += 5) {
        expect(scan([text.subarray(0, i), text.subarray(i, j), text.subarray(j)])).toEqual([H1, H2].sort());
      }
    }
  });

  it('finds hashes fed one byte at a time', () => {
    expect(scan([...text].map((b) => Uint8Array.of(b)))).toEqual([H1, H2].sort());
  });

  it('does not let a caller reusing its buffer corrupt the carried tail', () => {
    const s = new RefScanner([H1]);
    const buf = Buffer.alloc(20);
    const data = Buffer.from(`xx${H1}yy`);
    for (let off = 0; off < data.length; off += 20) {
      buf.fill(0);
      const n = data.copy(buf, 0, off, off + 20);
      s.update(buf.subarray(0, n));
    }
    expect([...s.found()]).toEqual([H1]);
  });

  it('ignores hashes broken by a byte outside the nix32 alphabet, and near misses', () => {
    const broken = `${H1.slice(0, 10)}e${H1.slice(11)} ${H1.slice(0, 31)}`;
    expect(scan([Buffer.from(broken)])).toEqual([]);
  });

  it('agrees with a naive search on random data with planted hashes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constantFrom(H1, H2, H3, 'e', '/', 'abc'), fc.string({ maxLength: 40 })), { maxLength: 30 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (pieces, cuts) => {
          const data = Buffer.from(pieces.join(''), 'latin1');
          const want = [H1, H2, H3].filter((h) => data.includes(h)).sort();
          const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let prev = 0;
          for (const p of points) {
            chunks.push(data.subarray(prev, p));
            prev = p;
          }
          chunks.push(data.subarray(prev));
          expect(scan(chunks)).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
  });
});
