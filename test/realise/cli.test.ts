/**
 * `lazystore build`, `log`, `known` as users run them (compiled CLI, real processes): output
 * paths on stdout matching real Nix's, failures with exit 1, the failing drv, its log path and
 * its last lines; `log` prints the kept log.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixtureDrv } from '../helpers/fixtures.js';
import { instantiate, salt } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
/** The bundled CLI that bin/lazystore runs. */
const MAIN = join(ROOT, 'dist/bundle/run.cjs');
const NIX = join(import.meta.dirname, 'nix', 'realise.nix');
let tmp: string;

async function ensureBuilt(): Promise<void> {
  for (const p of ['cli/commands/build', 'cli/commands/log', 'cli/commands/known', 'realise/realiser', 'build/build-derivation']) {
    const js = await stat(join(ROOT, 'dist/src', `${p}.js`)).catch(() => undefined);
    const ts = await stat(join(ROOT, 'src', `${p}.ts`));
    if (!js || js.mtimeMs < ts.mtimeMs) {
      await execa('npm', ['run', 'build'], { cwd: ROOT, reject: false });
      return;
    }
  }
}
const lazystore = (args: string[]) => execa('node', [MAIN, ...args], { reject: false });

beforeAll(async () => {
  await ensureBuilt();
  tmp = await mkdtemp(join(tmpdir(), 'lazystore-build-cli-'));
}, 180_000);
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('lazystore build / log / known', () => {
  it('build DRV prints every output path; the same as a second run, which builds nothing', async () => {
    const state = join(tmp, 'ok');
    const multi = fixtureDrv('multi');
    const r = await lazystore(['build', '--state', state, multi.drvPath]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split('\n').sort()).toEqual(Object.values(multi.outputs).map((o) => o.path).sort());
    expect(r.stderr).toContain(`building '${multi.drvPath}'...`);
    const again = await lazystore(['build', '--state', state, multi.outputs.dev!.path]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toBe(multi.outputs.dev!.path);
    expect(again.stderr).not.toContain('building');
  });

  it('known add, then build OUTPUT-PATH with --max-jobs; known lookup', async () => {
    const state = join(tmp, 'known');
    const c = fixtureDrv('chain.C');
    const add = await lazystore(['known', 'add', '--state', state, c.drvPath]);
    expect(add.exitCode, add.stderr).toBe(0);
    expect(add.stderr).toBe('added 3 derivations');
    const look = await lazystore(['known', 'lookup', '--state', state, c.outputs.out!.path]);
    expect(look.stdout).toBe(`${c.drvPath}!out`);
    const r = await lazystore(['build', '--state', state, '--max-jobs', '2', '-q', c.outputs.out!.path]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe(c.outputs.out!.path);
    expect(r.stderr).toBe('');
    const log = await lazystore(['log', '--state', state, c.outputs.out!.path]);
    expect(log.exitCode, log.stderr).toBe(0);
    expect(log.stdout).toBe('');
  });

  it('a failed build: exit 1, the failing drv, its log path and last lines; lazystore log prints it', async () => {
    const state = join(tmp, 'fail');
    const [broken, dependent] = instantiate(NIX, ['-A', 'broken', '-A', 'dependent', '--argstr', 'salt', salt()]);
    const r = await lazystore(['build', '--state', state, dependent!]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`lazystore: builder for '${broken}' failed with exit code 7`);
    expect(r.stderr).toContain(`failed derivation: ${broken}`);
    expect(r.stderr).toContain(`log: ${join(state, 'log', broken!.slice(11))}`);
    expect(r.stderr).toContain('> broken on purpose');
    const log = await lazystore(['log', '--state', state, broken!]);
    expect(log.stdout).toBe('broken on purpose');
  });

  it('bad input is one line on stderr and exit 1', async () => {
    for (const args of [['build'], ['build', '--max-jobs', 'x', '/nix/store/00000000000000000000000000000000-x'], ['known', 'frob'], ['log', '--state', join(tmp, 'none'), '/nix/store/00000000000000000000000000000000-x']]) {
      const r = await lazystore(args);
      expect(r.exitCode, args.join(' ')).toBe(1);
      expect(r.stderr.split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stderr).toMatch(/^lazystore: /);
    }
  });
});
