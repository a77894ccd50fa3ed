/**
 * Shared machinery for the parser fuzzers: the run budget, a hang guard, the "only LazyError
 * with a code" oracle, structure-aware mutators for real fixture inputs, and the regression
 * corpus (test/corpus/fuzz-regressions/<target>/*), replayed on every run.
 */
import fc from 'fast-check';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createContext, runInContext } from 'node:vm';
import { isLazyError } from '../../src/errors.js';

/** Runs per property: small in CI (a few seconds per parser), FUZZ_RUNS=100000 on demand. */
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 1000);
/** Wall-clock bound of one case: anything slower is a hang (inputs are at most ~100 KiB). */
export const CASE_TIMEOUT_MS = Number(process.env.FUZZ_CASE_TIMEOUT_MS ?? 2000);

export const REGRESSIONS = join(import.meta.dirname, '../corpus/fuzz-regressions');

/** Inputs each target has tried, for docs/RELIABILITY.md (printed at the end of each file). */
export const tried = new Map<string, number>();
export function count(target: string): void {
  tried.set(target, (tried.get(target) ?? 0) + 1);
}
/** Outcomes seen per target (`accepted` or the error code): shows the mutations reach deep. */
export const outcomes = new Map<string, Map<string, number>>();
function record(target: string, o: Outcome): Outcome {
  const key = o.ok ? 'accepted' : isLazyError(o.error) ? o.error.code : 'OTHER';
  const m = outcomes.get(target) ?? new Map<string, number>();
  m.set(key, (m.get(key) ?? 0) + 1);
  outcomes.set(target, m);
  return o;
}
export function summary(): string {
  return [...tried].map(([t, n]) => `${t}: ${n} inputs ${JSON.stringify(Object.fromEntries(outcomes.get(t) ?? []))}`).join('\n');
}

export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

const ctx = createContext({ f: undefined, x: undefined });

/**
 * Calls a synchronous parser under a watchdog: `vm`'s timeout terminates even a tight
 * infinite loop (a Promise.race cannot, the event loop never turns).
 */
export function guardSync<T>(target: string, f: (x: T) => unknown, x: T): Outcome {
  count(target);
  ctx.f = f;
  ctx.x = x;
  try {
    return record(target, { ok: true, value: runInContext('f(x)', ctx, { timeout: CASE_TIMEOUT_MS }) });
  } catch (error) {
    return record(target, { ok: false, error });
  } finally {
    ctx.f = undefined;
    ctx.x = undefined;
  }
}

/** Async parsers: bounded by a timer (their sync stretches are per-chunk, so short). */
export async function guardAsync(target: string, f: () => Promise<unknown>): Promise<Outcome> {
  count(target);
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, error: new Error(`HANG: no answer after ${CASE_TIMEOUT_MS} ms`) }), CASE_TIMEOUT_MS);
  });
  try {
    return record(target, await Promise.race([f().then((value): Outcome => ({ ok: true, value }), (error: unknown): Outcome => ({ ok: false, error })), hang]));
  } finally {
    clearTimeout(timer);
  }
}

/** The oracle: success, or a LazyError whose code has one of `prefixes`. Else the reason. */
export function badOutcome(o: Outcome, prefixes: readonly string[]): string | undefined {
  if (o.ok) return undefined;
  const e = o.error;
  if (!isLazyError(e)) return `not a LazyError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`;
  if (!prefixes.some((p) => e.code.startsWith(p))) return `unexpected code ${e.code}: ${e.message}`;
  if (e.message === '') return `empty message for ${e.code}`;
  return undefined;
}

/** Saves a failing input to the regression corpus (named by its hash, so reruns are idempotent). */
export function saveCrasher(target: string, input: Buffer, why: string): string {
  const dir = join(REGRESSIONS, target);
  mkdirSync(dir, { recursive: true });
  const name = createHash('sha256').update(input).digest('hex').slice(0, 16);
  writeFileSync(join(dir, `${name}.bin`), input);
  writeFileSync(join(dir, `${name}.why.txt`), `${why}\n`);
  return join(dir, `${name}.bin`);
}

/** Every saved input of a target (they must all be answered properly now). */
export function regressionInputs(target: string): { name: string; input: Buffer }[] {
  const dir = join(REGRESSIONS, target);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((name) => ({ name, input: readFileSync(join(dir, name)) }));
}

// ---- mutators --------------------------------------------------------------------------

export type Mutation = (b: Buffer) => Buffer;

/** A uniform position in [0, 1) (fast-check's numbers are biased toward 0: the header would take most hits). */
export const posArb = fc.noBias(fc.integer({ min: 0, max: 2 ** 30 - 1 })).map((n) => n / 2 ** 30);

const special = [0, 0x0a, 0x22, 0x28, 0x29, 0x2c, 0x2f, 0x3a, 0x5b, 0x5c, 0x5d, 0x2e, 0xff, 0x80, 0x20];

/** Byte-level mutations of one input: flips, truncation, insert/delete, splice with another. */
export function byteMutationArb(others: readonly Buffer[]): fc.Arbitrary<Mutation> {
  const pos = posArb;
  return fc.oneof(
    fc.tuple(pos, fc.integer({ min: 0, max: 7 })).map(([p, bit]): Mutation => (b) => {
      const c = Buffer.from(b);
      if (c.length > 0) c[Math.floor(p * c.length)]! ^= 1 << bit;
      return c;
    }),
    pos.map((p): Mutation => (b) => b.subarray(0, Math.floor(p * b.length))),
    fc.tuple(pos, fc.constantFrom(...special), fc.integer({ min: 1, max: 4 })).map(([p, byte, n]): Mutation => (b) => {
      const i = Math.floor(p * (b.length + 1));
      return Buffer.concat([b.subarray(0, i), Buffer.alloc(n, byte), b.subarray(i)]);
    }),
    fc.tuple(pos, fc.integer({ min: 1, max: 64 })).map(([p, n]): Mutation => (b) => {
      const i = Math.floor(p * b.length);
      return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
    }),
    fc.tuple(pos, pos, pos, fc.nat({ max: Math.max(0, others.length - 1) })).map(([p, q, r, k]): Mutation => (b) => {
      const o = others[k] ?? b;
      const i = Math.floor(p * b.length);
      const j = Math.floor(q * o.length);
      const len = Math.floor(r * (o.length - j));
      return Buffer.concat([b.subarray(0, i), o.subarray(j, j + len), b.subarray(i)]);
    }),
  );
}

/** One to four mutations applied in turn. */
export function mutatedArb(seeds: readonly Buffer[], mutation: fc.Arbitrary<Mutation>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([k, ms]) => ms.reduce((b, m) => m(b), seeds[k]!));
}

/** A fast-check failure message, with the shrunk input saved to the corpus. */
export function reportFailure(target: string, input: Buffer, why: string): string {
  const file = saveCrasher(target, input, why);
  return `${target}: ${why} (input saved to ${file})`;
}

/**
 * Runs `check` (a reason string = failure) over `arb` for FUZZ_RUNS cases; on failure saves
 * the shrunk counterexample to the corpus and throws with the reason.
 */
export async function fuzz(
  target: string,
  arb: fc.Arbitrary<Buffer>,
  check: (input: Buffer) => string | undefined | Promise<string | undefined>,
  runs = FUZZ_RUNS,
): Promise<void> {
  const result = await fc.check(
    fc.asyncProperty(arb, async (input) => (await check(input)) === undefined),
    { numRuns: runs, seed: process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED) },
  );
  if (!result.failed) return;
  const input = result.counterexample?.[0];
  if (!Buffer.isBuffer(input)) throw new Error(`${target}: property failed without a counterexample: ${String(result.errorInstance)}`);
  const why = (await check(input)) ?? `property failed (seed ${result.seed})`;
  throw new Error(reportFailure(target, input, why));
}
