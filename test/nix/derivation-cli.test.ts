/** `lazystore drv show` against real Nix's `nix show-derivation`, through the built CLI. */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, drvFile, manifest } from '../helpers/fixtures.js';
import { ensureBuiltCli } from '../helpers/built-cli.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'lazystore-drv-cli-'));

function lazystore(args: string[]): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync('node', [MAIN, ...args], { maxBuffer: 256 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

beforeAll(() => {
  expect(ensureBuiltCli('dist/src/cli/commands/drv.js', ['src/cli/commands/drv.ts', 'src/cli/main.ts', 'src/nix/derivation.ts', 'src/nix/derivation-hash.ts', 'src/nix/derivation-json.ts', 'src/store/drv-loader.ts'])).toBe(true);
});
afterAll(() => {
  spawnSync('chmod', ['-R', 'u+w', work]);
  rmSync(work, { recursive: true, force: true });
});

describe('lazystore drv show', () => {
  it('--json prints byte for byte what nix show-derivation prints, for all fixtures at once', () => {
    const drvs = manifest().derivations;
    const ours = lazystore(['drv', 'show', '--json', ...drvs.map(drvFile)]);
    expect(ours.stderr).toBe('');
    expect(ours.status).toBe(0);
    const theirs = execFileSync('nix', ['show-derivation', ...drvs.map((d) => d.drvPath)], { maxBuffer: 256 << 20 });
    expect(ours.stdout.equals(theirs)).toBe(true);
    expect(JSON.parse(ours.stdout.toString('utf8'))).toEqual(JSON.parse(execFileSync('cat', [join(FIXTURES, 'show-derivation.json')], { encoding: 'utf8' })));
  });

  it('keys by the path the content hashes to, whatever the file is called', () => {
    const d = manifest().derivations.find((x) => x.label === 'chain.C')!;
    copyFileSync(drvFile(d), join(work, 'renamed.drv'));
    const r = lazystore(['drv', 'show', join(work, 'renamed.drv')]);
    expect(r.status).toBe(0);
    const text = r.stdout.toString('utf8');
    expect(text.split('\n')[0]).toBe(d.drvPath);
    for (const [name, o] of Object.entries(d.outputs)) expect(text).toMatch(new RegExp(`^ +${name} +${o.path}$`, 'm'));
  });

  it('finds input derivations in --drvs directories, and says which one is missing', () => {
    const store = join(work, 'store');
    writeFileSync(
      join(work, 'e.nix'),
      'let mk = n: a: derivation ({ name = n; system = "x86_64-linux"; builder = "/bin/sh"; } // a); in mk "top" { dep = mk "dep" { outputs = [ "out" "lib" ]; }; }',
    );
    const top = execFileSync('nix-instantiate', ['--store', store, join(work, 'e.nix')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const alone = join(work, 'alone');
    mkdirSync(alone);
    copyFileSync(join(store, top), join(alone, 'top.drv'));

    const missing = lazystore(['drv', 'show', join(alone, 'top.drv')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/^lazystore: derivation \/nix\/store\/[0-9a-z]{32}-dep\.drv not found in [^\n]*\n$/);
    expect(missing.stdout.length).toBe(0);

    const found = lazystore(['drv', 'show', '--json', '--drvs', join(store, 'nix', 'store'), join(alone, 'top.drv')]);
    expect(found.stderr).toBe('');
    expect(found.stdout.equals(execFileSync('nix', ['show-derivation', '--store', store, top]))).toBe(true);
  });

  it('bad input: exit 1 and exactly one line naming the file and byte', () => {
    const bad = join(ROOT, 'test', 'corpus', 'aterm', 'DRV_SYNTAX.truncated.drv');
    const r = lazystore(['drv', 'show', '--json', bad]);
    expect(r.status).toBe(1);
    expect(r.stdout.length).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`^lazystore: ${bad.replace(/[.]/g, '\\.')}: byte \\d+: unterminated string\\n$`));
    for (const args of [['drv', 'show', join(work, 'nonexistent.drv')], ['drv', 'show'], ['drv', 'frobnicate'], ['drv', 'show', '--bogus', bad]]) {
      const e = lazystore(args);
      expect(e.status, args.join(' ')).toBe(1);
      expect(e.stderr, args.join(' ')).toMatch(/^lazystore: [^\n]+\n$/);
    }
  });
});
