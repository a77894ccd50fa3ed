import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDerivation, serializeDerivation } from '../../src/nix/derivation.js';
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
