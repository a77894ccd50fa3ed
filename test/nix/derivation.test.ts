import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { parseDerivation, serializeDerivation, type Derivation } from '../../src/nix/derivation.js';
import { DerivationHasher, drvStorePath } from '../../src/nix/derivation-hash.js';
import { derivationJsonEntry, derivationToJson, formatShowDerivation } from '../../src/nix/derivation-json.js';
import { makeDrvLoader } from '../../src/store/drv-loader.js';
import { FIXTURES, drvFile, manifest } from '../helpers/fixtures.js';

const showDerivation = JSON.parse(readFileSync(join(FIXTURES, 'show-derivation.json'), 'utf8')) as Record<string, unknown>;

describe('every fixture derivation made by real Nix', () => {
  const drvs = manifest().derivations;
  const loader = makeDrvLoader([join(FIXTURES, 'drvs')]);
  const hasher = new DerivationHasher(loader);

  it('has the ~560 fixtures', () => expect(drvs.length).toBeGreaterThanOrEqual(550));

  it('parse → serialise is byte-identical, and the content hashes to the drv path', () => {
    for (const d of drvs) {
      const bytes = readFileSync(drvFile(d));
      const drv = parseDerivation(bytes, d.drvFile);
      expect(serializeDerivation(drv).equals(bytes), d.drvPath).toBe(true);
      expect(drvStorePath(drv)).toBe(d.drvPath);
      expect([...drv.inputDrvs.keys()]).toEqual([...d.inputDrvs].sort());
      expect(drv.inputSrcs).toEqual([...d.inputSrcs].sort());
    }
  });

  it('every computed output path equals the manifest (hashDerivationModulo over the graph)', async () => {
    let n = 0;
    for (const d of drvs) {
      const drv = await loader(d.drvPath);
      const paths = await hasher.outputPaths(drv);
      expect(Object.fromEntries(paths), d.drvPath).toEqual(Object.fromEntries(Object.entries(d.outputs).map(([k, o]) => [k, o.path])));
      for (const [name, o] of drv.outputs) expect(o.path).toBe(paths.get(name));
      n += paths.size;
    }
    expect(n).toBeGreaterThan(drvs.length);
  });

  it('derivationToJson deep-equals nix show-derivation', async () => {
    for (const d of drvs) {
      const drv = await loader(d.drvPath);
      expect(derivationToJson(d.drvPath, drv)).toEqual({ [d.drvPath]: showDerivation[d.drvPath] });
      expect(derivationJsonEntry(drv, await hasher.outputPaths(drv))).toEqual(showDerivation[d.drvPath]);
    }
    expect(Object.keys(showDerivation).length).toBe(drvs.length);
  });

  it('formatShowDerivation of all fixtures parses back to show-derivation.json', async () => {
    const items = await Promise.all(drvs.map(async (d) => ({ drvPath: d.drvPath, drv: await loader(d.drvPath) })));
    expect(JSON.parse(formatShowDerivation(items).toString('utf8'))).toEqual(showDerivation);
  });

  it('masking blanks output paths and the env vars named after outputs', async () => {
    const d = drvs.find((x) => x.label === 'multi')!;
    const drv = await loader(d.drvPath);
    const masked = serializeDerivation(drv, { maskOutputs: true }).toString('latin1');
    for (const o of Object.values(d.outputs)) expect(masked).not.toContain(o.path);
    expect(masked).toContain('("dev","","","")');
    expect(masked).toContain('("out","")');
  });
});

describe('ATerm round trip over arbitrary byte strings', () => {
  const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('latin1'));
  const sp = fc
    .tuple(fc.stringMatching(/^[0-9a-df-np-sv-z]{32}$/), fc.stringMatching(/^[A-Za-z0-9+\-._?=]{1,20}$/))
    .map(([h, n]) => `/nix/store/${h}-${n}`);
  const sortedMap = <T>(keys: fc.Arbitrary<string>, values: fc.Arbitrary<T>) =>
    fc.uniqueArray(fc.tuple(keys, values), { selector: ([k]) => k, maxLength: 6 }).map((es) => new Map(es.sort((a, b) => (a[0] < b[0] ? -1 : 1))));
  const drvArb: fc.Arbitrary<Derivation> = fc.record({
    outputs: sortedMap(fc.stringMatching(/^[a-z]{1,5}$/), fc.record({ path: fc.oneof(sp, fc.constant('')), hashAlgo: fc.constant(''), hash: fc.constant('') })).filter((m) => m.size > 0),
    inputDrvs: sortedMap(sp, fc.uniqueArray(fc.stringMatching(/^[a-z]{1,5}$/), { maxLength: 3 }).map((a) => a.sort())),
    inputSrcs: fc.uniqueArray(sp, { maxLength: 4 }).map((a) => a.sort()),
    platform: bytes,
    builder: bytes,
    args: fc.array(bytes, { maxLength: 5 }),
    env: sortedMap(bytes, bytes),
  });

  it('parse(serialise(d)) equals d, and serialise(parse(b)) equals b', () => {
    fc.assert(
      fc.property(drvArb, (d) => {
        const b = serializeDerivation(d);
        const back = parseDerivation(b);
        expect(back).toEqual(d);
        expect(serializeDerivation(back).equals(b)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('no prefix of a derivation parses, and each failure is a DRV_ error with an offset inside it', () => {
    const b = readFileSync(drvFile(manifest().derivations.find((d) => d.label === 'multi')!));
    for (let n = 0; n < b.length; n++) {
      let err: unknown;
      try {
        parseDerivation(b.subarray(0, n));
      } catch (e) {
        err = e;
      }
      expect(isLazyError(err, 'DRV_'), `prefix ${n}`).toBe(true);
      if (isLazyError(err)) expect(err.details.offset as number).toBeLessThanOrEqual(n);
    }
  });

  it('refuses strings that are not byte strings instead of truncating them', () => {
    const d = parseDerivation(readFileSync(drvFile(manifest().derivations[0]!)));
    d.env.set('x', 'snowman \u2603');
    let err: unknown;
    try {
      serializeDerivation(d);
    } catch (e) {
      err = e;
    }
    expect(isLazyError(err, 'DRV_NOT_BYTE_STRING')).toBe(true);
  });
});
