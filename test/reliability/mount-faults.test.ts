/**
 * Faults injected into a real `lazystore mount` process (the compiled CLI) while readers use
 * the mount: SIGKILL during a build, during a substitution (NAR body stalled half-way), and
 * at each registration point (LAZYSTORE_TEST_PAUSE_AT); a substituter serving corrupt, lying,
 * unsigned, reset or traversal NARs. After each kill: the stale mountpoint is recovered at
 * restart, `lazystore verify --check-contents` is clean, the half-done path is not valid, no
 * builder survives, and a retried read returns the right bytes. A bad cache answer fails that
 * read only; the mount keeps serving other paths.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { manifest } from '../helpers/fixtures.js';
import { HAVE_FUSE, freshDrvs, isMounted, run, startCliMount, CLI, type CliMount } from '../fuse/mount-helpers.js';
import { processesWith } from '../helpers/processes.js';
import { PUBLIC_KEY, startHostileCache, type Fault, type HostileCache } from './hostile-cache.js';


let currentMp = '';

/** Starts `lazystore mount ARGS` at this test's mountpoint. */
const startMount = (args: string[], env?: NodeJS.ProcessEnv): Promise<CliMount> => startCliMount([...args, currentMp], env);

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  for (const t0 = Date.now(); !cond(); ) {
    if (Date.now() - t0 > ms) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Paths with no references but themselves, valid in the host store (the oracle for bytes). */
const leaves = manifest()
  .derivations.flatMap((d) => Object.values(d.outputs))
  .filter((o) => o.path.includes('-dag500-0-') && o.references.every((r) => r === o.path))
  .map((o) => o.path);

describe.skipIf(!HAVE_FUSE)('faults injected into a running mount', () => {
  let state: string;
  let mp: string;
  let cache: HostileCache;
  let mount: CliMount | undefined;
  const faultsSurvived: string[] = [];
  let staleLeft = 0;
  let next = 0;
  const leaf = (): string => leaves[next++]!;

  const args = (): string[] => ['--state', state, '--substituter', cache.url, '--trusted-key', PUBLIC_KEY, '--max-jobs', '2'];
  const read = (p: string, sub = ''): ReturnType<typeof run> => run('cat', [join(mp, basename(p), sub)], { timeoutMs: 120_000 });
  const cli = (...a: string[]): ReturnType<typeof run> => run(process.execPath, [CLI, ...a]);

  async function kill9(): Promise<void> {
    mount!.child.kill('SIGKILL');
    await exited(mount!.child);
    mount = undefined;
  }

  /** After a kill: the store reopens clean, `path` is not valid, a restart clears the stale mount. */
  async function afterKill(path: string, fault: string, extra: string[] = []): Promise<void> {
    const v = await cli('verify', '--state', state, '--check-contents');
    expect(v, 'verify --check-contents after the kill').toMatchObject({ code: 0 });
    expect((await cli('path-info', '--state', state, path)).code, 'the half-done path must not be valid').toBe(1);
    // auto_unmount: fusermount removes the mount when the daemon dies; a leftover is cleared at start
    await until('the dead mount to go away', () => !isMounted(mp), 5000).catch(() => undefined);
    if (isMounted(mp)) staleLeft++;
    mount = await startMount([...args(), ...extra]);
    expect(isMounted(mp)).toBe(true);
    faultsSurvived.push(fault);
  }

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} missing: run 'npm run build' (npm test does)`).toBe(true);
    expect(leaves.length).toBeGreaterThanOrEqual(20);
    state = await mkdtemp(join(tmpdir(), 'lazystore-faults-state-'));
    mp = await mkdtemp(join(tmpdir(), 'lazystore-faults-mp-'));
    currentMp = mp;
    cache = await startHostileCache();
  });
  afterEach(async () => {
    if (mount) {
      mount.child.kill('SIGTERM');
      await exited(mount.child);
      mount = undefined;
    }
    if (isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
  });
  afterAll(async () => {
    if (mp && isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
    if (mp) await rmdir(mp).catch(() => {});
    await cache?.close();
    if (state) await rm(state, { recursive: true, force: true });
    console.log(`faults injected and survived (${faultsSurvived.length}): ${faultsSurvived.join(', ')}; mounts left stale by a kill: ${staleLeft}`);
  });

  it('a bad cache answer fails that read only; the mount keeps serving; nothing bad is imported', async () => {
    const bad: Fault[] = process.env.FAULTS ? (process.env.FAULTS.split(',') as Fault[]) : ['flip', 'truncate', 'wrong-narhash', 'wrong-narsize', 'bad-sig', 'no-sig', 'reset', 'traversal', 'http-500'];
    const paths = new Map(bad.map((f) => [f, leaf()] as const));
    for (const [f, p] of paths) cache.faults.set(basename(p).slice(0, 32), f);
    mount = await startMount(args());
    const results = await Promise.all([...paths].map(async ([f, p]) => {
      const t0 = Date.now();
      const r = await read(p);
      console.log(`cache fault ${f}: read failed in ${Date.now() - t0} ms: ${r.stderr.trim()}`);
      return [f, r] as const;
    }));
    for (const [f, r] of results) {
      expect(r.code, `${f}: the read must fail`).not.toBe(0);
      expect(r.stderr, f).toMatch(/Input\/output error|No such file/);
    }
    const good = leaf();
    let t0 = Date.now();
    expect((await read(good)).stdout).toBe(readFileSync(good, 'utf8'));
    console.log(`good read after the faults: ${Date.now() - t0} ms`);
    t0 = Date.now();
    mount.child.kill('SIGTERM');
    await exited(mount.child);
    console.log(`SIGTERM to exit: ${Date.now() - t0} ms`);
    const log = mount.stderr();
    mount = undefined;
    for (const [f, p] of paths) {
      expect((await cli('path-info', '--state', state, p)).code, `${f} must not be valid`).toBe(1);
      faultsSurvived.push(`cache:${f}`);
    }
    expect((await cli('verify', '--state', state, '--check-contents')).code).toBe(0);
    // the daemon says why, per path (one line each, not a stack trace)
    expect(log).not.toMatch(/\n\s+at /);
  });

  it('SIGKILL while a NAR download is stalled half-way: clean store, retried read has the bytes', async () => {
    const p = leaf();
    const hash = basename(p).slice(0, 32);
    cache.faults.set(hash, 'stall');
    mount = await startMount(args());
    const stalled = cache.stalled(hash);
    const reader = read(p);
    await stalled;
    await kill9();
    expect((await reader).code).not.toBe(0);
    cache.faults.set(hash, 'ok');
    await afterKill(p, 'kill -9 during substitution');
    expect((await read(p)).stdout).toBe(readFileSync(p, 'utf8'));
  });

  it('SIGKILL during a build: the builder dies with the daemon, clean store, retried read rebuilds', async () => {
    const marker = `fault-build-${process.pid}-${Date.now()}`;
    const { slow } = await freshDrvs({ slow: `echo ${marker}; sleep 2; echo built > $out` });
    mount = await startMount([...args(), '--drvs', slow!.drvPath]);
    const reader = read(slow!.out);
    await until('the builder to start', () => processesWith(marker) > 0);
    await kill9();
    expect((await reader).code).not.toBe(0);
    await until('the builder to die with the daemon', () => processesWith(marker) === 0, 10_000);
    await afterKill(slow!.out, 'kill -9 during build', ['--drvs', slow!.drvPath]);
    expect((await read(slow!.out)).stdout).toBe('built\n');
  });

  it.each(['register:before-rename', 'register:after-rename', 'register:before-commit'])(
    'SIGKILL at %s (a build): clean store, retried read succeeds',
    async (point) => {
      const { drv } = await freshDrvs({ drv: `echo ${point} > $out` });
      mount = await startMount([...args(), '--drvs', drv!.drvPath], { ...process.env, LAZYSTORE_TEST_PAUSE_AT: point });
      const reader = read(drv!.out);
      await until(`the daemon to pause at ${point}`, () => mount!.stderr().includes(`paused at ${point}`));
      await kill9();
      expect((await reader).code).not.toBe(0);
      await afterKill(drv!.out, `kill -9 at ${point} (build)`, ['--drvs', drv!.drvPath]);
      expect((await read(drv!.out)).stdout).toBe(`${point}\n`);
    },
  );

  it('SIGKILL at register:after-rename during a substitution: clean store, retried read succeeds', async () => {
    const p = leaf();
    mount = await startMount(args(), { ...process.env, LAZYSTORE_TEST_PAUSE_AT: 'register:after-rename' });
    const reader = read(p);
    await until('the daemon to pause', () => mount!.stderr().includes('paused at register:after-rename'));
    await kill9();
    expect((await reader).code).not.toBe(0);
    await afterKill(p, 'kill -9 at register:after-rename (substitution)');
    expect((await read(p)).stdout).toBe(readFileSync(p, 'utf8'));
  });
});
