/**
 * docs/EVALUATORS.md's claim, run: real Nix 2.8's evaluator, inside `lazystore shell`, imports a
 * .nix file from a store path that nothing has built, and lazystore builds it on that read.
 * The .drv files come from `nix-instantiate --store <chroot>` (nothing is built there);
 * busybox, the builder, is substituted from a one-path copy of the fixture cache.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES, manifest } from '../helpers/fixtures.js';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'dist/src/cli/main.js');

/** A derivation (busybox only) whose output is a Nix expression. */
const exprDrv = (salt: string) =>
  `(import ${FIXTURES}/nix/lib.nix { salt = "${salt}"; }).mk { name = "ifd-expr"; ` +
  `script = "mkdir $out; echo '{ answer = 6 * 7; }' > $out/default.nix"; }`;

function busyboxCache(dir: string): string {
  const base = manifest().busybox.storePath.split('/').pop()!;
  const hash = base.slice(0, 32);
  const src = join(FIXTURES, 'cache');
  const narinfo = readFileSync(join(src, `${hash}.narinfo`), 'utf8');
  const url = /^URL: (.*)$/m.exec(narinfo)![1]!;
  mkdirSync(join(dir, 'nar'), { recursive: true });
  copyFileSync(join(src, 'nix-cache-info'), join(dir, 'nix-cache-info'));
  writeFileSync(join(dir, `${hash}.narinfo`), narinfo);
  copyFileSync(join(src, url), join(dir, url));
  return `file://${dir}`;
}

describe('an evaluator reading through lazystore shell', () => {
  it('nix-instantiate imports a file from an unbuilt path; lazystore builds it on the read', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lazystore-eval-'));
    try {
      const salt = `eval-${process.pid}`;
      const inst = spawnSync('nix-instantiate', ['--store', join(tmp, 'chroot'), '-E', exprDrv(salt)], { encoding: 'utf8' });
      expect(inst.status, inst.stderr).toBe(0);
      const cache = busyboxCache(join(tmp, 'cache'));
      const expr = `(import (builtins.unsafeDiscardStringContext (${exprDrv(salt)}).outPath)).answer`;
      const evalIn = (drvArgs: string[], state: string) =>
        spawnSync(
          process.execPath,
          [cli, 'shell', '--state', join(tmp, state), '--substituter', cache, '--no-check-sigs', ...drvArgs, '--',
            'nix-instantiate', '--store', 'dummy://', '--eval', '-E', expr],
          { encoding: 'utf8', timeout: 60_000 },
        );

      const r = evalIn(['--drvs', join(tmp, 'chroot/nix/store')], 'state');
      expect(r.stdout.trim(), r.stderr).toBe('42');
      expect(r.stderr).toMatch(/built \/nix\/store\/\S+-ifd-expr\.drv/);

      // Control: without the .drv files lazystore cannot build it, and the import fails.
      const control = evalIn([], 'state-empty');
      expect(control.status).not.toBe(0);
      expect(control.stdout.trim()).not.toBe('42');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});
