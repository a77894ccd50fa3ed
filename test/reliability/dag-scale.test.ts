/**
 * Opt-in (RELIABILITY_DAG=<nodes>, e.g. 10000): the layered busybox DAG of the fixtures
 * (dag.nix, 10 layers, each node reading 3 of the layer below) realised from scratch by
 * `lazystore build` and by `nix-store --realise` (sandbox on), same salt, same --max-jobs;
 * both under /usr/bin/time for wall time and peak RSS; the root outputs must have the same
 * NAR hash. Too slow for CI (minutes); the figures go in docs/RELIABILITY.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../helpers/fixtures.js';

const NODES = Number(process.env.RELIABILITY_DAG ?? 0);
const JOBS = Number(process.env.RELIABILITY_DAG_JOBS ?? 2);
const CLI = join(import.meta.dirname, '../../dist/src/cli/main.js');

function timed(cmd: string, args: string[]): { seconds: number; rssMiB: number; stdout: string } {
  const r = spawnSync('/usr/bin/time', ['-f', '@@TIME %e %M', cmd, ...args], { encoding: 'utf8', maxBuffer: 256 << 20 });
  const m = /@@TIME ([0-9.]+) (\d+)/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${cmd} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024, stdout: r.stdout };
}

describe.skipIf(NODES === 0)(`a ${NODES}-derivation graph from scratch`, () => {
  it('lazystore build and nix-store --realise produce the same root; time and peak RSS reported', async () => {
    const salt = `dag-scale-${Date.now()}-${process.pid}`;
    const inst = spawnSync('nix-instantiate', [join(FIXTURES, 'nix/dag.nix'), '-A', 'root', '--arg', 'n', String(NODES), '--arg', 'layers', '10', '--argstr', 'salt', salt], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    expect(inst.status, inst.stderr).toBe(0);
    const root = inst.stdout.trim().split('\n')[0]!;
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
});
