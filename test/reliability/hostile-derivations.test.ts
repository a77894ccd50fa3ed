/**
 * Hostile derivations, crafted byte by byte (valid ATerm, consistent store paths where the
 * attack needs them): each is refused with a LazyError and a clear message, nothing is
 * registered, no scratch is left, and — where the refusal can come first — no sandbox starts
 * (no log file is opened). The Nix-built control derivation builds in the same store.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLazyError, type LazyError } from '../../src/errors.js';
import type { Derivation } from '../../src/nix/derivation.js';
import { baseName, parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { fixtureDrv, manifest } from '../helpers/fixtures.js';
import { baseDrv, craft } from './craft-drv.js';
import { busyboxPath, freshEnv, type Env } from '../realise/helpers.js';

const single = fixtureDrv('single');
const base = baseDrv;
const craftHere = (drv: Derivation, opts?: { fixPaths?: boolean }): Promise<StorePath> => craft(dir, drv, opts);

let env: Env;
let dir: string;

/**
 * Build scratch still in tmp/ (the per-store sandbox-etc stays by design). Removal is not
 * awaited by the builder, so this waits for it, up to 10 s.
 */
async function scratchLeft(): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < 100; i++) {
    left = (await readdir(join(env.dir, 'tmp'))).filter((n) => !n.includes('sandbox-etc'));
    if (left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return left;
}

async function refusal(p: Promise<unknown>): Promise<LazyError> {
  try {
    await p;
  } catch (e) {
    if (isLazyError(e)) return e;
    throw new Error(`refused with a non-LazyError: ${String(e)}`, { cause: e });
  }
  throw new Error('accepted a hostile derivation');
}

/** Adds and builds; returns the refusal, after checking nothing of it is left in the store. */
async function refused(drvPath: StorePath, outs: string[]): Promise<LazyError> {
  const e = await refusal((async () => {
    await env.known.add(join(dir, baseName(drvPath)));
    await env.realiser.realiseDrv(drvPath);
  })());
  for (const o of outs) if (o.startsWith('/nix/store/')) expect(await env.store.isValid(parseStorePath(o))).toBe(false);
  expect(await scratchLeft()).toEqual([]);
  return e;
}

describe('hostile derivations', () => {
  beforeAll(async () => {
    env = await freshEnv({ maxJobs: 2, failureTtlMs: 0 });
    dir = await mkdtemp(join(tmpdir(), 'lazystore-hostile-'));
    await env.store.addFromDirectory(busyboxPath(), { path: busyboxPath() });
  });
  afterAll(async () => {
    await env.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('control: the fixture derivation, re-crafted, builds to the path and bytes Nix made', async () => {
    const drvPath = await craftHere(base());
    expect(drvPath).toBe(single.drvPath);
    await env.known.add(join(dir, baseName(drvPath)));
    const out = (await env.realiser.realiseDrv(drvPath)).get('out')!;
    expect(out.path).toBe(single.outputs.out!.path);
    expect(out.narSize).toBe(single.outputs.out!.narSize);
  });

  // '..' and '.' are legal output names (the path is <hash>-fixture-single-.., as in Nix 2.8): no escape
  it.each(['../x', 'a/b', '', 'x\0y'])('an output named %j is refused before anything runs', async (name) => {
    const drv = base();
    drv.outputs.set(name, { path: single.outputs.out!.path, hashAlgo: '', hash: '' });
    drv.env.set(name, single.outputs.out!.path);
    const e = await refusal((async () => {
      const p = await craftHere(drv);
      await env.known.add(join(dir, baseName(p)));
      await env.realiser.realiseDrv(p);
    })());
    expect(e.code).toMatch(/^(DRV_|PATH_|KNOWN_)/);
    expect(e.message.length).toBeGreaterThan(10);
  });

  it.each([
    ['a NUL in an env value', (d: Derivation) => d.env.set('evil', 'a\0b')],
    ['a NUL in an env name', (d: Derivation) => d.env.set('ev\0il', 'x')],
    ["an '=' in an env name", (d: Derivation) => d.env.set('PATH=/x', 'x')],
    ['an empty env name', (d: Derivation) => d.env.set('', 'x')],
  ])('%s: BUILD_BAD_ENV before the sandbox starts (no log opened)', async (_, mutate) => {
    const drv = base();
    drv.env.set('salt', `bad-env-${Math.random()}`);
    mutate(drv);
    drv.env = new Map([...drv.env].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const p = await craftHere(drv);
    const e = await refused(p, [...drv.outputs.values()].map((o) => o.path));
    expect(e.code).toBe('BUILD_BAD_ENV');
    expect(existsSync(env.store.logPath(p))).toBe(false);
  });

  it('a NUL in a builder argument: refused with a LazyError before the sandbox starts', async () => {
    const drv = base();
    drv.args = [...drv.args, 'a\0b'];
    drv.env.set('salt', `nul-arg-${Math.random()}`);
    const p = await craftHere(drv);
    const e = await refused(p, [...drv.outputs.values()].map((o) => o.path));
    expect(e.code).toMatch(/^BUILD_/);
    expect(e.message).toMatch(/NUL|argument/i);
  });

  it.each([
    ['a host path', '/bin/sh'],
    ['a relative path', '../../../bin/sh'],
    ['a store path outside the closure', `${manifest().derivations.find((d) => d.label === 'chain.A')!.outputs.out!.path}`],
  ])('a builder that is %s: BUILD_FAILED naming the drv, log says why, nothing registered', async (_, builder) => {
    const drv = base();
    drv.builder = builder;
    drv.env.set('builder', builder);
    drv.env.set('salt', `builder-${Math.random()}`);
    const p = await craftHere(drv);
    const e = await refused(p, [...drv.outputs.values()].map((o) => o.path));
    expect(e.code).toBe('BUILD_FAILED');
    expect(e.message).toContain(p);
    expect(readFileSync(env.store.logPath(p), 'utf8')).toMatch(/No such file|not found|Permission denied/i);
  });

  it('absurd sizes: a 1 MiB env value and 20,000 env entries fail cleanly (E2BIG in the sandbox, or the argument cap of bwrap), nothing registered', async () => {
    for (const mutate of [
      (d: Derivation) => d.env.set('huge', 'x'.repeat(1 << 20)),
      (d: Derivation) => { for (let i = 0; i < 20_000; i++) d.env.set(`v${String(i).padStart(6, '0')}`, 'y'.repeat(100)); },
    ]) {
      const drv = base();
      drv.env.set('salt', `absurd-${Math.random()}`);
      mutate(drv);
      drv.env = new Map([...drv.env].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      const p = await craftHere(drv);
      const e = await refused(p, [...drv.outputs.values()].map((o) => o.path));
      expect(e.code).toBe('BUILD_FAILED');
      expect(readFileSync(env.store.logPath(p), 'utf8')).toMatch(/Argument list too long|Exceeded maximum number of arguments/);
    }
  });

  it('an output path that does not match the derivation is refused at add (KNOWN_BAD_DRV)', async () => {
    const drv = base();
    drv.env.set('salt', `wrong-path-${Math.random()}`);
    const p = await craftHere(drv, { fixPaths: false }); // keeps the fixture's output path
    const e = await refusal(env.known.add(join(dir, baseName(p))));
    expect(e.code).toBe('KNOWN_BAD_DRV');
    expect(await env.known.lookupOutput(parseStorePath(single.outputs.out!.path))).not.toEqual({ drvPath: p, outputName: 'out' });
  });
});
