/**
 * The bundle bin/lazystore runs (npm run build): the loader compiles it with a code cache this
 * Node.js accepts — a rejected cache would not fail anything, only make every command start
 * slower, so it is checked here — and the launcher really runs the bundle.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { execa } from 'execa';

const root = join(import.meta.dirname, '../..');
const bundle = join(root, 'dist/bundle/lazystore.cjs');

describe.skipIf(!existsSync(bundle))('the CLI bundle', () => {
  it('has a code cache that V8 accepts for it, made by the build’s training run', () => {
    const loader = readFileSync(join(root, 'dist/bundle/run.cjs'), 'utf8');
    // The loader's wrapper, exactly: a cache is only valid for the same source text.
    const wrapper = /new vm\.Script\(`([^`]*)`/.exec(loader)![1]!;
    let source = readFileSync(bundle, 'utf8');
    if (source.startsWith('#!')) source = `//${source.slice(2)}`;
    const code = (new Function('source', `return \`${wrapper}\`;`) as (s: string) => string)(source);
    const cache = readFileSync(`${bundle}.cache`);
    expect(cache.length).toBeGreaterThan(50_000); // training compiled the copy path, not just main
    const script = new Script(code, { filename: bundle, cachedData: cache });
    expect(script.cachedDataRejected).toBe(false);
  });

  it('is what bin/lazystore runs', async () => {
    const trace = await execa(join(root, 'bin/lazystore'), ['--version'], { env: { NODE_DEBUG: 'module' } });
    expect(trace.stdout).toBe('lazystore 0.1.0');
    expect(trace.stderr).toMatch(/dist\/bundle\/run\.cjs/);
    expect(trace.stderr).not.toMatch(/dist\/src\/cli\/main\.js/);
  });
});
