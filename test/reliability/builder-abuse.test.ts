/**
 * Builders that misbehave, on a state directory that is a 48 MiB tmpfs (so "disk full" is real
 * and cheap): filling the build dir, filling the disk with the output itself (ENOSPC while
 * registering), flooding the log, leaving 100 background processes behind, forking and hanging
 * until the timeout, exiting 0 without an output. Each: a LazyError naming the drv, nothing
 * registered, no scratch left, `verifyStore --check-contents` clean after reopening, and a
 * normal build succeeds afterwards in the same store.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLazyError, type LazyError } from '../../src/errors.js';
import { baseName, parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { KnownDerivations } from '../../src/realise/known-derivations.js';
import { Realiser } from '../../src/realise/realiser.js';
import { LocalStore } from '../../src/store/local-store.js';
import { verifyStore } from '../../src/store/verify-store.js';
import { busyboxPath } from '../realise/helpers.js';
import { craft, scriptDrv } from './craft-drv.js';
import { processesWith } from '../helpers/processes.js';

const IS_ROOT = process.getuid?.() === 0;
const TMPFS_MIB = 48;

let root: string;
let state: string;
let drvDir: string;
let store: LocalStore;
let known: KnownDerivations;
let realiser: Realiser;

async function open(): Promise<void> {
  store = await LocalStore.open(state);
  known = await KnownDerivations.open(state, store);
  realiser = new Realiser(store, { known, maxJobs: 2, failureTtlMs: 0, timeoutMs: 4000 });
}

async function build(name: string, script: string): Promise<{ drvPath: StorePath; out: StorePath; error?: LazyError; ms: number }> {
  const drv = scriptDrv(name, script);
  const drvPath = await craft(drvDir, drv);
  const out = parseStorePath(drv.outputs.get('out')!.path);
  await known.add(join(drvDir, baseName(drvPath)));
  const t0 = performance.now();
  try {
    await realiser.realiseDrv(drvPath);
    return { drvPath, out, ms: performance.now() - t0 };
  } catch (e) {
    if (!isLazyError(e)) throw e;
    if (process.env.ABUSE_DEBUG) console.log(name, e.code, e.message, readFileSync(store.logPath(drvPath), 'utf8').slice(-300));
    return { drvPath, out, error: e, ms: performance.now() - t0 };
  }
}

/** Scratch in tmp/ other than the per-store sandbox-etc; removal is not awaited by the builder. */
async function scratchLeft(): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < 100; i++) {
    left = (await readdir(join(state, 'tmp'))).filter((n) => !n.includes('sandbox-etc'));
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

async function expectCleanFailure(r: { drvPath: StorePath; out: StorePath; error?: LazyError }, code: RegExp): Promise<void> {
  expect(r.error, 'the build must fail').toBeDefined();
  expect(r.error!.code).toMatch(code);
  // build errors name the drv; a store error while registering names the output path
  expect([r.drvPath, r.out].some((p) => r.error!.message.includes(p)), r.error!.message).toBe(true);
  expect(await store.isValid(r.out)).toBe(false);
  expect(existsSync(join(state, 'info', `${baseName(r.out).slice(0, 32)}.narinfo`))).toBe(false);
  expect(await scratchLeft()).toEqual([]);
}

/** After the fault: reopen (recovery), verify contents, and a normal build still works. */
async function expectHealthy(): Promise<void> {
  await open();
  const v = await verifyStore(store, { checkContents: true });
  expect(v.problems).toEqual([]);
  const ok = await build('after-fault', 'echo fine > $out');
  expect(ok.error).toBeUndefined();
  expect(readFileSync(store.realPath(ok.out), 'utf8')).toBe('fine\n');
}

/** Processes whose command line holds `marker`, once the kernel has had up to 5 s to reap them. */
async function markerProcesses(marker: string): Promise<number> {
  let n = processesWith(marker);
  for (let i = 0; i < 50 && n > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    n = processesWith(marker);
  }
  return n;
}


describe.skipIf(!IS_ROOT)('misbehaving builders on a small disk', () => {
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'lazystore-abuse-'));
    await chmod(root, 0o711); // builds run as a build user, which must traverse to the state dir
    state = join(root, 'state');
    drvDir = join(root, 'drvs');
    await mkdir(state);
    await mkdir(drvDir);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MIB}m`, 'tmpfs', state], { encoding: 'utf8' });
    if (m.status !== 0) throw new Error(`mount tmpfs: ${m.stderr}`);
    await open();
    await store.addFromDirectory(busyboxPath(), { path: busyboxPath() });
  });
  afterAll(async () => {
    spawnSync('umount', ['-l', state]);
    await rmdir(state).catch(() => {});
    await rm(root, { recursive: true, force: true });
  });

  it('fills the build dir until ENOSPC: BUILD_FAILED, the space comes back', async () => {
    const r = await build('fill-build-dir', 'dd if=/dev/zero of=/build/fill bs=1M count=200; echo never > $out');
    await expectCleanFailure(r, /^BUILD_FAILED$/);
    // the log shares the full disk: dd's 'No space left on device' may not make it into the log
    await expectHealthy();
  });

  it('fills the disk with its own output (ENOSPC while registering): nothing half-registered', async () => {
    const r = await build('fill-with-output', 'mkdir $out; dd if=/dev/zero of=$out/big bs=4k 2>/dev/null || true; exit 0');
    // dd stops at ENOSPC and the builder exits 0 with the disk full: registration has no room
    // for its narinfo; either it fails cleanly or it registers whole
    console.log(`output filling the disk: ${r.error ? `${r.error.code}: ${r.error.message.slice(0, 160)}` : 'registered'}`);
    if (r.error) await expectCleanFailure(r, /^(BUILD_|STORE_)/);
    if (r.error) expect(r.error.message).toMatch(/ENOSPC|No space/);
    else expect((await verifyStore(store, { checkContents: true })).problems).toEqual([]);
    if (!r.error) await store.delete(r.out);
    await expectHealthy();
  });

  it('floods its log (no log size limit): the log fills the disk, the build fails, the store survives', async () => {
    const r = await build('log-flood', 'yes aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; echo never > $out');
    await expectCleanFailure(r, /^BUILD_(FAILED|TIMEOUT)$/);
    const logSize = statSync(store.logPath(r.drvPath)).size;
    console.log(`log flood: log grew to ${(logSize / 2 ** 20).toFixed(1)} MiB of a ${TMPFS_MIB} MiB disk in ${r.ms.toFixed(0)} ms (${r.error!.code})`);
    expect(logSize).toBeGreaterThan(0);
    await rm(store.logPath(r.drvPath));
    await expectHealthy();
  });

  it('leaves 100 background processes behind and exits 0: they die with the sandbox', async () => {
    const marker = `abuse-bg-${process.pid}-${Date.now()}`;
    const r = await build('background', `for i in $(seq 100); do sh -c "sleep 1000; echo ${marker}" & done; echo done > $out`);
    expect(r.error).toBeUndefined();
    expect(await markerProcesses(marker)).toBe(0);
    expect(readFileSync(store.realPath(r.out), 'utf8')).toBe('done\n');
  });

  it('forks 100 processes and hangs: BUILD_TIMEOUT, the whole tree is killed', async () => {
    const marker = `abuse-hang-${process.pid}-${Date.now()}`;
    const r = await build('hang', `for i in $(seq 100); do sh -c "sleep 1000; echo ${marker}" & done; sleep 1000`);
    await expectCleanFailure(r, /^BUILD_TIMEOUT$/);
    expect(await markerProcesses(marker)).toBe(0);
  });

  it('exits 0 without creating its output: BUILD_NO_OUTPUT', async () => {
    const r = await build('no-output', 'echo I forgot');
    await expectCleanFailure(r, /^BUILD_NO_OUTPUT$/);
    await expectHealthy();
  });
});
