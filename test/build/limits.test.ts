/**
 * --max-log-size and --max-build-size on real bwrap builds of nix-instantiate'd derivations
 * (test/build/nix/limits.nix): a log flood is killed with BUILD_LOG_LIMIT, its log cut at the
 * limit plus a note, nothing registered and no builder process left; a /build flood hits the
 * tmpfs limit (BUILD_SIZE_LIMIT); an output over the limit is refused before registration;
 * a normal build (passAsFile, /build, /tmp) is unaffected by either limit.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDerivation } from '../../src/nix/derivation.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { Realiser } from '../../src/realise/realiser.js';
import { byteCount, openRealiserFromArgs } from '../../src/cli/open-realiser.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { freshEnv, instantiate, salt, type Env } from '../realise/helpers.js';
import { rejection } from '../helpers/rejection.js';
import { probeSections as sections } from './probe-sections.js';

const NIX = join(import.meta.dirname, 'nix', 'limits.nix');
const MAX_LOG = 256 * 1024;
const MAX_BUILD = 2 * 1024 * 1024;


/** Pids of processes whose environment holds `salt=<s>` (builders of that derivation). */
function buildersWithSalt(s: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(`salt=${s}`)) pids.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/**
 * Waits (up to 2 s) for those builders to be gone: bwrap exits as soon as it is killed, and the
 * kernel tears the sandbox's PID namespace down just after (measured: a few ms).
 */
async function buildersLeft(s: string): Promise<number[]> {
  let left = buildersWithSalt(s);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 20));
    left = buildersWithSalt(s);
  }
  return left;
}

describe('build limits', () => {
  let env: Env;
  let limited: Realiser;
  beforeAll(async () => {
    env = await freshEnv({ maxJobs: 2, failureTtlMs: 0 });
    limited = new Realiser(env.store, { known: env.known, maxJobs: 2, failureTtlMs: 0, maxLogSize: MAX_LOG, maxBuildSize: MAX_BUILD, timeoutMs: 60_000 });
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  async function drvOf(attr: string): Promise<{ drv: StorePath; out: StorePath; salt: string }> {
    const s = salt();
    const [drv] = instantiate(NIX, ['-A', attr, '--argstr', 'salt', s]);
    await env.known.add(drv!);
    const out = parseStorePath(parseDerivation(await readFile(drv!)).outputs.get('out')!.path);
    return { drv: drv!, out, salt: s };
  }

  it('kills a log flood near the limit: BUILD_LOG_LIMIT, log cut at the limit, nothing registered, no process left', async () => {
    const { drv, out, salt: s } = await drvOf('logFlood');
    const e = await rejection(limited.realiseDrv(drv));
    expect(e.code).toBe('BUILD_LOG_LIMIT');
    expect(e.message).toContain(`build of '${drv}'`);
    expect(e.message).toContain(`exceeded the maximum log size of ${MAX_LOG} bytes`);
    const log = await readFile(env.store.logPath(drv));
    const note = `\nlazystore: log truncated: the build exceeded the maximum log size of ${MAX_LOG} bytes and was killed\n`;
    expect(log.subarray(MAX_LOG).toString()).toBe(note);
    expect(log.subarray(0, MAX_LOG).toString()).toContain(`limits-flood ${s}`);
    expect(log.subarray(0, MAX_LOG).includes(0)).toBe(false); // no hole from a late write
    expect(await env.store.isValid(out)).toBe(false);
    expect(await buildersLeft(s)).toEqual([]);
  });

  it('maxLogSize 0 means no limit (the flood then runs until the timeout)', async () => {
    const { drv, salt: s } = await drvOf('logFlood');
    const unlimited = new Realiser(env.store, { known: env.known, failureTtlMs: 0, maxLogSize: 0, timeoutMs: 1500 });
    const e = await rejection(unlimited.realiseDrv(drv));
    expect(e.code).toBe('BUILD_TIMEOUT');
    const size = (await stat(env.store.logPath(drv))).size;
    if (process.env.LIMITS_DEBUG) console.log(`unlimited flood: ${size} bytes of log in 1.5 s`);
    expect(size).toBeGreaterThan(MAX_LOG);
    expect(await buildersLeft(s)).toEqual([]);
  });

  it('fails a /build flood at the tmpfs limit with BUILD_SIZE_LIMIT', async () => {
    const { drv, out } = await drvOf('buildFlood');
    const e = await rejection(limited.realiseDrv(drv));
    expect(e.code).toBe('BUILD_SIZE_LIMIT');
    expect(e.message).toContain(`${MAX_BUILD}-byte build directory`);
    expect(await readFile(env.store.logPath(drv), 'utf8')).toContain('No space left on device');
    expect(await env.store.isValid(out)).toBe(false);
    // the same derivation builds without the limit: it is the limit that stopped it
    expect((await env.realiser.realiseDrv(drv)).get('out')!.path).toBe(out);
  });

  it('refuses an output over the limit before registering it', async () => {
    const { drv, out } = await drvOf('bigOutput');
    const e = await rejection(limited.realiseDrv(drv));
    expect(e.code).toBe('BUILD_SIZE_LIMIT');
    expect(e.message).toContain(`maximum build size of ${MAX_BUILD} bytes`);
    expect(await env.store.isValid(out)).toBe(false);
  });

  it('leaves a normal build (passAsFile, /build, /tmp, a log) as it was', async () => {
    const { drv } = await drvOf('small');
    const a = (await limited.realiseDrv(drv)).get('out')!;
    expect(await readFile(join(env.store.realPath(a.path), 'text'), 'utf8')).toBe('passed as a file\n');
    expect(await readFile(env.store.logPath(drv), 'utf8')).toBe('log line\n');
    // same NAR as a build without limits (a fresh store so it is built again)
    const other = await freshEnv({ failureTtlMs: 0 });
    try {
      await other.known.add(drv);
      const b = (await other.realiser.realiseDrv(drv)).get('out')!;
      expect(b.narHash).toEqual(a.narHash);
      expect(b.narSize).toBe(a.narSize);
    } finally {
      await other.cleanup();
    }
  });

  it('takes both from the command line (REALISE_OPTIONS) through to the build', async () => {
    expect(byteCount('max-log-size', '256K', true)).toBe(262144);
    expect(byteCount('max-log-size', '0', true)).toBe(0);
    expect(byteCount('max-build-size', '2m', false)).toBe(2 * 1024 * 1024);
    for (const bad of ['0', '-1', '1.5M', 'lots', '']) expect(() => byteCount('max-build-size', bad, false)).toThrow(/--max-build-size must be/);
    const state = await mkdtemp(join(tmpdir(), 'lazystore-limits-cli-'));
    try {
      const { store, realiser } = await openRealiserFromArgs({ state, 'max-log-size': '256K', 'max-build-size': '2M' });
      const s = salt();
      const [flood] = instantiate(NIX, ['-A', 'logFlood', '--argstr', 'salt', s]);
      const [big] = instantiate(NIX, ['-A', 'bigOutput', '--argstr', 'salt', salt()]);
      await realiser.known!.add(flood!);
      await realiser.known!.add(big!);
      const e = await rejection(realiser.realiseDrv(flood!));
      expect(e.code).toBe('BUILD_LOG_LIMIT');
      expect((await stat(store.logPath(flood!))).size).toBeLessThan(262144 + 200);
      expect(await buildersLeft(s)).toEqual([]);
      expect((await rejection(realiser.realiseDrv(big!))).code).toBe('BUILD_SIZE_LIMIT');
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  });

  it('with --max-build-size the builder still sees what real Nix shows (probe.nix: id, env, /, /etc, pwd)', async () => {
    const [drv] = instantiate(join(FIXTURES, 'nix', 'probe.nix'), ['--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const out = (await limited.realiseDrv(drv!)).get('out')!.path;
    const ours = sections(await readFile(env.store.realPath(out), 'utf8'));
    const nix = sections(await readFile(join(FIXTURES, 'sandbox-env.txt'), 'utf8'));
    const volatile = (l: string): boolean => l.startsWith('out=') || l.startsWith('salt=');
    expect(ours.get('env')!.filter((l) => !volatile(l))).toEqual(nix.get('env')!.filter((l) => !volatile(l)));
    for (const k of ['id', '/etc', '/etc/passwd', '/etc/group', 'hostname', 'pwd']) expect(ours.get(k), k).toEqual(nix.get(k));
    // `ls -la /`'s build entry: same mode and owner as Nix's (a 0700 tmpfs owned by nixbld)
    const buildEntry = (m: Map<string, string[]>): string | undefined => {
      const f = m.get('ls -la /')!.find((l) => l.endsWith(' build'))?.split(/\s+/);
      return f && [f[0], f[2], f[3]].join(' ');
    };
    expect(buildEntry(ours)).toBe(buildEntry(nix));
  });
});
