/**
 * Fuzzing the NAR readers (parseNar, listNar, restoreNar) with structure-aware mutations of
 * real NARs made by Nix 2.8: length fields blown up, tokens swapped/dropped/duplicated,
 * padding dirtied, plus byte flips, truncations and splices. Oracle: each either accepts the
 * whole input (narSize = its length) or throws a LazyError with a NAR_ code; parseNar and
 * listNar agree; restoreNar never writes outside its destination.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLazyError } from '../../src/errors.js';
import { listNar } from '../../src/nix/nar-listing.js';
import { parseNar, type NarSink } from '../../src/nix/nar-reader.js';
import { encodeNar } from '../../src/nix/nar-writer.js';
import { restoreNar } from '../../src/store/nar-restore.js';
import { FIXTURES, fixtureDrv } from '../helpers/fixtures.js';
import { FUZZ_RUNS, badOutcome, byteMutationArb, fuzz, guardAsync, mutatedArb, posArb, regressionInputs, summary, type Mutation, type Outcome } from './fuzz-helpers.js';

const CACHE = join(FIXTURES, 'cache-none-signed');

/** The uncompressed NAR of a fixture output, from Nix's own binary cache. */
function fixtureNar(storePath: string): Buffer {
  const hash = storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  const url = /^URL: (.*)$/m.exec(readFileSync(join(CACHE, `${hash}.narinfo`), 'utf8'))![1]!;
  return readFileSync(join(CACHE, url));
}

const seeds: Buffer[] = [
  ...['single', 'multi', 'fod.recursive', 'chain.B'].flatMap((l) => Object.values(fixtureDrv(l).outputs).map((o) => fixtureNar(o.path))),
  encodeNar({
    type: 'directory',
    entries: {
      a: { type: 'regular', executable: true, contents: '#!/bin/sh\necho hi\n' },
      b: { type: 'directory', entries: { c: { type: 'symlink', target: '../a' }, d: { type: 'regular', contents: '' } } },
      'z.txt': { type: 'regular', contents: 'x'.repeat(1000) },
    },
  }),
];

/** Offsets of the NAR's strings: every NAR is a sequence of (u64 length, bytes, zero padding). */
function tokenOffsets(b: Buffer): number[] {
  const out: number[] = [];
  for (let o = 0; o + 8 <= b.length; ) {
    out.push(o);
    const len = Number(b.readBigUInt64LE(o));
    if (len > b.length) break;
    o += 8 + Math.ceil(len / 8) * 8;
  }
  return out;
}
function tokenEnd(b: Buffer, o: number): number {
  return Math.min(b.length, o + 8 + Math.ceil(Math.min(Number(b.readBigUInt64LE(o)), b.length) / 8) * 8);
}
function str(s: string): Buffer {
  const body = Buffer.from(s, 'latin1');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(body.length));
  return Buffer.concat([len, body, Buffer.alloc((8 - (body.length % 8)) % 8)]);
}

const LENGTHS = [0n, 1n, 7n, 8n, 255n, 256n, 4096n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n];
const KEYWORDS = ['nix-archive-1', '(', ')', 'type', 'regular', 'directory', 'symlink', 'entry', 'name', 'node', 'contents', 'executable', 'target', '', '..', '.', '../../etc/passwd', 'a/b', '\0', 'x'.repeat(300)];
const pos = posArb;

const narMutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  // a length field replaced (blown up, off by one, zero)
  fc.tuple(pos, fc.oneof(fc.constantFrom(...LENGTHS), fc.constantFrom(-1n, 1n))).map(([p, v]): Mutation => (b) => {
    const offs = tokenOffsets(b);
    const o = offs[Math.floor(p * offs.length)];
    if (o === undefined) return b;
    const c = Buffer.from(b);
    const cur = c.readBigUInt64LE(o);
    const next = v === -1n ? (cur === 0n ? 0n : cur - 1n) : v === 1n && cur !== 0n ? cur + 1n : v;
    c.writeBigUInt64LE(next & (2n ** 64n - 1n), o);
    return c;
  }),
  // a token replaced by a keyword / hostile name
  fc.tuple(pos, fc.constantFrom(...KEYWORDS)).map(([p, k]): Mutation => (b) => {
    const offs = tokenOffsets(b);
    const o = offs[Math.floor(p * offs.length)];
    return o === undefined ? b : Buffer.concat([b.subarray(0, o), str(k), b.subarray(tokenEnd(b, o))]);
  }),
  // a run of tokens dropped or duplicated
  fc.tuple(pos, fc.integer({ min: 1, max: 6 }), fc.boolean()).map(([p, n, dup]): Mutation => (b) => {
    const offs = tokenOffsets(b);
    const i = Math.floor(p * offs.length);
    const from = offs[i];
    if (from === undefined) return b;
    const to = offs[i + n] ?? b.length;
    return dup ? Buffer.concat([b.subarray(0, to), b.subarray(from, to), b.subarray(to)]) : Buffer.concat([b.subarray(0, from), b.subarray(to)]);
  }),
  // dirty padding
  fc.tuple(pos, fc.integer({ min: 1, max: 255 })).map(([p, v]): Mutation => (b) => {
    const offs = tokenOffsets(b).filter((o) => Number(b.readBigUInt64LE(o)) % 8 !== 0);
    const o = offs[Math.floor(p * offs.length)];
    if (o === undefined) return b;
    const c = Buffer.from(b);
    c[tokenEnd(c, o) - 1] = v;
    return c;
  }),
  byteMutationArb(seeds),
);

const narArb = fc.oneof({ weight: 9, arbitrary: mutatedArb(seeds, narMutationArb) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)) });

/** Splits the input into uneven chunks, yielding to the event loop between them. */
async function* chunks(b: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0, n = 1; i < b.length; i += n, n = (n * 3) % 97 + 1) {
    await Promise.resolve();
    yield b.subarray(i, i + n);
  }
}

const drainSink: NarSink = {
  directory: () => {},
  symlink: () => {},
  async file(_p, _x, _s, contents) {
    for await (const _ of contents);
  },
};

function acceptedWhole(o: Outcome, input: Buffer): string | undefined {
  if (!o.ok) return undefined;
  const size = (o.value as { narSize: number }).narSize;
  return size === input.length ? undefined : `accepted with narSize ${size} for ${input.length} bytes`;
}

function code(o: Outcome): string {
  return o.ok ? 'accepted' : isLazyError(o.error) ? o.error.code : 'other';
}

async function parseAndList(input: Buffer): Promise<string | undefined> {
  const parsed = await guardAsync('parseNar', () => parseNar(chunks(input), drainSink));
  const listed = await guardAsync('listNar', () => listNar(chunks(input)));
  const bad = badOutcome(parsed, ['NAR_']) ?? badOutcome(listed, ['NAR_']) ?? acceptedWhole(parsed, input) ?? acceptedWhole(listed, input);
  if (bad !== undefined) return bad;
  return code(parsed) === code(listed) ? undefined : `parseNar says ${code(parsed)}, listNar says ${code(listed)}`;
}

describe('NAR readers under mutated input', () => {
  afterAll(() => console.log(summary()));

  it('the seeds are valid NARs (the mutations start from real input)', async () => {
    for (const s of seeds) expect(await parseAndList(s)).toBeUndefined();
    expect(seeds.length).toBeGreaterThanOrEqual(5);
  });

  it('saved crashers are answered properly', async () => {
    for (const { name, input } of regressionInputs('nar')) expect(await parseAndList(input), name).toBeUndefined();
  });

  it('parseNar and listNar: accept whole or NAR_* error, never disagree, never hang', async () => {
    await fuzz('nar', narArb, parseAndList);
  });

  it('restoreNar: NAR_/STORE_ errors only, nothing written outside the destination', async () => {
    const root = await mkdtemp(join(tmpdir(), 'lazystore-fuzz-restore-'));
    let n = 0;
    try {
      await fuzz(
        'nar-restore',
        narArb,
        async (input) => {
          const box = join(root, String(n++));
          const dest = join(box, 'dest');
          await rm(box, { recursive: true, force: true }).catch(() => {});
          await import('node:fs/promises').then((f) => f.mkdir(box));
          const o = await guardAsync('restoreNar', () => restoreNar(chunks(input), dest));
          const bad = badOutcome(o, ['NAR_', 'STORE_']) ?? acceptedWhole(o, input);
          const left = (await readdir(box)).filter((f) => f !== 'dest');
          await chmodAll(box);
          await rm(box, { recursive: true, force: true });
          return bad ?? (left.length > 0 ? `wrote outside the destination: ${left.join(', ')}` : undefined);
        },
        Math.max(20, Math.floor(FUZZ_RUNS / 10)),
      );
    } finally {
      await chmodAll(root);
      await rm(root, { recursive: true, force: true });
    }
  });
});

/** Restored trees are read-only (0555 dirs): make them removable. */
async function chmodAll(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  const { chmod } = await import('node:fs/promises');
  await chmod(dir, 0o755).catch(() => {});
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await chmodAll(join(dir, e.name));
}
