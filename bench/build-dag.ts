/**
 * Building the 500-node busybox DAG (plus its root) from scratch, against real Nix 2.8, same run:
 * `lazystore build --max-jobs N` (fresh state dir: known add of 501 .drv files, busybox import,
 * 501 sandboxed builds) vs `nix-store --realise --max-jobs N` (sandbox on), N = 1 and 4.
 * Each N gets its own fresh salt (nix-instantiate of dag.nix), so neither side can reuse
 * outputs, and both build the same derivations. Both run as child processes end to end
 * (process start included) under /usr/bin/time for wall time and peak RSS.
 * Also checks that both produced the same root output (NAR hash).
 * The machine has 2 cores shared with other work: single runs, noisy.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LAZYSTORE, type BenchResult } from './result.js';

const DAG_NIX = process.env.LAZYSTORE_FIXTURES ? join(process.env.LAZYSTORE_FIXTURES, 'nix/dag.nix') : '/tmp/nix-reference/nix/dag.nix';
const NODES = 501;

interface Timed {
  seconds: number;
  rssMiB: number;
  stdout: string;
}

async function timed(cmd: string, args: string[]): Promise<Timed> {
  const fmt = '@@TIME %e %M';
  const r = await execa('/usr/bin/time', ['-f', fmt, cmd, ...args], { reject: false, all: false });
  const m = /@@TIME ([0-9.]+) (\d+)/.exec(r.stderr);
  if (r.exitCode !== 0 || !m) throw new Error(`${cmd} failed (${r.exitCode}): ${r.stderr.slice(-2000)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024, stdout: r.stdout };
}

async function instantiate(salt: string): Promise<string[]> {
  const r = await execa('nix-instantiate', [DAG_NIX, '-A', 'root', '-A', 'nodes', '--arg', 'n', '500', '--arg', 'layers', '10', '--argstr', 'salt', salt]);
  return r.stdout.split('\n').filter((l) => l.endsWith('.drv'));
}

async function nixHash(p: string): Promise<string> {
  return (await execa('nix-store', ['-q', '--hash', p])).stdout.trim();
}

async function ourHash(stateDir: string, p: string): Promise<string> {
  const text = await readFile(join(stateDir, 'info', `${p.slice(11, 43)}.narinfo`), 'utf8');
  return /^NarHash: (.*)$/m.exec(text)?.[1] ?? '';
}

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const per: Record<number, { ours: Timed; nix: Timed }> = {};
  for (const jobs of [1, 4]) {
    const drvs = await instantiate(`bench-${Date.now()}-${process.pid}-j${jobs}`);
    const root = drvs[0]!;
    const state = await mkdtemp(join(tmpdir(), 'lazystore-bench-dag-'));
    try {
      const ours = await timed(LAZYSTORE, ['build', '--state', state, '--max-jobs', String(jobs), '-q', root]);
      const nix = await timed('nix-store', ['--realise', '--max-jobs', String(jobs), root]);
      const rootOut = nix.stdout.trim().split('\n')[0]!;
      if (ours.stdout.trim() !== rootOut) throw new Error(`root output differs: ours ${ours.stdout.trim()} nix ${rootOut}`);
      const [a, b] = [await ourHash(state, rootOut), await nixHash(rootOut)];
      if (a !== b) throw new Error(`root NAR hash differs: ours ${a} nix ${b}`);
      per[jobs] = { ours, nix };
    } finally {
      await rm(state, { recursive: true, force: true });
    }
    const { ours, nix } = per[jobs]!;
    results.push({
      name: `dag500 from scratch, --max-jobs ${jobs}`,
      ours: ours.seconds,
      peer: nix.seconds,
      peerName: `nix-store --realise --max-jobs ${jobs}`,
      unit: 's',
      lowerIsBetter: true,
      notes: `${NODES} sandboxed builds, process start to finish (ours includes known add + busybox import); goal ≤ 1x, aiming for 0.5x`,
    });
  }
  const j1 = per[1]!;
  results.push({
    name: 'per-build wall time, --max-jobs 1',
    ours: (j1.ours.seconds * 1000) / NODES,
    peer: (j1.nix.seconds * 1000) / NODES,
    peerName: 'nix-store --realise',
    unit: 'ms',
    lowerIsBetter: true,
    notes: 'total / 501: sandbox set-up, builder, scan, register, scheduling',
  });
  for (const jobs of [1, 4]) {
    results.push({
      name: `peak RSS, dag500 --max-jobs ${jobs}`,
      ours: per[jobs]!.ours.rssMiB,
      peer: per[jobs]!.nix.rssMiB,
      peerName: 'nix-store --realise',
      unit: 'MiB',
      lowerIsBetter: true,
    });
  }
  return results;
}
