/** src/store/drv-loader.ts: directories searched in order, files verified, results memoised. */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { makeDrvLoader } from '../../src/store/drv-loader.js';
import { drvFile, manifest } from '../helpers/fixtures.js';

const work = mkdtempSync(join(tmpdir(), 'lazystore-drv-loader-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return isLazyError(e) ? e.code : String(e);
  }
  return undefined;
}

describe('makeDrvLoader', () => {
  const [a, b] = manifest().derivations.filter((d) => d.label === 'chain.A' || d.label === 'chain.B');
  const base = (p: string) => p.slice('/nix/store/'.length);

  it('searches directories in order and memoises', async () => {
    const d1 = join(work, 'one');
    const d2 = join(work, 'two');
    mkdirSync(d1);
    mkdirSync(d2);
    copyFileSync(drvFile(b!), join(d2, base(b!.drvPath)));
    const load = makeDrvLoader([join(work, 'absent'), d1, d2]);
    const first = await load(b!.drvPath);
    expect(load.fileOf(b!.drvPath)).toBe(join(d2, base(b!.drvPath)));
    rmSync(join(d2, base(b!.drvPath)));
    expect(await load(b!.drvPath)).toBe(first);
    expect(await codeOf(load(a!.drvPath))).toBe('STORE_DRV_NOT_FOUND');
    expect(await codeOf(load('/nix/store/00000000000000000000000000000000-x'))).toBe('STORE_NOT_A_DRV');
    expect(await codeOf(load('relative.drv'))).toBe('PATH_NOT_IN_STORE');
  });

  it('refuses a file that does not hash to the path it stands for', async () => {
    const d = join(work, 'swapped');
    mkdirSync(d);
    writeFileSync(join(d, base(a!.drvPath)), readFileSync(drvFile(b!)));
    expect(await codeOf(makeDrvLoader([d])(a!.drvPath))).toBe('STORE_DRV_MISMATCH');
    expect((await makeDrvLoader([d], { verify: false })(a!.drvPath)).env.get('name')).toBe('fixture-chain-b');
  });

  it('reports a malformed file with its path and DRV_ code', async () => {
    const d = join(work, 'broken');
    mkdirSync(d);
    writeFileSync(join(d, base(a!.drvPath)), 'Derive([');
    const err = await makeDrvLoader([d])(a!.drvPath).catch((e: unknown) => e);
    expect(isLazyError(err, 'DRV_SYNTAX')).toBe(true);
    expect((err as Error).message).toContain(join(d, base(a!.drvPath)));
  });
});
