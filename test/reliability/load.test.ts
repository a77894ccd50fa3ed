/**
 * Load through a real mount: 1,000 concurrent readers (separate `cat` processes) spread over
 * 100 unbuilt paths that share 10 unbuilt inputs, served by a `lazystore mount` process with
 * --max-jobs 4. Every derivation is built exactly once (the daemon logs one line per build),
 * the number of live sandboxes sampled every 5 ms never exceeds 4, every reader gets the
 * exact bytes, and the daemon's peak RSS (VmHWM) is reported. LOAD_READERS/LOAD_PATHS scale it.
 */
import { Worker } from 'node:worker_threads';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseStorePath } from '../../src/nix/store-path.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { CLI, HAVE_FUSE, isMounted, run, startCliMount } from '../fuse/mount-helpers.js';

const READERS = Number(process.env.LOAD_READERS ?? 1000);
const PATHS = Number(process.env.LOAD_PATHS ?? 100);
const SHARED = 10;
const MAX_JOBS = 4;

/** Instantiates SHARED bases and PATHS tops (top i reads bases i%SHARED and (i+1)%SHARED). */
async function instantiateGraph(dir: string): Promise<{ drvs: string[]; outs: Map<string, string> }> {
  const salt = `load-${process.pid}-${Date.now()}`;
  const file = join(dir, 'load.nix');
  await writeFile(
    file,
    `let lib = import ${join(FIXTURES, 'nix', 'lib.nix')} { salt = "${salt}"; };
  base = builtins.genList (j: lib.mk { name = "load-base-\${toString j}"; script = "sleep 0.2; echo base \${toString j} > $out"; }) ${SHARED};
  top = builtins.genList (i: lib.mk {
    name = "load-top-\${toString i}";
    a = builtins.elemAt base (lib.mod i ${SHARED});
    b = builtins.elemAt base (lib.mod (i + 1) ${SHARED});
    script = "sleep 0.1; cat $a $b > $out; echo top \${toString i} >> $out";
  }) ${PATHS};
in top
`,
  );
  const inst = spawnSync('nix-instantiate', [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (inst.status !== 0) throw new Error(inst.stderr);
  const drvs = inst.stdout.trim().split('\n');
  const show = spawnSync('nix', ['--extra-experimental-features', 'nix-command', 'show-derivation', ...drvs], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const json = JSON.parse(show.stdout) as Record<string, { outputs: { out: { path: string } } }>;
  return { drvs, outs: new Map(drvs.map((d) => [d, json[d]!.outputs.out.path])) };
}

/**
 * Samples the daemon's live sandboxes (bwrap children) every 5 ms in a worker thread: the test's
 * own event loop is busy spawning 1,000 readers, and a timer there once fired only after every
 * build had finished (a fresh-clone CI run saw 0 sandboxes).
 */
function startSandboxSampler(daemonPid: number): { stop(): Promise<number> } {
  const src = `
    const { parentPort, workerData: daemon } = require('node:worker_threads');
    const { readdirSync, readFileSync } = require('node:fs');
    let max = 0, on = true;
    function live() {
      let n = 0;
      for (const pid of readdirSync('/proc')) {
        if (!/^[0-9]+$/.test(pid)) continue;
        try {
          const stat = readFileSync('/proc/' + pid + '/stat', 'utf8');
          const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          if (Number(fields[1]) === daemon && stat.includes('(bwrap)')) n++;
        } catch {}
      }
      return n;
    }
    (function loop() { if (!on) return; max = Math.max(max, live()); setTimeout(loop, 5); })();
    parentPort.on('message', () => { on = false; parentPort.postMessage(max); });
  `;
  const worker = new Worker(src, { eval: true, workerData: daemonPid, execArgv: [] });
  return {
    stop: () =>
      new Promise<number>((resolve) => {
        worker.once('message', (max: number) => void worker.terminate().then(() => resolve(max)));
        worker.postMessage('stop');
      }),
  };
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

describe.skipIf(!HAVE_FUSE)('load through a real mount', () => {
  let state = '';
  let mp = '';
  let work = '';
  let daemon: ChildProcess | undefined;
  afterAll(async () => {
    if (daemon && daemon.exitCode === null) daemon.kill('SIGKILL');
    if (mp && isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
    if (mp) await rmdir(mp).catch(() => {});
    for (const d of [state, work]) if (d) await rm(d, { recursive: true, force: true });
  });

  it(`${READERS} readers over ${PATHS} unbuilt paths sharing ${SHARED} unbuilt inputs: each built once, --max-jobs held, right bytes`, async () => {
    expect(existsSync(CLI), `${CLI} missing: run 'npm run build' (npm test does)`).toBe(true);
    state = await mkdtemp(join(tmpdir(), 'lazystore-load-state-'));
    mp = await mkdtemp(join(tmpdir(), 'lazystore-load-mp-'));
    work = await mkdtemp(join(tmpdir(), 'lazystore-load-'));
    const { drvs, outs } = await instantiateGraph(work);
    expect(drvs).toHaveLength(PATHS);

    const mounted = await startCliMount(['--state', state, '--max-jobs', String(MAX_JOBS), ...drvs.flatMap((d) => ['--drvs', d]), mp]);
    const child = mounted.child;
    daemon = child;
    const rssIdle = peakRssMiB(child.pid!);

    const sampler = startSandboxSampler(child.pid!);
    const t0 = performance.now();
    const readers = Array.from({ length: READERS }, (_, k) => {
      const i = (k * 37) % PATHS; // spread, every path read READERS/PATHS times
      const out = outs.get(drvs[i]!)!;
      return run('cat', [join(mp, basename(out))], { timeoutMs: 600_000 }).then((r) => ({ i, r }));
    });
    const results = await Promise.all(readers);
    const seconds = (performance.now() - t0) / 1000;
    const maxLive = await sampler.stop();

    const wrong = results.filter(({ i, r }) => r.code !== 0 || r.stdout !== `base ${i % SHARED}\nbase ${(i + 1) % SHARED}\ntop ${i}\n`);
    if (wrong.length > 0) console.log(mounted.stderr().split("\n").filter((l) => /fail|error|stale/i.test(l)).slice(0, 10).join("\n"));
    expect(wrong.slice(0, 3), `${wrong.length} readers got wrong bytes or errors`).toEqual([]);

    const built = [...mounted.stderr().matchAll(/built (\/nix\/store\/\S+\.drv) in/g)].map((m) => m[1]!);
    const counts = new Map<string, number>();
    for (const d of built) counts.set(d, (counts.get(d) ?? 0) + 1);
    expect([...counts.values()].filter((n) => n !== 1)).toEqual([]);
    expect(counts.size).toBe(PATHS + SHARED);
    for (const d of drvs) expect(counts.get(d), d).toBe(1);
    expect(maxLive).toBeLessThanOrEqual(MAX_JOBS);
    expect(maxLive, 'builds ran concurrently (the sampler saw more than one sandbox)').toBeGreaterThan(1);

    const rss = peakRssMiB(child.pid!);
    console.log(
      `load: ${READERS} readers, ${PATHS + SHARED} builds in ${seconds.toFixed(1)} s; max live sandboxes ${maxLive} (bound ${MAX_JOBS}); ` +
        `daemon peak RSS ${rss.toFixed(0)} MiB (${rssIdle.toFixed(0)} MiB after mounting)`,
    );
    for (const out of outs.values()) parseStorePath(out);

    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    expect(isMounted(mp)).toBe(false);
  });
});
