/**
 * parseNarSync, the whole-buffer twin of the streaming parser, held to the same answers: the
 * same events for every tree, and for damaged NARs the same error code and offset, byte for byte.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNar, parseNarSync } from '../../src/nix/nar-reader.js';
import { encodeNar } from '../../src/nix/nar-writer.js';
import { chunked, expectedEvents, narTreeArb, recordingSink, recordingSyncSink } from './nar-helpers.js';

type Outcome = { ok: true; narSize: number; events: unknown[] } | { ok: false; code: string; offset: unknown };

function outcome(run: () => { narSize: number }, events: unknown[]): Outcome {
  try {
    return { ok: true, narSize: run().narSize, events };
  } catch (e) {
    const err = e as { code?: string; details?: { offset?: unknown } };
    return { ok: false, code: err.code ?? String(e), offset: err.details?.offset };
  }
}

const syncOutcome = (nar: Buffer): Outcome => {
  const { sink, events } = recordingSyncSink();
  return outcome(() => parseNarSync(nar, sink), events);
};

async function streamOutcome(nar: Buffer): Promise<Outcome> {
  const { sink, events } = recordingSink();
  try {
    return { ok: true, narSize: (await parseNar(chunked(nar), sink)).narSize, events };
  } catch (e) {
    const err = e as { code?: string; details?: { offset?: unknown } };
    return { ok: false, code: err.code ?? String(e), offset: err.details?.offset };
  }
}

describe('parseNarSync', () => {
  it('reports every node of an encoded tree, with the streaming parser’s offsets', async () => {
    await fc.assert(
      fc.asyncProperty(narTreeArb, async (tree) => {
        const nar = encodeNar(tree);
        const got = syncOutcome(nar);
        expect(got).toEqual(await streamOutcome(nar));
        expect(got.ok && got.narSize).toBe(nar.length);
        expect(got.ok && got.events.map((e) => ({ ...(e as object), narOffset: undefined }))).toEqual(
          expectedEvents(tree).map((e) => ({ ...e, narOffset: undefined })),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('fails damaged NARs exactly as the streaming parser does (flipped bytes, cuts, appended bytes)', async () => {
    await fc.assert(
      fc.asyncProperty(
        narTreeArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        fc.oneof(fc.constant(undefined), fc.nat()),
        fc.uint8Array({ maxLength: 9 }),
        async (tree, flips, cut, extra) => {
          const nar = Buffer.from(encodeNar(tree));
          for (const [at, v] of flips) nar[at % nar.length] = v;
          const damaged = Buffer.concat([cut === undefined ? nar : nar.subarray(0, cut % (nar.length + 1)), extra]);
          expect(syncOutcome(damaged)).toEqual(await streamOutcome(damaged));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('rejects every file of the malformed-NAR corpus with its code and offset', () => {
    const dir = join(import.meta.dirname, '../corpus/nar');
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Record<string, { code: string; offset: number }>;
    expect(Object.keys(index).length).toBeGreaterThan(30);
    for (const [file, want] of Object.entries(index)) {
      const got = syncOutcome(readFileSync(join(dir, file)));
      expect(got, file).toEqual({ ok: false, ...want });
    }
  });
});
