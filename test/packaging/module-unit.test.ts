/**
 * The NixOS module's unit, run without systemd: nix/module.nix is evaluated (stub lib, see
 * eval-module.nix) with the settings nix/vm-test.nix uses, and its ExecStart is run with the
 * package path replaced by the compiled CLI. As in the VM test, lazystore gets only a .drv in
 * a Nix store (with its input derivations beside it) and a file:// cache holding the input's
 * output; reading a file inside the never-built output builds it, and SIGTERM (the unit's
 * KillSignal) unmounts. The store and cache are made by real Nix in a chroot store.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIXTURES } from '../helpers/fixtures.js';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'dist/src/cli/main.js');
const FAKE_PACKAGE = '/nix/store/00000000000000000000000000000000-lazystore/bin/lazystore';

const isMounted = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);

// bb: busybox as a derivation output (so the test derivation has an input *derivation*, as
// pkgs.busybox is in the VM test); hello: what the VM test builds lazily.
const EXPR = `let
  lib = import ${FIXTURES}/nix/lib.nix { salt = "module-unit"; };
  bb = lib.mk { name = "bb"; script = "mkdir -p $out/bin; cp \${lib.busybox}/bin/busybox $out/bin/; ln -s busybox $out/bin/sh; ln -s busybox $out/bin/mkdir"; };
in { inherit bb; hello = derivation {
  name = "lazystore-vm-test-hello"; system = "x86_64-linux"; builder = "\${bb}/bin/sh";
  args = [ "-c" "\${bb}/bin/mkdir -p $out/share && echo lazily built > $out/share/greeting" ];
}; }`;

describe("the module's systemd unit, run by hand", () => {
  it('mounts, builds a path with a substituted input on first read, unmounts on SIGTERM', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'lazystore-unit-'));
    const mnt = join(tmp, 'mnt');
    try {
      const store = join(tmp, 'chroot');
      const nixEnv = { ...process.env, NIX_REMOTE: '', NIX_CONFIG: '' };
      writeFileSync(join(tmp, 't.nix'), EXPR);
      const nix = (cmd: string, args: string[]) =>
        execFileSync(cmd, ['--store', store, ...args], { encoding: 'utf8', env: nixEnv, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
      const bb = nix('nix-build', [join(tmp, 't.nix'), '-A', 'bb', '--no-out-link']);
      nix('nix', ['copy', '--to', `file://${tmp}/cache`, bb]);
      const drv = nix('nix-instantiate', [join(tmp, 't.nix'), '-A', 'hello']);
      const out = nix('nix-store', ['--query', '--outputs', drv]);
      const outName = out.slice('/nix/store/'.length);

      const settings = `{ stateDir = "${tmp}/state"; mountpoint = "${mnt}"; substituters = [ "file://${tmp}/cache" ]; trustedPublicKeys = [ ]; extraArgs = [ "--no-check-sigs" ]; derivationDirs = [ "${store}${drv}" ]; maxJobs = 1; }`;
      const unit = JSON.parse(
        execFileSync('nix-instantiate', ['--eval', '--strict', '--json', 'test/packaging/eval-module.nix', '--arg', 'settings', settings], {
          cwd: root,
          encoding: 'utf8',
        }),
      ) as { serviceConfig: { ExecStart: string; KillSignal: NodeJS.Signals } };
      const argv = unit.serviceConfig.ExecStart.split(' ');
      expect(argv[0]).toBe(FAKE_PACKAGE);
      expect(argv.some((a) => a.includes("'")), 'no quoting expected for these paths').toBe(false);

      mkdirSync(mnt); // systemd.tmpfiles makes it on NixOS
      const daemon = spawn(process.execPath, [cli, ...argv.slice(1)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      daemon.stderr.setEncoding('utf8').on('data', (c: string) => (log += c));
      const exited = new Promise<number | null>((r) => daemon.on('exit', (code) => r(code)));
      try {
        for (let i = 0; i < 300 && !isMounted(mnt); i++) await new Promise((r) => setTimeout(r, 100));
        expect(isMounted(mnt), log).toBe(true);
        expect(existsSync(out), 'the host Nix never built it').toBe(false);
        expect(await readFile(join(mnt, outName, 'share/greeting'), 'utf8')).toBe('lazily built\n');
        expect(existsSync(join(tmp, 'state/store', outName))).toBe(true);
        expect(log).toMatch(/fetched \/nix\/store\/\S+-bb/);
      } finally {
        daemon.kill(unit.serviceConfig.KillSignal);
      }
      expect(await exited, log).toBe(0);
      expect(isMounted(mnt)).toBe(false);
    } finally {
      if (isMounted(mnt)) execFileSync('fusermount', ['-u', '-z', mnt]);
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
});
