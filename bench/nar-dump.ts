/**
 * NAR throughput against real Nix, same run, warm page cache for both, median of 3:
 *  - dump + sha256 of a 1 GiB tree of 20k files: `dumpPath` hashed on the caller's thread vs
 *    `nix-store --dump PATH | sha256sum` — wall time and peak RSS (`/usr/bin/time -f %M`, for the
 *    pipeline the larger of its two processes); and the dump alone (sha256sum, without SHA-NI,
 *    dominates the peer's pipeline, so this is the fair figure for the walk itself);
 *  - the same with `scanPath` (hash and reference scan against 600 candidates inside the worker);
 *  - restore of the 20k small files' NAR (~330 MiB) from a file into tmpfs (/dev/shm, so the
 *    figure is our per-file cost, not the shared disk's writeback): `lazystore nar restore` vs
 *    `nix-store --restore`.
 * Each side runs as its own child process, end to end (process start included for both).
 * The tree is built once in /var/tmp and reused.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { encodeNix32 } from '../src/nix/nixbase32.js';
import { dumpPath } from '../src/store/nar-dump.js';
import { scanPath } from '../src/store/scan-path.js';
import { parseStorePath } from '../src/nix/store-path.js';
import { LAZYSTORE, type BenchResult } from './result.js';

const SELF = fileURLToPath(import.meta.url);
const BASE = '/var/tmp/lazystore-bench-nar';
/** Exists only complete: built beside it and renamed into place, so concurrent bench runs share it safely. */
const TREE = `${BASE}/tree`;
const RUNS = 3;

/** small/: 19,900 files of 0.5–32.5 KiB in 200 directories (two levels), symlinks; big/: 100 files of 7 MiB. ~1.03 GiB. */
async function buildTree(): Promise<void> {
  if (existsSync(TREE)) return;
  const build = `${TREE}.build-${process.pid}`;
  await rm(build, { recursive: true, force: true });
  const pool = randomBytes(8 << 20);
  let at = 0;
  const bytes = (n: number): Buffer => {
    if (at + n > pool.length) at = 0;
    const b = pool.subarray(at, at + n);
    at += n + 4099;
    return b;
  };
  for (let d = 0; d < 200; d++) {
    const dir = join(build, 'small', `group-${d % 20}`, `pkg-${d}`);
    await mkdir(dir, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const i = d * 100 + f;
      if (i >= 19_900) break;
      const p = join(dir, `file-${f}.dat`);
      await writeFile(p, bytes(512 + ((i * 7919) % 32768)));
      if (f % 10 === 0) await chmod(p, 0o755);
    }
    await symlink(`file-0.dat`, join(dir, 'link'));
  }
  await mkdir(join(build, 'big'));
  for (let i = 0; i < 100; i++) await writeFile(join(build, 'big', `blob-${i}`), Buffer.concat([bytes((7 << 20) >> 1), bytes((7 << 20) >> 1)]));
  await rename(build, TREE).catch(async (e: unknown) => {
    if (!existsSync(TREE)) throw e;
    await rm(build, { recursive: true, force: true }); // another run finished first
  });
}

interface Run {
  seconds: number;
  maxRssKiB: number;
  stdout: string;
}

async function timed(shell: string): Promise<Run> {
  const t0 = process.hrtime.bigint();
  const r = await execa('/usr/bin/time', ['-f', '%M', 'bash', '-c', shell], { reject: false });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.exitCode !== 0) throw new Error(`${shell} failed: ${r.stderr.slice(-2000)}`);
  const lines = r.stderr.trim().split('\n');
  return { seconds, maxRssKiB: Number(lines[lines.length - 1]), stdout: r.stdout.trim() };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Runs each command RUNS times, interleaved, after one warm-up each. */
async function compare(cmds: Record<string, string>, before?: () => Promise<void>): Promise<Record<string, Run[]>> {
  const out: Record<string, Run[]> = {};
  for (const [k, c] of Object.entries(cmds)) {
    await before?.();
    await timed(c);
    out[k] = [];
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [k, c] of Object.entries(cmds)) {
      await before?.();
      out[k]!.push(await timed(c));
    }
  }
  return out;
}

export async function run(): Promise<BenchResult[]> {
  await buildTree();
  const q = (s: string): string => `'${s}'`;
  const dump = await compare({
    ours: `node ${q(SELF)} --child dump ${q(TREE)}`,
    scan: `node ${q(SELF)} --child scan ${q(TREE)}`,
    nix: `nix-store --dump ${q(TREE)} | sha256sum`,
    oursRaw: `node ${q(SELF)} --child count ${q(TREE)}`,
    nixRaw: `nix-store --dump ${q(TREE)} > /dev/null`,
  });
  const nixHex = dump.nix![0]!.stdout.split(' ')[0]!;
  const oursHash = dump.ours![0]!.stdout.split(' ')[0]!;
  if (oursHash !== encodeNix32(Buffer.from(nixHex, 'hex'))) throw new Error(`NAR hash differs: ours ${oursHash}, nix ${nixHex}`);
  if (dump.scan![0]!.stdout.split(' ')[0] !== oursHash) throw new Error('scanPath hash differs from dumpPath hash');
  const narSize = Number(dump.ours![0]!.stdout.split(' ')[1]);

  const NAR = `${BASE}/small.nar.${process.pid}`;
  await execa('bash', ['-c', `nix-store --dump ${q(join(TREE, 'small'))} > ${q(NAR)}`]);
  const dest = `/dev/shm/lazystore-bench-restored.${process.pid}`;
  const restore = await compare(
    { ours: `${q(LAZYSTORE)} nar restore ${q(dest)} < ${q(NAR)}`, nix: `nix-store --restore ${q(dest)} < ${q(NAR)}` },
    () => rm(dest, { recursive: true, force: true }),
  );
  await rm(dest, { recursive: true, force: true });
  const smallSize = (await stat(NAR)).size;
  await rm(NAR, { force: true });

  const secs = (rs: Run[]): number => median(rs.map((r) => r.seconds));
  const rss = (rs: Run[]): number => median(rs.map((r) => r.maxRssKiB)) / 1024;
  const gib = (narSize / 2 ** 30).toFixed(2);
  const note = `${gib} GiB NAR, 20k files, warm cache, median of ${RUNS}; 2 shared cores, noisy`;
  return [
    { name: 'NAR dump + sha256 (dumpPath)', ours: secs(dump.ours!), peer: secs(dump.nix!), peerName: 'nix-store --dump | sha256sum', unit: 's', lowerIsBetter: true, notes: `${note}; goal ≤ 1x` },
    { name: 'NAR dump only (no hash)', ours: secs(dump.oursRaw!), peer: secs(dump.nixRaw!), peerName: 'nix-store --dump >/dev/null', unit: 's', lowerIsBetter: true, notes: `${note}; ours: dumpPath consumed and dropped` },
    { name: 'NAR dump + sha256 peak RSS', ours: rss(dump.ours!), peer: rss(dump.nix!), peerName: 'nix-store --dump | sha256sum', unit: 'MiB', lowerIsBetter: true, notes: 'max RSS of the process (pipeline: larger of the two)' },
    { name: 'NAR hash + refscan (scanPath)', ours: secs(dump.scan!), peer: secs(dump.nix!), peerName: 'nix-store --dump | sha256sum', unit: 's', lowerIsBetter: true, notes: `${note}; 600 reference candidates; peer does no scan` },
    { name: 'scanPath peak RSS', ours: rss(dump.scan!), peer: rss(dump.nix!), peerName: 'nix-store --dump | sha256sum', unit: 'MiB', lowerIsBetter: true },
    { name: 'NAR restore, 20k files (nar restore)', ours: secs(restore.ours!), peer: secs(restore.nix!), peerName: 'nix-store --restore', unit: 's', lowerIsBetter: true, notes: `${(smallSize / 2 ** 20).toFixed(0)} MiB NAR, 19.9k files + 200 symlinks into tmpfs, median of ${RUNS}; 2 shared cores, noisy` },
    { name: 'NAR restore peak RSS', ours: rss(restore.ours!), peer: rss(restore.nix!), peerName: 'nix-store --restore', unit: 'MiB', lowerIsBetter: true },
  ];
}

/** Child mode: one measured operation in its own process; prints `<nix32 sha256> <narSize>`. */
async function child(mode: string, path: string): Promise<void> {
  if (mode === 'count') {
    let size = 0;
    for await (const c of dumpPath(path)) size += c.length;
    process.stdout.write(`- ${size}\n`);
  } else if (mode === 'dump') {
    const h = createHash('sha256');
    let size = 0;
    for await (const c of dumpPath(path)) {
      h.update(c);
      size += c.length;
    }
    process.stdout.write(`${encodeNix32(h.digest())} ${size}\n`);
  } else {
    const candidates = Array.from({ length: 600 }, (_, i) =>
      parseStorePath(`/nix/store/${encodeNix32(createHash('sha1').update(String(i)).digest())}-cand-${i}`),
    );
    const r = await scanPath(path, { refCandidates: candidates });
    process.stdout.write(`${encodeNix32(r.narHash.digest)} ${r.narSize}\n`);
  }
}

if (process.argv[1] === SELF && process.argv[2] === '--child') {
  await child(process.argv[3]!, process.argv[4]!);
}
