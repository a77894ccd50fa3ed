/**
 * Fuzzing the text parsers with mutations of real inputs from Nix 2.8: ATerm derivations,
 * narinfo, nix-cache-info, store paths, hashes (every form), keys and signatures, content
 * addresses, nix32. Oracle: success, or a LazyError with the parser's own code prefix; never
 * another exception, never a hang (vm watchdog). Accepted derivations re-serialise to the same
 * bytes; accepted narinfos survive format → parse.
 */
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDerivation, serializeDerivation } from '../../src/nix/derivation.js';
import { derivationToJson } from '../../src/nix/derivation-json.js';
import { formatHash, parseHash, hashOf, type HashAlgo } from '../../src/nix/hash.js';
import { countValidSigs, formatNarInfo, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import { decodeNix32 } from '../../src/nix/nixbase32.js';
import { parsePublicKey, parseSecretKey, parseSignature, verifyFingerprint } from '../../src/nix/signing.js';
import { parseStorePath, splitStorePath } from '../../src/nix/store-path.js';
import { parseContentAddress } from '../../src/store/content-address.js';
import { pathInfoFromNarInfo } from '../../src/store/path-info.js';
import { parseCacheInfo } from '../../src/substitute/cache-info.js';
import { FIXTURES, manifest } from '../helpers/fixtures.js';
import { badOutcome, byteMutationArb, fuzz, guardSync, mutatedArb, posArb, regressionInputs, summary, type Mutation } from './fuzz-helpers.js';

const text = (b: Buffer): string => b.toString('utf8');
const bufs = (xs: string[]): Buffer[] => xs.map((x) => Buffer.from(x, 'utf8'));

/** Every `sep`-separated field replaced by a hostile value, dropped or doubled (line/field aware). */
function fieldMutationArb(sep: string, hostile: readonly string[]): fc.Arbitrary<Mutation> {
  return fc.tuple(posArb, fc.constantFrom(...hostile), fc.constantFrom('replace', 'drop', 'double', 'value')).map(([p, h, op]): Mutation => (b) => {
    const parts = b.toString('latin1').split(sep);
    const i = Math.floor(p * parts.length);
    const cur = parts[i] ?? '';
    if (op === 'replace') parts[i] = h;
    else if (op === 'drop') parts.splice(i, 1);
    else if (op === 'double') parts.splice(i, 0, cur);
    else parts[i] = cur.replace(/(: |")[^"\n]*/, `$1${h}`);
    return Buffer.from(parts.join(sep), 'latin1');
  });
}

const HOSTILE = ['', '../x', '/nix/store/../../etc/passwd', '\0', 'a\0b', '-1', '0', '9007199254740993', '1e400', 'NaN', '0x10', ' ', '\\', '"', 'é', '\u{1F600}',
  'x'.repeat(5000), 'sha256:', 'sha256:' + '0'.repeat(52), 'md5-AAAA', 'StoreDir: /tmp', '/nix/store/', ':', 'Sig: k:', '\r'];

// ---- derivations -------------------------------------------------------------------------

const drvDir = join(FIXTURES, 'drvs');
const drvFiles = readdirSync(drvDir).filter((f) => f.endsWith('.drv')).sort();
const drvSeeds = drvFiles.filter((_, i) => i % 14 === 0).map((f) => readFileSync(join(drvDir, f)));

function checkDrv(input: Buffer): string | undefined {
  const o = guardSync('parseDerivation', (b: Buffer) => parseDerivation(b, 'fuzz.drv'), input);
  const bad = badOutcome(o, ['DRV_', 'PATH_', 'HASH_']);
  if (bad !== undefined || !o.ok) return bad;
  const drv = o.value as ReturnType<typeof parseDerivation>;
  const back = guardSync('serializeDerivation', serializeDerivation, drv);
  if (!back.ok) return `accepted but does not serialise: ${String(back.error)}`;
  if (!(back.value as Buffer).equals(input)) return 'accepted a non-canonical ATerm (serialise gives other bytes)';
  return badOutcome(guardSync('derivationToJson', (d: typeof drv) => derivationToJson('/nix/store/x.drv', d), drv), ['DRV_']);
}

// ---- narinfo -----------------------------------------------------------------------------

const narinfoSeeds = ['cache', 'cache-none-signed'].flatMap((c) =>
  readdirSync(join(FIXTURES, c)).filter((f) => f.endsWith('.narinfo')).sort().slice(0, 12).map((f) => readFileSync(join(FIXTURES, c, f))),
);
const key = parsePublicKey(readFileSync(join(FIXTURES, 'keys/public.key'), 'utf8').trim());

function checkNarInfo(input: Buffer): string | undefined {
  const o = guardSync('parseNarInfo', (s: string) => parseNarInfo(s, 'fuzz.narinfo'), text(input));
  const bad = badOutcome(o, ['NARINFO_']);
  if (bad !== undefined || !o.ok) return bad;
  const info = o.value as NarInfo;
  const again = guardSync('formatNarInfo', (i: NarInfo) => parseNarInfo(formatNarInfo(i)), info);
  if (!again.ok) return `accepted but its own formatting is refused: ${String(again.error)}`;
  const sigs = guardSync('countValidSigs', (i: NarInfo) => countValidSigs(i, [key]), info);
  if (!sigs.ok || typeof sigs.value !== 'number') return `countValidSigs threw ${String(sigs.ok ? sigs.value : sigs.error)}`;
  return badOutcome(guardSync('pathInfoFromNarInfo', (i: NarInfo) => pathInfoFromNarInfo(i, 'fuzz'), info), ['NARINFO_', 'STORE_', 'PATH_']);
}

// ---- small formats -----------------------------------------------------------------------

const storePaths = [...new Set(manifest().derivations.flatMap((d) => [d.drvPath, ...Object.values(d.outputs).map((o) => o.path)]))].slice(0, 40);
const algos: HashAlgo[] = ['md5', 'sha1', 'sha256', 'sha512'];
const hashSeeds = algos.flatMap((a) => {
  const h = hashOf(a, a);
  return [formatHash(h, 'nix32'), formatHash(h, 'hex'), formatHash(h, 'base64'), formatHash(h, 'sri'), ...(a === 'sha256' ? [formatHash(h, 'nix32', false), formatHash(h, 'hex', false)] : [])];
});
const secret = readFileSync(join(FIXTURES, 'keys/secret.key'), 'utf8').trim();
const sigSeeds = readFileSync(join(FIXTURES, 'cache-none-signed', readdirSync(join(FIXTURES, 'cache-none-signed')).find((f) => f.endsWith('.narinfo'))!), 'utf8')
  .split('\n').filter((l) => l.startsWith('Sig: ')).map((l) => l.slice(5));

interface SmallTarget {
  name: string;
  seeds: Buffer[];
  codes: string[];
  parse: (s: string) => unknown;
}
const small: SmallTarget[] = [
  { name: 'parseStorePath', seeds: bufs(storePaths), codes: ['PATH_'], parse: parseStorePath },
  { name: 'splitStorePath', seeds: bufs(storePaths.map((p) => `${p}/bin/../sh`)), codes: ['PATH_'], parse: splitStorePath },
  { name: 'parseHash', seeds: bufs(hashSeeds), codes: ['HASH_', 'NIX32_'], parse: (s) => parseHash(s, s.includes(':') || s.includes('-') ? undefined : 'sha256') },
  { name: 'decodeNix32', seeds: bufs(hashSeeds.filter((h) => !h.includes('-') && !h.includes(':') && h.length === 52)), codes: ['NIX32_'], parse: decodeNix32 },
  { name: 'parseContentAddress', seeds: bufs(['text:' + formatHash(hashOf('sha256', 't')), 'fixed:r:' + formatHash(hashOf('sha256', 'r')), 'fixed:' + formatHash(hashOf('sha1', 'f'))]), codes: ['STORE_BAD_CA'], parse: parseContentAddress },
  { name: 'parsePublicKey', seeds: bufs([key.name + ':' + key.raw.toString('base64')]), codes: ['SIG_'], parse: parsePublicKey },
  { name: 'parseSecretKey', seeds: bufs([secret]), codes: ['SIG_'], parse: parseSecretKey },
  { name: 'parseSignature', seeds: bufs(sigSeeds), codes: ['SIG_'], parse: parseSignature },
  { name: 'verifyFingerprint', seeds: bufs(sigSeeds), codes: [], parse: (s) => { if (typeof verifyFingerprint([key], '1;/nix/store/x;sha256:0;0;', s) !== 'boolean') throw new Error('not a boolean'); } },
  { name: 'parseCacheInfo', seeds: bufs([readFileSync(join(FIXTURES, 'cache/nix-cache-info'), 'utf8'), 'StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n']), codes: ['SUBST_'], parse: (s) => parseCacheInfo(s, 'http://fuzz') },
];

function textArb(seeds: Buffer[], sep: string): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 8, arbitrary: mutatedArb(seeds, fc.oneof(fieldMutationArb(sep, HOSTILE), byteMutationArb(seeds))) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 120 }).map((s) => Buffer.from(s, 'utf8')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)) },
  );
}

describe('text parsers under mutated input', () => {
  afterAll(() => console.log(summary()));

  it('the seeds are accepted (the mutations start from real input)', () => {
    expect(drvSeeds.length).toBeGreaterThanOrEqual(30);
    for (const s of drvSeeds) expect(checkDrv(s)).toBeUndefined();
    for (const s of narinfoSeeds) expect(checkNarInfo(s)).toBeUndefined();
    for (const t of small) for (const s of t.seeds) expect(guardSync(t.name, t.parse, text(s)).ok, `${t.name} ${text(s)}`).toBe(true);
  });

  it('saved crashers are answered properly', () => {
    for (const { name, input } of regressionInputs('derivation')) expect(checkDrv(input), name).toBeUndefined();
    for (const { name, input } of regressionInputs('narinfo')) expect(checkNarInfo(input), name).toBeUndefined();
    for (const t of small) for (const { name, input } of regressionInputs(t.name)) expect(badOutcome(guardSync(t.name, t.parse, text(input)), t.codes), name).toBeUndefined();
  });

  it('parseDerivation: canonical accept (same bytes back) or DRV_* error', async () => {
    const drvArb = mutatedArb(drvSeeds, fc.oneof(fieldMutationArb(',', HOSTILE.map((h) => JSON.stringify(h))), fieldMutationArb('"', HOSTILE), byteMutationArb(drvSeeds)));
    await fuzz('derivation', drvArb, checkDrv);
  });

  it('parseNarInfo: accept (and round-trip) or NARINFO_* error; signatures never throw', async () => {
    await fuzz('narinfo', textArb(narinfoSeeds, '\n'), checkNarInfo);
  });

  it.each(small.map((t) => [t.name, t] as const))('%s: accept or its own LazyError', async (_, t) => {
    await fuzz(t.name, textArb(t.seeds, t.name === 'parseCacheInfo' ? '\n' : ':'), (input) => badOutcome(guardSync(t.name, t.parse, text(input)), t.codes));
  });
});
