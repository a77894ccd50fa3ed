/**
 * On-demand long soak (SOAK_SECONDS=N, or `npm run soak`; skipped otherwise): one real
 * `lazystore mount` process serves a stream of random reads for N seconds from 20 concurrent
 * `cat` readers — of paths already built, of unbuilt paths (fresh salted derivations are
 * instantiated in batches while the soak runs, some depending on others, so builds keep
 * happening), of derivations whose builder fails (and of their dependents), and of unknown
 * names. Every read is checked: Nix-determined bytes, EIO for a failing build, ENOENT for an
 * unknown name. The daemon's RSS and open fds are sampled every few seconds. At the end: no read
 * took longer than READ_BOUND_S (nothing stuck), fds flat, RSS not growing, and the store
 * verifies with `lazystore verify --check-contents`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES } from '../helpers/fixtures.js';
import { HAVE_FUSE, isMounted, run, type Run } from '../fuse/mount-helpers.js';

/** The bundled CLI that bin/lazystore runs. */
const CLI = join(import.meta.dirname, '../../dist/bundle/run.cjs');
const SOAK_SECONDS = Number(process.env.SOAK_SECONDS ?? 0);
const READERS = 20;
const SAMPLE_MS = 2000;
/** A read slower than this is a stuck request (builds here take well under a second each). */
const READ_BOUND_S = 60;
/** Unbuilt good paths kept waiting to be read; a new batch is instantiated below this. */
const LOW_WATER = 12;
const FD_SLACK = 16;
/**
 * RSS: last-quarter median within 1.3x of the second-quarter median. The first quarter is
 * warm-up (JIT, caches and V8's heap growing to their working size), so it is not the baseline;
 * medians ride over GC sawtooth. A leak proportional to the work done grows the leaked part
 * ~2.3x between the two medians (times 3/8 and 7/8 of the run), so it shows once it is a fair
 * share of the baseline; 1.3x leaves room for V8 sizing its heap up under steady load.
 */
const RSS_RATIO = 1.3;

type Kind = 'valid' | 'unbuilt' | 'failing' | 'unknown';
const NIX32 = '0123456789abcdfghijklmnpqrsvwxyz';

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const quarter = <T>(xs: T[], q: number): T[] => xs.slice(Math.floor((xs.length * q) / 4), Math.floor((xs.length * (q + 1)) / 4));

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Open fds of `pid` by what they point at (`socket`, `pipe`, a file's directory, …), for the report. */
function fdKinds(pid: number): string {
  const kinds = new Map<string, number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let t: string;
    try {
      t = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const k = /^(\w+):/.exec(t)?.[1] ?? (t.startsWith('/dev/') ? t : t.replace(/\/[^/]*$/, '/…'));
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  return [...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
}

interface Batch {
  good: Map<string, string>; // out path → expected bytes
  failing: string[]; // out paths whose build (or an input's) fails
}

/**
 * Instantiates one batch with real nix-instantiate: 4 leaves, 2 tops each reading two leaves,
 * 1 failing builder and 1 dependent of it; copies its input sources and .drv files into
 * `drvDir` (inputs first, each .drv renamed into place so the daemon never sees half a file).
 */
async function instantiateBatch(work: string, drvDir: string, n: number): Promise<Batch> {
  const salt = `soak-${process.pid}-${Date.now()}-${n}`;
  const file = join(work, `batch-${n}.nix`);
  await writeFile(
    file,
    `let lib = import ${join(FIXTURES, 'nix', 'lib.nix')} { salt = "${salt}"; };
  leaf = builtins.genList (j: lib.mk { name = "soak-leaf-\${toString j}"; script = "echo leaf \${toString j} > $out"; }) 4;
  top = builtins.genList (i: lib.mk {
    name = "soak-top-\${toString i}";
    a = builtins.elemAt leaf i; b = builtins.elemAt leaf (i + 2);
    script = "cat $a $b > $out; echo top \${toString i} >> $out";
  }) 2;
  bad = lib.mk { name = "soak-bad"; script = "echo failing on purpose >&2; exit 1"; };
  badDep = lib.mk { name = "soak-bad-dep"; x = bad; script = "cat $x > $out"; };
in leaf ++ top ++ [ bad badDep ]
`,
  );
  const inst = await run('nix-instantiate', [file], { timeoutMs: 120_000 });
  if (inst.code !== 0) throw new Error(`nix-instantiate: ${inst.stderr}`);
  const drvs = inst.stdout.trim().split('\n');
  const show = await run('nix', ['--extra-experimental-features', 'nix-command', 'show-derivation', ...drvs], { timeoutMs: 120_000 });
  const json = JSON.parse(show.stdout) as Record<string, { outputs: { out: { path: string } }; inputSrcs: string[] }>;
  const outs = drvs.map((d) => json[d]!.outputs.out.path);
  // the daemon imports inputSrcs (busybox) from the directory the .drv files are in
  for (const src of new Set(drvs.flatMap((d) => json[d]!.inputSrcs))) {
    if (existsSync(join(drvDir, basename(src)))) continue;
    const cp = await run('cp', ['-a', src, join(drvDir, basename(src))]);
    if (cp.code !== 0) throw new Error(`cp ${src}: ${cp.stderr}`);
  }
  for (const d of drvs) {
    const tmp = join(drvDir, `${basename(d)}.part`);
    await copyFile(d, tmp);
    await rename(tmp, join(drvDir, basename(d)));
  }
  const leafText = (j: number): string => `leaf ${j}\n`;
  const good = new Map<string, string>();
  for (let j = 0; j < 4; j++) good.set(outs[j]!, leafText(j));
  for (let i = 0; i < 2; i++) good.set(outs[4 + i]!, leafText(i) + leafText(i + 2) + `top ${i}\n`);
  return { good, failing: [outs[6]!, outs[7]!] };
}

describe.runIf(SOAK_SECONDS > 0 && HAVE_FUSE)(`soak: ${SOAK_SECONDS} s of random reads through one mount`, () => {
  let state = '';
  let mp = '';
  let work = '';
  let daemon: ChildProcess | undefined;
  afterAll(async () => {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
    if (mp && isMounted(mp)) await run('fusermount', ['-u', '-z', mp]);
    if (mp) await rmdir(mp).catch(() => {}); // never recursive: it was a mountpoint
    for (const d of [state, work]) if (d) await rm(d, { recursive: true, force: true });
  });

  it('every read right, nothing stuck, fds flat, RSS not growing, store verifies', { timeout: (SOAK_SECONDS + 600) * 1000 }, async () => {
    expect(existsSync(CLI), `${CLI} missing: run 'npm run build'`).toBe(true);
    // shorter runs cannot tell warm-up (the idle fd cache filling, V8's heap sizing) from growth
    expect(SOAK_SECONDS, 'SOAK_SECONDS must be at least 60').toBeGreaterThanOrEqual(60);
    state = await mkdtemp(join(tmpdir(), 'lazystore-soak-state-'));
    mp = await mkdtemp(join(tmpdir(), 'lazystore-soak-mp-'));
    work = await mkdtemp(join(tmpdir(), 'lazystore-soak-'));
    const drvDir = join(work, 'drvs');
    await mkdir(drvDir);

    const valid = new Map<string, string>();
    const unbuilt = new Map<string, string>();
    const failing: string[] = [];
    let batches = 0;
    const addBatch = async (): Promise<void> => {
      const b = await instantiateBatch(work, drvDir, batches++);
      for (const [p, t] of b.good) unbuilt.set(p, t);
      failing.push(...b.failing);
    };
    await addBatch();

    const child = spawn(process.execPath, [CLI, 'mount', '--state', state, '--max-jobs', '2', '--drvs', drvDir, mp], { stdio: ['ignore', 'ignore', 'pipe'] });
    daemon = child;
    let built = 0;
    let buildFailures = 0;
    const tail: string[] = [];
    let partial = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr!.setEncoding('utf8').on('data', (c: string) => {
        const lines = (partial + c).split('\n');
        partial = lines.pop()!;
        for (const l of lines) {
          if (/lazystore: mounted .* at /.test(l)) resolve();
          if (/\bbuilt \/nix\/store\/\S+\.drv in/.test(l)) built++;
          if (/failed building /.test(l)) buildFailures++;
          tail.push(l);
          if (tail.length > 40) tail.shift();
        }
      });
      child.once('exit', (code) => reject(new Error(`mount exited ${code}: ${tail.join('\n')}`)));
    });
    const pid = child.pid!;

    const samples: { t: number; rssMiB: number; fds: number }[] = [];
    const t0 = Date.now();
    const sample = (): void => {
      samples.push({ t: (Date.now() - t0) / 1000, rssMiB: procStatus(pid, 'VmRSS'), fds: readdirSync(`/proc/${pid}/fd`).length });
    };
    sample();
    const sampler = setInterval(sample, SAMPLE_MS);
    const deadline = t0 + SOAK_SECONDS * 1000;

    // producer: keep unbuilt paths available
    const producer = (async () => {
      while (Date.now() < deadline) {
        if (unbuilt.size < LOW_WATER) await addBatch();
        else await new Promise((r) => setTimeout(r, 250));
      }
    })();

    const reads: Record<Kind, number> = { valid: 0, unbuilt: 0, failing: 0, unknown: 0 };
    const wrong: string[] = [];
    let slowest = { s: 0, kind: '', path: '' };
    const check = (kind: Kind, path: string, r: Run, expected?: string): string | undefined => {
      if (kind === 'valid' || kind === 'unbuilt') return r.code === 0 && r.stdout === expected ? undefined : `exit ${r.code}, ${JSON.stringify(r.stdout.slice(0, 80))}, ${r.stderr.trim()}`;
      const want = kind === 'failing' ? /Input\/output error/ : /No such file or directory/;
      return r.code !== 0 && want.test(r.stderr) ? undefined : `exit ${r.code}, ${r.stderr.trim() || JSON.stringify(r.stdout.slice(0, 80))}`;
    };
    const reader = async (): Promise<void> => {
      while (Date.now() < deadline && wrong.length < 10) {
        const roll = Math.random();
        let kind: Kind = roll < 0.45 ? 'valid' : roll < 0.75 ? 'unbuilt' : roll < 0.87 ? 'failing' : 'unknown';
        if (kind === 'valid' && valid.size === 0) kind = 'unbuilt';
        if (kind === 'unbuilt' && unbuilt.size === 0) kind = valid.size > 0 ? 'valid' : 'unknown';
        let path: string;
        let expected: string | undefined;
        if (kind === 'valid') [path, expected] = pick([...valid]);
        else if (kind === 'unbuilt') [path, expected] = pick([...unbuilt]);
        else if (kind === 'failing') path = pick(failing);
        else path = `/nix/store/${Array.from({ length: 32 }, () => pick([...NIX32])).join('')}-soak-unknown`;
        const started = Date.now();
        const r = await run('cat', [join(mp, basename(path))], { timeoutMs: (READ_BOUND_S + 60) * 1000 });
        const s = (Date.now() - started) / 1000;
        if (s > slowest.s) slowest = { s, kind, path };
        reads[kind]++;
        const bad = check(kind, path, r, expected);
        if (bad) wrong.push(`${kind} ${path}: ${bad}`);
        else if (kind === 'unbuilt') {
          unbuilt.delete(path);
          valid.set(path, expected!);
        }
      }
    };
    await Promise.all(Array.from({ length: READERS }, reader));
    await producer;
    clearInterval(sampler);
    sample();
    const seconds = (Date.now() - t0) / 1000;

    const rss = samples.map((s) => s.rssMiB);
    const fds = samples.map((s) => s.fds);
    const fdQ1 = Math.max(...quarter(fds, 0));
    const fdQ4 = Math.max(...quarter(fds, 3));
    const rssQ2 = median(quarter(rss, 1));
    const rssQ4 = median(quarter(rss, 3));
    const peak = procStatus(pid, 'VmHWM');
    const total = Object.values(reads).reduce((a, b) => a + b, 0);
    const every = Math.max(1, Math.floor(samples.length / 12));
    console.log(
      [
        `soak: ${seconds.toFixed(0)} s, ${READERS} readers, ${total} reads (${(total / seconds).toFixed(1)}/s): ` +
          Object.entries(reads).map(([k, n]) => `${k} ${n}`).join(', '),
        `  ${batches} batches instantiated (${batches * 8} derivations), ${built} builds succeeded, ${buildFailures} failed builds logged; ${valid.size} paths valid at the end`,
        `  slowest read ${slowest.s.toFixed(2)} s (${slowest.kind}; bound ${READ_BOUND_S} s); wrong results ${wrong.length}`,
        `  RSS MiB: Q2 median ${rssQ2.toFixed(0)}, Q4 median ${rssQ4.toFixed(0)} (ratio ${(rssQ4 / rssQ2).toFixed(2)}, bound ${RSS_RATIO}), peak ${peak.toFixed(0)}`,
        `  fds: Q1 max ${fdQ1}, Q4 max ${fdQ4} (slack ${FD_SLACK}); at the end: ${fdKinds(pid)}`,
        `  samples (s: RSS MiB/fds): ` + samples.filter((_, i) => i % every === 0 || i === samples.length - 1).map((s) => `${s.t.toFixed(0)}: ${s.rssMiB.toFixed(0)}/${s.fds}`).join(', '),
      ].join('\n'),
    );
    if (wrong.length > 0) console.log(`daemon log tail:\n${tail.join('\n')}`);

    expect(wrong.slice(0, 5), `${wrong.length} reads got a wrong result`).toEqual([]);
    expect(reads.unbuilt, 'unbuilt paths were read').toBeGreaterThan(0);
    expect(reads.failing, 'failing paths were read').toBeGreaterThan(0);
    expect(reads.unknown, 'unknown names were read').toBeGreaterThan(0);
    expect(built, 'builds happened').toBeGreaterThan(0);
    expect(slowest.s, `slowest read (${slowest.kind} ${slowest.path})`).toBeLessThan(READ_BOUND_S);
    expect(samples.length, 'enough samples to compare quarters').toBeGreaterThanOrEqual(8);
    expect(fdQ4, 'open fds in the last quarter vs the first').toBeLessThanOrEqual(fdQ1 + FD_SLACK);
    expect(rssQ4, 'RSS median, last quarter vs second').toBeLessThanOrEqual(rssQ2 * RSS_RATIO);

    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    expect(isMounted(mp)).toBe(false);
    const v = await run(process.execPath, [CLI, 'verify', '--state', state, '--check-contents'], { timeoutMs: 300_000 });
    expect(v, 'verify --check-contents after the soak').toMatchObject({ code: 0 });
  });
});
