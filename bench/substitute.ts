/**
 * Substitution against real Nix, same run, same caches:
 *  - the whole fixture closure (every manifest output, ~560 paths) from the fixtures' xz cache
 *    over file:// and over nginx, into a fresh lazystore state (`lazystore copy --from`) vs
 *    `nix copy --from` into a fresh chroot store (cold narinfo disk cache for both);
 *  - a 1 GiB NAR (one random file) served uncompressed by nginx: wall time and peak RSS of the
 *    importing process (`/usr/bin/time -f %M`), ours vs nix copy; plus our peak RSS for a 64 MiB
 *    NAR, to show memory stays flat whatever the NAR size.
 * Both sides run as child processes, end to end, one after the other.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { encodeNix32 } from '../src/nix/nixbase32.js';
import { formatHash } from '../src/nix/hash.js';
import { startNginx } from '../test/substitute/nginx.js';
import { LAZYSTORE, type BenchResult } from './result.js';

const FIXTURES = process.env.LAZYSTORE_FIXTURES ?? '/tmp/nix-reference';
const NIX_ENV = { NIX_REMOTE: '', NIX_CONFIG: '' };

interface Run {
  seconds: number;
  maxRssKiB: number;
}

/** Runs a command under /usr/bin/time; wall seconds and peak RSS of the process. */
async function timed(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const t0 = process.hrtime.bigint();
  const r = await execa('/usr/bin/time', ['-f', '%M', cmd, ...args], { env: { ...NIX_ENV, ...env }, reject: false });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.slice(0, 6).join(' ')} … failed: ${r.stderr.slice(-2000)}`);
  const lines = r.stderr.trim().split('\n');
  return { seconds, maxRssKiB: Number(lines[lines.length - 1]) };
}

function manifestOutputs(m: { derivations: { outputs: Record<string, { path: string }> }[] }): string[] {
  return [...new Set(m.derivations.flatMap((d) => Object.values(d.outputs).map((o) => o.path)))].sort();
}

async function oursCopy(tmp: string, url: string, paths: string[]): Promise<Run> {
  const state = await mkdtemp(join(tmp, 'state-'));
  return timed(LAZYSTORE, ['copy', '--state', state, '--from', url, '--no-check-sigs', ...paths]);
}

async function nixCopy(tmp: string, url: string, paths: string[]): Promise<Run> {
  const store = await mkdtemp(join(tmp, 'nixstore-'));
  const cacheHome = await mkdtemp(join(tmp, 'xdg-cache-'));
  return timed('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--no-check-sigs', '--from', url, '--to', store, ...paths], {
    XDG_CACHE_HOME: cacheHome,
  });
}

/** A cache in `dir` with one uncompressed NAR of a directory holding `bytes` random bytes. */
async function bigCache(dir: string, bytes: number, name: string): Promise<string> {
  const src = join(dir, `src-${name}`);
  await mkdir(join(src), { recursive: true });
  const chunk = 1 << 20;
  await pipeline(
    (async function* () {
      for (let n = 0; n < bytes; n += chunk) yield randomBytes(Math.min(chunk, bytes - n));
    })(),
    createWriteStream(join(src, 'blob')),
  );
  const cache = join(dir, `cache-${name}`);
  await mkdir(join(cache, 'nar'), { recursive: true });
  await writeFile(join(cache, 'nix-cache-info'), 'StoreDir: /nix/store\n');
  const narFile = join(cache, 'nar', `${name}.nar`);
  await execa('sh', ['-c', 'nix-store --dump "$1" > "$2"', 'sh', src, narFile], { env: NIX_ENV });
  const narSize = (await stat(narFile)).size;
  const { stdout } = await execa('sha256sum', [narFile]);
  const narHash = formatHash({ algo: 'sha256', digest: Buffer.from(stdout.slice(0, 64), 'hex') });
  const hash = encodeNix32(createHash('sha256').update(name).digest().subarray(0, 20));
  const storePath = `/nix/store/${hash}-${name}`;
  await writeFile(
    join(cache, `${hash}.narinfo`),
    `StorePath: ${storePath}\nURL: nar/${name}.nar\nCompression: none\nNarHash: ${narHash}\nNarSize: ${narSize}\nReferences: \n`,
  );
  await rm(src, { recursive: true, force: true });
  return storePath;
}

const ROUNDS = 5;

export async function run(): Promise<BenchResult[]> {
  const tmp = await mkdtemp(join(tmpdir(), 'lazystore-bench-subst-'));
  // nginx serves only this directory; the fixtures' cache through a symlink in it.
  await symlink(FIXTURES, join(tmp, 'fixtures'));
  const nginx = await startNginx(tmp);
  const results: BenchResult[] = [];
  try {
    const paths = manifestOutputs(JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')));
    const fileUrl = `file://${FIXTURES}/cache`;
    const httpUrl = `${nginx.url}/fixtures/cache`;
    // The stores on this machine's ext4 (the realistic case: create latency there swings 4x
    // from minute to minute for both programs) and on tmpfs (the software alone).
    const shm = await mkdtemp('/dev/shm/lazystore-bench-subst-');
    try {
      for (const [label, url, where] of [
        ['file:// xz', fileUrl, tmp],
        ['http xz (nginx)', httpUrl, tmp],
        ['file:// xz, both stores on tmpfs', fileUrl, shm],
      ] as const) {
        // Best of ROUNDS, alternating, to damp the noise of a shared machine.
        const oursRuns: Run[] = [];
        const peerRuns: Run[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          oursRuns.push(await oursCopy(where, url, paths));
          peerRuns.push(await nixCopy(where, url, paths));
        }
        const ours = { seconds: Math.min(...oursRuns.map((r) => r.seconds)) };
        const peer = { seconds: Math.min(...peerRuns.map((r) => r.seconds)) };
        const all = (runs: Run[]) => runs.map((r) => r.seconds.toFixed(2)).join('/');
        results.push({
          name: `substitute fixture closure (${paths.length} paths) from ${label}`,
          ours: ours.seconds,
          peer: peer.seconds,
          peerName: 'nix copy --from (Nix 2.8)',
          unit: 's',
          lowerIsBetter: true,
          // The goal is for the two comparisons it names (the stores on this machine's
          // disk); the tmpfs row shows the software alone and states no goal.
          notes: `${where === shm ? 'no goal: the disk taken out' : 'goal ≤ 1.0x'}; end to end incl. process start, best of ${ROUNDS} alternating (ours ${all(oursRuns)}, nix ${all(peerRuns)}), fresh state / fresh chroot store, cold narinfo cache; 2 shared cores, noisy`,
        });
      }
    } finally {
      await execa('chmod', ['-R', 'u+w', shm], { reject: false });
      await rm(shm, { recursive: true, force: true });
    }

    const small = await bigCache(tmp, 64 << 20, 'big64m');
    const big = await bigCache(tmp, 1 << 30, 'big1g');
    const smallUrl = `${nginx.url}/cache-big64m`;
    const bigUrl = `${nginx.url}/cache-big1g`;
    const ours64 = await oursCopy(tmp, smallUrl, [small]);
    const ours = await oursCopy(tmp, bigUrl, [big]);
    const peer = await nixCopy(tmp, bigUrl, [big]);
    results.push({
      name: 'peak RSS importing a 1 GiB NAR over HTTP (uncompressed)',
      ours: ours.maxRssKiB / 1024,
      peer: peer.maxRssKiB / 1024,
      peerName: 'nix copy --from (Nix 2.8)',
      unit: 'MiB',
      lowerIsBetter: true,
      notes: `ours for a 64 MiB NAR: ${(ours64.maxRssKiB / 1024).toFixed(0)} MiB (flat: memory does not grow with NAR size)`,
    });
    results.push({
      name: 'import a 1 GiB NAR over HTTP (uncompressed)',
      ours: (1 << 30) / 2 ** 20 / ours.seconds,
      peer: (1 << 30) / 2 ** 20 / peer.seconds,
      peerName: 'nix copy --from (Nix 2.8)',
      unit: 'MiB/s',
      lowerIsBetter: false,
      notes: 'fetch + NAR parse + write + sha256 verify, end to end; 2 shared cores, noisy',
    });
  } finally {
    await nginx.stop();
    await rm(tmp, { recursive: true, force: true });
  }
  return results;
}
