import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseNar, type NarSink } from '../../src/nix/nar-reader.js';
import { encodeNar, NarWriter } from '../../src/nix/nar-writer.js';
import { LazyError, isLazyError } from '../../src/errors.js';
import { chunked, expectedEvents, narTreeArb, recordingSink, withoutOffsets } from './nar-helpers.js';

describe('parseNar', () => {
  it('reports every node of an encoded tree, however the bytes are chunked', async () => {
    await fc.assert(
      fc.asyncProperty(narTreeArb, fc.array(fc.nat(), { maxLength: 12 }), async (tree, cutSeeds) => {
        const nar = encodeNar(tree);
        const { sink, events } = recordingSink();
        const { narSize } = await parseNar(
          chunked(
            nar,
            cutSeeds.map((s) => s % (nar.length + 1)),
          ),
          sink,
        );
        expect(narSize).toBe(nar.length);
        expect(withoutOffsets(events)).toEqual(expectedEvents(tree));
        for (const e of events) {
          if (e.kind === 'file') expect(nar.subarray(e.narOffset, e.narOffset + e.size).toString('latin1')).toBe(e.contents);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('accepts bytewise order where JS string order differs', async () => {
    // UTF-8 EF BF BF (U+FFFF) < F0 90 80 80 (U+10000), though '\uffff' > '\u{10000}' in UTF-16.
    const a = Buffer.from('\uffff').toString('latin1');
    const b = Buffer.from('\u{10000}').toString('latin1');
    const nar = encodeNar({ type: 'directory', entries: { [b]: { type: 'regular', contents: '2' }, [a]: { type: 'regular', contents: '1' } } });
    const { sink, events } = recordingSink();
    await parseNar(chunked(nar), sink);
    expect(events.map((e) => e.path)).toEqual(['', a, b]);
  });

  it('skips contents the sink leaves unread', async () => {
    const tree = {
      type: 'directory' as const,
      entries: {
        big: { type: 'regular' as const, contents: Buffer.alloc(100_000, 7) },
        z: { type: 'symlink' as const, target: 'big' },
      },
    };
    const nar = encodeNar(tree);
    const seen: string[] = [];
    const sink: NarSink = {
      directory: (p) => void seen.push(`d:${p}`),
      symlink: (p, t) => void seen.push(`l:${p}->${t}`),
      async file(p, _x, size, contents) {
        for await (const c of contents) {
          seen.push(`f:${p}:${size}:${c.length > 0}`);
          break; // read one chunk only
        }
      },
    };
    await parseNar(chunked(nar, [200, 5000, 70_000]), sink);
    expect(seen).toEqual(['d:', 'f:big:100000:true', 'l:z->big']);
  });

  it('encodes exactly as Nix frames strings (u64 length, zero padding to 8)', () => {
    expect(NarWriter.str('abc').toString('hex')).toBe('0300000000000000' + '6162630000000000');
    expect(NarWriter.str('').length).toBe(8);
    expect(NarWriter.str('12345678').length).toBe(16);
    const nar = encodeNar({ type: 'regular', contents: '' });
    expect(nar.length).toBe(8 * 2 + 8 + 8 * 2 * 3 + 16 + 8 + 16);
  });

  it('stops when aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    const nar = encodeNar({ type: 'regular', contents: 'x' });
    const e = await parseNar(chunked(nar), recordingSink().sink, { signal: ac.signal }).catch((x: unknown) => x);
    expect(isLazyError(e, 'ABORTED')).toBe(true);
  });
  it("passes the source's own errors through while reading the magic; only bad bytes are NAR_BAD_MAGIC", async () => {
    const nar = encodeNar({ type: 'regular', contents: 'x' });
    async function* failing(prefix: number, err: unknown): AsyncGenerator<Buffer> {
      if (prefix > 0) yield nar.subarray(0, prefix);
      throw err;
    }
    // A download failure, a caller's size limit (even one with a NAR_ code), an abort, a plain Error.
    const errors = [
      new LazyError('SUBST_HTTP_FAILED', 'connection reset', { details: { transient: true } }),
      new LazyError('STORE_NAR_SIZE_MISMATCH', 'too big'),
      new LazyError('NAR_TOO_LONG', 'an inner NAR'),
      new LazyError('ABORTED', 'aborted'),
      new Error('xz: broken pipe'),
    ];
    for (const err of errors) {
      for (const prefix of [0, 4, 12]) {
        const got = await parseNar(failing(prefix, err), recordingSink().sink).catch((x: unknown) => x);
        expect(got).toBe(err);
      }
    }
    const bad = Buffer.from(nar);
    bad[8] = 0x4d; // 'M' for 'n'
    const e1 = await parseNar(chunked(bad), recordingSink().sink).catch((x: unknown) => x);
    expect(isLazyError(e1, 'NAR_BAD_MAGIC')).toBe(true);
    const long = Buffer.alloc(64);
    long.writeUInt32LE(1000, 0);
    const e2 = await parseNar(chunked(long), recordingSink().sink).catch((x: unknown) => x);
    expect(isLazyError(e2, 'NAR_BAD_MAGIC')).toBe(true);
  });
});
