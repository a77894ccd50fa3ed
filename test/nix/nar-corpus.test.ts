import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseNar } from '../../src/nix/nar-reader.js';
import { isLazyError } from '../../src/errors.js';
import { chunked, recordingSink } from './nar-helpers.js';
import { corpusFileName, narCorpusCases } from './nar-corpus.js';

const DIR = join(import.meta.dirname, '../corpus/nar');
const cases = narCorpusCases();

if (process.env.REGEN_NAR_CORPUS === '1' || !existsSync(join(DIR, 'index.json'))) {
  mkdirSync(DIR, { recursive: true });
  const index: Record<string, { code: string; offset: number }> = {};
  for (const c of cases) {
    writeFileSync(join(DIR, corpusFileName(c)), c.bytes);
    index[corpusFileName(c)] = { code: c.code, offset: c.offset };
  }
  writeFileSync(join(DIR, 'index.json'), JSON.stringify(index, null, 2) + '\n');
}
const index = JSON.parse(readFileSync(join(DIR, 'index.json'), 'utf8')) as Record<string, { code: string; offset: number }>;

async function rejection(bytes: Buffer, cuts: number[] = []): Promise<unknown> {
  try {
    await parseNar(chunked(bytes, cuts), recordingSink().sink);
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('malformed NAR corpus', () => {
  it('matches its generator (every file listed, none stale)', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.nar')).sort();
    expect(files).toEqual(cases.map(corpusFileName).sort());
    for (const c of cases) expect(readFileSync(join(DIR, corpusFileName(c))).equals(c.bytes), corpusFileName(c)).toBe(true);
    expect(Object.keys(index).sort()).toEqual(files);
  });

  it.each(Object.entries(index))('%s is rejected with its code and offset', async (file, want) => {
    const bytes = readFileSync(join(DIR, file));
    const e = await rejection(bytes);
    expect(isLazyError(e), String(e)).toBe(true);
    expect({ code: (e as { code: string }).code, offset: (e as { details: { offset: number } }).details.offset }).toEqual(want);
    expect((e as Error).message).toMatch(/NAR byte \d+/);
  });

  it.each(Object.entries(index))('%s gives the same error however it is chunked', async (file, want) => {
    const bytes = readFileSync(join(DIR, file));
    for (const cuts of [[1], [7, 8, 9], [...Array(bytes.length).keys()], [Math.floor(bytes.length / 2)]]) {
      const e = (await rejection(bytes, cuts)) as { code: string; details: { offset: number } };
      expect({ code: e.code, offset: e.details.offset }).toEqual(want);
    }
  });
});
