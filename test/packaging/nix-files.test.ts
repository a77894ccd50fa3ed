/**
 * The Nix packaging cannot be built here (real Nix 2.8, but no nixpkgs), so this checks what
 * can be checked without it: every .nix file parses, and flake.nix + nix/module.nix evaluate
 * against stubs (test/packaging/stub-lib.nix) to the option set, systemd unit and command line
 * they are meant to produce — and that command line only uses flags the CLI knows.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REALISE_OPTIONS } from '../../src/cli/options.js';

const root = join(import.meta.dirname, '../..');
const here = import.meta.dirname;

function nix(args: string[]): string {
  return execFileSync('nix-instantiate', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function evalJson<T>(file: string, extra: string[] = []): T {
  return JSON.parse(nix(['--eval', '--strict', '--json', file, ...extra])) as T;
}

const nixFiles = [
  'flake.nix',
  ...readdirSync(join(root, 'nix')).filter((f) => f.endsWith('.nix')).map((f) => `nix/${f}`),
  ...readdirSync(here).filter((f) => f.endsWith('.nix')).map((f) => `test/packaging/${f}`),
];

/** Flags (`--x`) in a command line, without their values. */
function flagsIn(cmd: string): string[] {
  return [...cmd.matchAll(/(?:^|\s)--([a-z][a-z-]*)/g)].map((m) => m[1]!);
}

/** The flags `lazystore mount` accepts: its --help text if the command exists, else REALISE_OPTIONS. */
function mountFlags(): { source: string; known: Set<string> } {
  const cli = join(root, 'dist/src/cli/main.js');
  const known = new Set(Object.keys(REALISE_OPTIONS));
  if (!existsSync(cli)) return { source: 'src/cli/options.ts', known };
  const help = execFileSync('node', [cli, '--help'], { encoding: 'utf8' });
  if (!/^\s+mount\s/m.test(help)) return { source: 'src/cli/options.ts', known };
  const usage = execFileSync('node', [cli, 'mount', '--help'], { encoding: 'utf8' });
  return { source: 'lazystore mount --help', known: new Set(flagsIn(usage)) };
}

describe('Nix packaging files', () => {
  it.each(nixFiles)('%s parses (nix-instantiate --parse)', (file) => {
    expect(() => nix(['--parse', file])).not.toThrow();
  });

  it('nix/module.nix declares the documented options with their defaults', () => {
    const m = evalJson<{
      options: Record<string, { default: unknown; hasDescription: boolean }>;
      enabledWhen: boolean;
      kernelModules: string[];
      after: string[];
      wantedBy: string[];
      environment: Record<string, string>;
      serviceConfig: Record<string, unknown>;
    }>('test/packaging/eval-module.nix', ['--arg', 'settings', '{ }']);
    expect(Object.keys(m.options).sort()).toEqual(
      ['derivationDirs', 'enable', 'extraArgs', 'maxJobs', 'mountpoint', 'package', 'stateDir', 'substituters', 'trustedPublicKeys'].sort(),
    );
    for (const [name, o] of Object.entries(m.options)) if (name !== 'package') expect(o.hasDescription, name).toBe(true);
    expect(m.options.mountpoint!.default).toBe('/nix/lazy-store');
    expect(m.options.stateDir!.default).toBe('/var/lib/lazystore');
    expect(m.options.enable!.default).toBe(false);
    expect(m.enabledWhen).toBe(true);
    expect(m.kernelModules).toContain('fuse');
    expect(m.after).toContain('local-fs.target');
    expect(m.wantedBy).toContain('multi-user.target');
    expect(m.environment.LAZYSTORE_STATE).toBe('/var/lib/lazystore');
    const s = m.serviceConfig;
    expect(s.Restart).toBe('on-failure');
    expect(s.KillSignal).toBe('SIGTERM');
    expect(s.ExecStart).toMatch(/\/bin\/lazystore mount --state \/var\/lib\/lazystore --allow-other .* \/nix\/lazy-store$/);
    expect(s.ExecStopPost).toMatch(/fusermount -u -z \/nix\/lazy-store$/);
    expect(s.StateDirectory).toBe('lazystore');
    expect(s.StateDirectoryWhen).toBe(true);
  });

  it('nix/module.nix turns settings into mount flags the CLI accepts', () => {
    const settings =
      '{ stateDir = "/srv/lazy"; mountpoint = "/mnt/lazy store"; substituters = [ "file:///a" "https://b" ]; ' +
      'trustedPublicKeys = [ "k-1:AAAA" ]; maxJobs = 3; derivationDirs = [ "/srv/drvs" ]; extraArgs = [ "--no-check-sigs" ]; }';
    const m = evalJson<{ serviceConfig: { ExecStart: string; StateDirectoryWhen: boolean } }>('test/packaging/eval-module.nix', [
      '--arg',
      'settings',
      settings,
    ]);
    const cmd = m.serviceConfig.ExecStart;
    expect(cmd).toContain(
      "mount --state /srv/lazy --allow-other --substituter file:///a --substituter https://b --trusted-key k-1:AAAA --drvs /srv/drvs --max-jobs 3 --no-check-sigs '/mnt/lazy store'",
    );
    expect(m.serviceConfig.StateDirectoryWhen).toBe(false);
    const { source, known } = mountFlags();
    for (const f of flagsIn(cmd)) expect(known.has(f), `--${f} not in ${source}`).toBe(true);
  });

  it('flake.nix wires package, overlay, module and VM test together', () => {
    const f = evalJson<{
      nixpkgsUrl: string;
      packages: string[];
      packageSource: string;
      overlaySource: string;
      moduleImports: string[];
      vmName: string;
      vmSettings: { enable: boolean; derivationDirs: string[]; substituters: string[] };
      vmExecStart: string;
    }>('test/packaging/eval-flake.nix');
    expect(f.nixpkgsUrl).toMatch(/^github:NixOS\/nixpkgs\//);
    expect(f.packages).toEqual(['default', 'lazystore']);
    expect(f.packageSource).toBe(join(root, 'nix/package.nix'));
    expect(f.overlaySource).toBe(join(root, 'nix/package.nix'));
    expect(f.moduleImports).toEqual([join(root, 'nix/module.nix')]);
    expect(f.vmName).toBe('lazystore');
    expect(f.vmSettings.enable).toBe(true);
    expect(f.vmSettings.substituters[0]).toMatch(/^file:\/\/\/nix\/store\/.*-binary-cache$/);
    const { source, known } = mountFlags();
    for (const flag of flagsIn(f.vmExecStart)) expect(known.has(flag), `--${flag} not in ${source}`).toBe(true);
  });
});
