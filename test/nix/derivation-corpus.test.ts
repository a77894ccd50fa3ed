import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { parseDerivation } from '../../src/nix/derivation.js';

const CORPUS = join(import.meta.dirname, '..', 'corpus', 'aterm');

/** Each file is named `<expected code>.<what is wrong>.drv`. */
describe('malformed ATerm corpus', () => {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.drv'));
  it('has cases', () => expect(files.length).toBeGreaterThanOrEqual(30));
  it.each(files)('%s', (f) => {
    const bytes = readFileSync(join(CORPUS, f));
    let err: unknown;
    try {
      parseDerivation(bytes, f);
    } catch (e) {
      err = e;
    }
    expect(isLazyError(err), String(err)).toBe(true);
    if (!isLazyError(err)) return;
    expect(err.code, err.message).toBe(f.slice(0, f.indexOf('.')));
    const offset = err.details.offset;
    expect(typeof offset).toBe('number');
    expect(offset as number).toBeGreaterThanOrEqual(0);
    expect(offset as number).toBeLessThanOrEqual(bytes.length);
    expect(err.message).toMatch(new RegExp(`^${f.replace(/[.?]/g, '\\$&')}: byte ${String(offset)}: `));
    expect(err.message).not.toContain('\n');
  });
});
