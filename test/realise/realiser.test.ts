/**
 * The realiser's promises: one build per path however many callers, a global bound on
 * concurrent builds, failures reaching every waiter and remembered for a TTL, one waiter's
 * cancellation leaving the others' job alone, cycles failing instead of hanging, plan()
 * answering without work, substitution before building.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { formatHash } from '../../src/nix/hash.js';
import { hashPart, parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import type { ProgressEvent } from '../../src/realise/progress.js';
import { openBinaryCache } from '../../src/substitute/binary-cache.js';
import { Substituters } from '../../src/substitute/substituters.js';
import { FIXTURES, fixtureDrv, manifest } from '../helpers/fixtures.js';
import { busyboxPath, freshEnv, instantiate, salt, type Env } from './helpers.js';
import { rejection } from '../helpers/rejection.js';

const NIX = join(import.meta.dirname, 'nix', 'realise.nix');
const envs: Env[] = [];
afterEach(async () => {
  for (const e of envs.splice(0)) await e.cleanup();
});
async function env(opts: Parameters<typeof freshEnv>[0] = {}): Promise<Env> {
  const e = await freshEnv(opts);
  envs.push(e);
  return e;
}
function record(e: Env): ProgressEvent[] {
  const events: ProgressEvent[] = [];
  e.realiser.onProgress((ev) => events.push(ev));
  return events;
}
async function outPath(e: Env, drv: StorePath, name = 'out'): Promise<StorePath> {
  return parseStorePath((await e.known.load(drv)).outputs.get(name)!.path);
}
const starts = (events: ProgressEvent[], drv?: string): number => events.filter((x) => x.type === 'started' && (drv === undefined || x.drvPath === drv)).length;

describe('Realiser', () => {
  it('100 concurrent realise() calls of one path run one build and all get its PathInfo', async () => {
    const e = await env();
    const [drv] = instantiate(NIX, ['-A', 'slow', '--argstr', 'salt', salt()]);
    await e.known.add(drv!);
    const events = record(e);
    const p = await outPath(e, drv!);
    const infos = await Promise.all(Array.from({ length: 100 }, () => e.realiser.realise(p)));
    expect(starts(events)).toBe(1);
    expect(new Set(infos.map((i) => formatHash(i.narHash)))).toHaveProperty('size', 1);
    expect(infos.every((i) => i.path === p)).toBe(true);
  });

  it('requests for different outputs of one derivation share one build', async () => {
    const e = await env();
    const [drv] = instantiate(NIX, ['-A', 'twoOutputs', '--argstr', 'salt', salt()]);
    await e.known.add(drv!);
    const events = record(e);
    const [out, doc] = await Promise.all([
      e.realiser.realise(await outPath(e, drv!, 'out')),
      e.realiser.realise(await outPath(e, drv!, 'doc')),
      e.realiser.realiseDrv(drv!),
    ]);
    expect(starts(events)).toBe(1);
    expect(await readFile(e.store.realPath(out.path), 'utf8')).toBe('out\n');
    expect(await readFile(e.store.realPath(doc.path), 'utf8')).toBe('doc\n');
  });

  it.each([1, 3])('never runs more than maxJobs=%i builds at once, with many concurrent callers (dag50)', async (maxJobs) => {
    const e = await env({ maxJobs });
    const events = record(e);
    const dag = manifest().derivations.filter((d) => d.label.startsWith('dag50.'));
    const root = fixtureDrv('dag50.root');
    await e.known.add(root.drvPath);
    // count live sandboxes independently of the realiser's own bookkeeping
    let maxProcs = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        maxProcs = Math.max(maxProcs, bwrapChildren());
        await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      await Promise.all(dag.flatMap((d) => Object.values(d.outputs).map((o) => e.realiser.realise(parseStorePath(o.path)))));
    } finally {
      sampling = false;
      await sampler;
    }
    // counts.running = sandboxes running (set-up and registration happen outside the bound)
    let maxRunning = 0;
    for (const ev of events) {
      if (ev.kind !== 'build') continue;
      maxRunning = Math.max(maxRunning, ev.counts.running);
      expect(ev.counts.running).toBeLessThanOrEqual(maxJobs);
    }
    expect(starts(events)).toBe(dag.length);
    expect(maxRunning).toBe(maxJobs);
    expect(maxProcs).toBeGreaterThanOrEqual(1); // the sampler saw sandboxes at all
    expect(maxProcs).toBeLessThanOrEqual(maxJobs);
  });

  it('a failure reaches every waiter (with the failing drv and its log), dependents included, and is remembered for the TTL', async () => {
    const e = await env({ failureTtlMs: 1500 });
    const events = record(e);
    const [broken, dependent] = instantiate(NIX, ['-A', 'broken', '-A', 'dependent', '--argstr', 'salt', salt()]);
    await e.known.add(dependent!);
    const errs = await Promise.all([
      rejection(e.realiser.realise(await outPath(e, broken!))),
      rejection(e.realiser.realise(await outPath(e, broken!))),
      rejection(e.realiser.realise(await outPath(e, dependent!))),
    ]);
    for (const err of errs) {
      expect(err.code).toBe('BUILD_FAILED');
      expect(err.details.drvPath).toBe(broken);
      expect(err.details.logPath).toBe(e.store.logPath(broken!));
    }
    expect(await readFile(e.store.logPath(broken!), 'utf8')).toBe('broken on purpose\n');
    expect(starts(events)).toBe(1);
    expect(events.filter((x) => x.type === 'failed')).toHaveLength(1);
    // within the TTL: answered from memory, no new build
    expect((await rejection(e.realiser.realise(await outPath(e, dependent!)))).details.drvPath).toBe(broken);
    expect(starts(events)).toBe(1);
    // after it: tried again
    await new Promise((r) => setTimeout(r, 1600));
    expect((await rejection(e.realiser.realise(await outPath(e, broken!)))).code).toBe('BUILD_FAILED');
    expect(starts(events)).toBe(2);
  });

  it("cancelling one waiter does not cancel the build another waits for", async () => {
    const e = await env();
    const events = record(e);
    const [drv] = instantiate(NIX, ['-A', 'slow', '--argstr', 'salt', salt()]);
    await e.known.add(drv!);
    const p = await outPath(e, drv!);
    const ac = new AbortController();
    const a = e.realiser.realise(p, { signal: ac.signal });
    const b = e.realiser.realise(p);
    setTimeout(() => ac.abort(), 300);
    expect(isLazyError(await rejection(a), 'ABORTED')).toBe(true);
    const info = await b;
    expect(info.path).toBe(p);
    expect(starts(events)).toBe(1);
    expect(events.some((x) => x.type === 'finished' && x.drvPath === drv)).toBe(true);
  });

  it('a dependency cycle (forged index) fails with REALISE_CYCLE instead of hanging', async () => {
    const e = await env();
    // the fixture copies in /tmp/nix-reference/drvs have no busybox beside them: it stays invalid
    const single = fixtureDrv('single');
    await e.known.add(join(FIXTURES, single.drvFile));
    expect(await e.store.isValid(busyboxPath())).toBe(false);
    // claim that `single` produces busybox, its own input
    await symlink(`${single.drvPath.slice(11)}!out`, join(e.known.dir, 'by-output', hashPart(busyboxPath())));
    const err = await rejection(e.realiser.realise(parseStorePath(single.outputs.out!.path)));
    expect(err.code).toBe('REALISE_CYCLE');
  });

  it('plan() says what realise() would do, without doing it', async () => {
    const e = await env();
    const single = fixtureDrv('single');
    const flat = fixtureDrv('fod.flat');
    const rec = fixtureDrv('fod.recursive');
    for (const d of [single, flat, rec]) await e.known.add(d.drvPath);
    const events = record(e);
    expect(await e.realiser.plan(busyboxPath())).toEqual({ kind: 'valid' });
    expect(await e.realiser.plan(parseStorePath(single.outputs.out!.path))).toEqual({ kind: 'build' });
    expect(await e.realiser.plan(parseStorePath(flat.outputs.out!.path))).toEqual({ kind: 'build', typeHint: 'regular' });
    expect(await e.realiser.plan(parseStorePath(rec.outputs.out!.path))).toEqual({ kind: 'build' });
    expect(await e.realiser.plan(parseStorePath('/nix/store/00000000000000000000000000000000-nothing'))).toBeUndefined();
    expect(events).toEqual([]);
    expect(await e.store.isValid(parseStorePath(single.outputs.out!.path))).toBe(false);

    const cached = await env({ substituters: new Substituters([await openBinaryCache(`file://${FIXTURES}/cache`)], { requireSigs: false }) });
    expect(await cached.realiser.plan(parseStorePath(single.outputs.out!.path))).toEqual({ kind: 'substitute' });
  });

  it('substitutes (references first) before it would build, and says REALISE_NOT_FOUND otherwise', async () => {
    const subst = new Substituters([await openBinaryCache(`file://${FIXTURES}/cache`)], { requireSigs: false });
    const e = await env({ substituters: subst });
    const c = fixtureDrv('chain.C');
    await e.known.add(c.drvPath);
    const events = record(e);
    const info = await e.realiser.realise(parseStorePath(c.outputs.out!.path));
    expect(formatHash(info.narHash)).toBe(c.outputs.out!.narHash);
    expect(starts(events, undefined)).toBe(events.filter((x) => x.type === 'started' && x.kind === 'substitute').length);
    expect(await e.store.isValid(parseStorePath(fixtureDrv('chain.A').outputs.out!.path))).toBe(true);
    const err = await rejection(e.realiser.realise(parseStorePath('/nix/store/00000000000000000000000000000000-nothing')));
    expect(err.code).toBe('REALISE_NOT_FOUND');
    // a derivation whose outputs the cache has is substituted, not built
    const multi = fixtureDrv('multi');
    await e.known.add(multi.drvPath);
    const outs = await e.realiser.realiseDrv(parseStorePath(multi.drvPath));
    expect([...outs.values()].map((i) => i.path).sort()).toEqual(Object.values(multi.outputs).map((o) => o.path).sort());
    expect(events.filter((x) => x.kind === 'build')).toEqual([]);
  });

  it('falls back to building when a cache fails: a corrupt NAR, or a narinfo it cannot parse', async () => {
    // a copy of the signed uncompressed cache: chain A's NAR has a flipped byte, chain B's narinfo is garbage
    const dir = await mkdtemp(join(tmpdir(), 'lazystore-badcache-'));
    try {
      await cp(join(FIXTURES, 'cache-none-signed'), dir, { recursive: true });
      const a = fixtureDrv('chain.A');
      const b = fixtureDrv('chain.B');
      const aInfo = await readFile(join(dir, `${hashPart(parseStorePath(a.outputs.out!.path))}.narinfo`), 'utf8');
      const nar = join(dir, /^URL: (.*)$/m.exec(aInfo)![1]!);
      const bytes = await readFile(nar);
      bytes[bytes.length - 20]! ^= 0xff;
      await chmod(nar, 0o644);
      await writeFile(nar, bytes);
      await writeFile(join(dir, `${hashPart(parseStorePath(b.outputs.out!.path))}.narinfo`), 'StorePath: not a path\n');

      const e = await env({ substituters: new Substituters([await openBinaryCache(`file://${dir}`)], { requireSigs: false }) });
      const c = fixtureDrv('chain.C');
      await e.known.add(c.drvPath);
      const events = record(e);
      const info = await e.realiser.realise(parseStorePath(c.outputs.out!.path));
      expect(formatHash(info.narHash)).toBe(c.outputs.out!.narHash);
      const infoB = await e.realiser.realise(parseStorePath(b.outputs.out!.path));
      expect(formatHash(infoB.narHash)).toBe(b.outputs.out!.narHash);
      // C came from the cache; A and B could not (C references only A): built, with Nix's bytes
      const built = events.filter((x) => x.type === 'finished' && x.kind === 'build').map((x) => x.drvPath);
      expect(built).toEqual(expect.arrayContaining([a.drvPath, b.drvPath]));
      const infoA = await e.store.queryPathInfo(parseStorePath(a.outputs.out!.path));
      expect(infoA && formatHash(infoA.narHash)).toBe(a.outputs.out!.narHash);

      // with nothing to build it from, the cache's own error is what the caller sees
      const bare = await env({ substituters: new Substituters([await openBinaryCache(`file://${dir}`)], { requireSigs: false }) });
      const err = await rejection(bare.realiser.realise(parseStorePath(a.outputs.out!.path)));
      expect(err.code).toBe('STORE_NAR_HASH_MISMATCH');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/**
 * Live bwrap processes that are children of this process (any thread of it). Synchronous
 * /proc reads (a few µs each), so a sample fits between two turns of the event loop and a
 * ~10 ms sandbox is seen even on a loaded machine (the async version missed them all at load 28).
 */
function bwrapChildren(): number {
  const read = (f: string): string => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  let n = 0;
  for (const t of readdirSync(`/proc/${process.pid}/task`)) {
    const kids = read(`/proc/${process.pid}/task/${t}/children`).split(' ').filter((k) => k !== '');
    for (const k of kids) if (read(`/proc/${k}/comm`).trim() === 'bwrap') n++;
  }
  return n;
}
