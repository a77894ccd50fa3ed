/**
 * Opt-in (RELIABILITY_DAG=<nodes>, e.g. 10000): the layered busybox DAG of the fixtures
 * (dag.nix, 10 layers, each node reading 3 of the layer below) realised from scratch by
 * `lazystore build` and by `nix-store --realise` (sandbox on), same salt, same --max-jobs;
 * both under /usr/bin/time for wall time and peak RSS; the root outputs must have the same
 * NAR hash. Too slow for CI (minutes); the figures go in docs/RELIABILITY.md.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../helpers/fixtures.js';
import { isMounted, run } from '../fuse/mount-helpers.js';

const NODES = Number(process.env.RELIABILITY_DAG ?? 0);
const JOBS = Number(process.env.RELIABILITY_DAG_JOBS ?? 2);
/** RELIABILITY_DAG_NIX=0 skips the nix-store peer of the mount run (it takes ~20 min at 10k here). */
const WITH_NIX = process.env.RELIABILITY_DAG_NIX !== '0';
/** The bundled CLI that bin/lazystore runs. */
const CLI = join(import.meta.dirname, '../../dist/bundle/run.cjs');

function timed(cmd: string, args: string[]): { seconds: number; rssMiB: number; stdout: string } {
  const r = spawnSync('/usr/bin/time', ['-f', '@@TIME %e %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const m = /@@TIME ([0-9.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024, stdout: r.stdout };
}

function instantiateRoot(salt: string): string {
  const inst = spawnSync('nix-instantiate', [join(FIXTURES, 'nix/dag.nix'), '-A', 'root', '--arg', 'n', String(NODES), '--arg', 'layers', '10', '--argstr', 'salt', salt], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  expect(inst.status, inst.stderr).toBe(0);
  return inst.stdout.trim().split('\n')[0]!;
}

describe.skipIf(NODES === 0)(`a ${NODES}-derivation graph from scratch`, () => {
  it('lazystore build and nix-store --realise produce the same root; time and peak RSS reported', async () => {
    const root = instantiateRoot(`dag-scale-${Date.now()}-${process.pid}`);
    const state = await mkdtemp(join(tmpdir(), 'lazystore-dag-scale-'));
    try {
      const ours = timed(process.execPath, [CLI, 'build', '--state', state, '--max-jobs', String(JOBS), '-q', root]);
      const nix = timed('nix-store', ['--realise', '--max-jobs', String(JOBS), root]);
      const out = nix.stdout.trim().split('\n')[0]!;
      expect(ours.stdout.trim()).toBe(out);
      const ourHash = /^NarHash: (.*)$/m.exec(await readFile(join(state, 'info', `${out.slice(11, 43)}.narinfo`), 'utf8'))?.[1];
      const nixHash = spawnSync('nix-store', ['-q', '--hash', out], { encoding: 'utf8' }).stdout.trim();
      expect(ourHash).toBe(nixHash);
      console.log(
        `dag${NODES} (+root), --max-jobs ${JOBS}: lazystore build ${ours.seconds.toFixed(1)} s, peak RSS ${ours.rssMiB.toFixed(0)} MiB; ` +
          `nix-store --realise ${nix.seconds.toFixed(1)} s, peak RSS ${nix.rssMiB.toFixed(0)} MiB`,
      );
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  }, 4 * 3600_000);

  it('realised through a real mount by one read of the root: the same root as Nix; time and daemon peak RSS reported', async () => {
    const root = instantiateRoot(`dag-scale-mount-${Date.now()}-${process.pid}`);
    const out = spawnSync('nix-store', ['-q', '--outputs', root], { encoding: 'utf8' }).stdout.trim();
    const state = await mkdtemp(join(tmpdir(), 'lazystore-dag-mount-'));
    const mp = await mkdtemp(join(tmpdir(), 'lazystore-dag-mp-'));
    // --drvs FILE learns the root and, recursively, every input derivation beside it
    const daemon = spawn(process.execPath, [CLI, 'mount', '--state', state, '--max-jobs', String(JOBS), '--drvs', root, mp], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let peakKiB = 0;
    const sampler = setInterval(() => {
      const m = /VmHWM:\s+(\d+)/.exec((() => { try { return readFileSync(`/proc/${daemon.pid}/status`, 'utf8'); } catch { return ''; } })());
      if (m) peakKiB = Math.max(peakKiB, Number(m[1]));
    }, 500);
    try {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        daemon.stderr!.setEncoding('utf8').on('data', (c: string) => {
          log += c;
          if (/lazystore: mounted .* at /.test(log)) resolve();
        });
        daemon.once('exit', (code) => reject(new Error(`mount exited ${code}: ${log.slice(-2000)}`)));
      });
      const mounted = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const r = await run('cat', [join(mp, out.slice(11))], { timeoutMs: 4 * 3600_000 });
      const seconds = (performance.now() - t1) / 1000;
      expect(r.stderr).toBe('');
      const ourHash = /^NarHash: (.*)$/m.exec(await readFile(join(state, 'info', `${out.slice(11, 43)}.narinfo`), 'utf8'))?.[1];
      let peer = 'nix-store --realise not run (RELIABILITY_DAG_NIX=0)';
      if (WITH_NIX) {
        const nix = timed('nix-store', ['--realise', '--max-jobs', String(JOBS), root]);
        expect(ourHash).toBe(spawnSync('nix-store', ['-q', '--hash', out], { encoding: 'utf8' }).stdout.trim());
        expect(r.stdout).toBe(await readFile(out, 'utf8'));
        peer = `nix-store --realise ${nix.seconds.toFixed(1)} s, peak RSS ${nix.rssMiB.toFixed(0)} MiB`;
      }
      console.log(
        `dag${NODES} (+root) through the mount, --max-jobs ${JOBS}: mount ready in ${mounted.toFixed(1)} s (known add of the closure), ` +
          `one cat of the root ${seconds.toFixed(1)} s, daemon peak RSS ${(peakKiB / 1024).toFixed(0)} MiB; ${peer}`,
      );
    } finally {
      clearInterval(sampler);
      if (daemon.exitCode === null) daemon.kill('SIGTERM');
      await new Promise((res) => (daemon.exitCode === null ? daemon.once('exit', res) : res(null)));
      if (isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
      await rmdir(mp).catch(() => {});
      await rm(state, { recursive: true, force: true });
    }
  }, 4 * 3600_000);
});
