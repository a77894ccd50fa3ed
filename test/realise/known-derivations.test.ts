/**
 * KnownDerivations: what is recorded, verified and indexed; incremental adds that touch only
 * the input closure; refresh() picking up new files; inputSrcs imported from a Nix store.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { parseDerivation, serializeDerivation } from '../../src/nix/derivation.js';
import { drvStorePath } from '../../src/nix/derivation-hash.js';
import { parseStorePath } from '../../src/nix/store-path.js';
import { KnownDerivations } from '../../src/realise/known-derivations.js';
import { FIXTURES, drvFile, fixtureDrv, manifest } from '../helpers/fixtures.js';
import { busyboxPath, freshEnv, type Env } from './helpers.js';
import { rejection } from '../helpers/rejection.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});
async function env(): Promise<Env> {
  const e = await freshEnv();
  cleanup.push(e.cleanup);
  return e;
}
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'lazystore-known-'));
  cleanup.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

describe('KnownDerivations', () => {
  it('records a drv with its input derivations and indexes every output; persists across reopen', async () => {
    const e = await env();
    const c = fixtureDrv('chain.C');
    expect(await e.known.add(drvFile(c))).toBe(3); // C, B, A from the same directory
    const reopened = await KnownDerivations.open(e.dir, e.store);
    for (const label of ['chain.A', 'chain.B', 'chain.C']) {
      const d = fixtureDrv(label);
      expect(await reopened.has(d.drvPath)).toBe(true);
      expect(await reopened.lookupOutput(parseStorePath(d.outputs.out!.path))).toEqual({ drvPath: d.drvPath, outputName: 'out' });
    }
    const multi = fixtureDrv('multi');
    await reopened.add(drvFile(multi));
    expect(await reopened.lookupOutput(parseStorePath(multi.outputs.dev!.path))).toEqual({ drvPath: multi.drvPath, outputName: 'dev' });
    expect(await reopened.lookupOutput(parseStorePath('/nix/store/00000000000000000000000000000000-x'))).toBeUndefined();
    expect(await reopened.add(drvFile(c))).toBe(0);
  });

  it('refuses an input derivation that is neither known nor beside the drv', async () => {
    const e = await env();
    const dir = await tempDir();
    const c = fixtureDrv('chain.C');
    await copyFile(drvFile(c), join(dir, basename(c.drvPath)));
    expect((await rejection(e.known.add(join(dir, basename(c.drvPath))))).code).toBe('KNOWN_MISSING_INPUT');
    expect(await e.known.has(c.drvPath)).toBe(false);
  });

  it('refuses a drv whose contents do not hash to its name, or whose output paths are forged', async () => {
    const e = await env();
    const dir = await tempDir();
    const a = fixtureDrv('chain.A');
    const drv = parseDerivation(await readFile(drvFile(a)));
    drv.env.set('script', 'echo forged > $out');
    // (1) same name, other contents
    await writeFile(join(dir, basename(a.drvPath)), serializeDerivation(drv));
    expect((await rejection(e.known.add(join(dir, basename(a.drvPath))))).code).toBe('KNOWN_BAD_DRV');
    // (2) consistent name, but claiming chain.A's real output path
    const forged = drvStorePath(drv);
    await writeFile(join(dir, basename(forged)), serializeDerivation(drv));
    expect((await rejection(e.known.add(join(dir, basename(forged))))).code).toBe('KNOWN_BAD_DRV');
    expect(await e.known.lookupOutput(parseStorePath(a.outputs.out!.path))).toBeUndefined();
  });

  it('adding one drv next to thousands of others reads only its input closure', async () => {
    const e = await env();
    const dir = await tempDir();
    // 3000 files named like derivations whose contents are not derivations: reading any fails
    await Promise.all(
      Array.from({ length: 3000 }, (_, i) => writeFile(join(dir, `${String(i).padStart(32, '0').replace(/[eotu]/g, '1')}-junk-${i}.drv`), 'not a derivation')),
    );
    for (const label of ['chain.A', 'chain.B', 'chain.C']) await copyFile(drvFile(fixtureDrv(label)), join(dir, basename(fixtureDrv(label).drvPath)));
    expect(await e.known.add(join(dir, basename(fixtureDrv('chain.C').drvPath)))).toBe(3);
  });

  it('refresh() picks up .drv files written into an added directory later', async () => {
    const e = await env();
    const dir = await tempDir();
    await copyFile(drvFile(fixtureDrv('chain.A')), join(dir, basename(fixtureDrv('chain.A').drvPath)));
    expect(await e.known.add(dir)).toBe(1);
    expect(await e.known.refresh()).toBe(0);
    for (const label of ['chain.B', 'chain.C']) await copyFile(drvFile(fixtureDrv(label)), join(dir, basename(fixtureDrv(label).drvPath)));
    expect(await e.known.refresh()).toBe(2);
    expect(await e.known.lookupOutput(parseStorePath(fixtureDrv('chain.C').outputs.out!.path))).toBeDefined();
    // another process (reopened state) watches the same directory
    await mkdir(join(dir, 'sub'));
    const reopened = await KnownDerivations.open(e.dir, e.store);
    await copyFile(drvFile(fixtureDrv('single')), join(dir, basename(fixtureDrv('single').drvPath)));
    expect(await reopened.refresh()).toBe(1);
    // a lookup that misses refreshes once: a drv written meanwhile is found without refresh()
    await copyFile(drvFile(fixtureDrv('multi')), join(dir, basename(fixtureDrv('multi').drvPath)));
    expect(await reopened.lookupOutputFresh(parseStorePath(fixtureDrv('multi').outputs.dev!.path))).toEqual({
      drvPath: fixtureDrv('multi').drvPath,
      outputName: 'dev',
    });
  });

  it('imports inputSrcs found beside the drv in a Nix store, verified, byte-identical to Nix', async () => {
    const e = await env();
    expect(await e.store.isValid(busyboxPath())).toBe(false);
    await e.known.add(fixtureDrv('single').drvPath); // /nix/store/…drv: busybox sits beside it
    const info = await e.store.queryPathInfo(busyboxPath());
    expect(info).toBeDefined();
    expect(formatHash(info!.narHash, 'nix32')).toBe(manifest().busybox.narHash);
    // from a directory without busybox, nothing is imported (left to substituters)
    const other = await env();
    await other.known.add(join(FIXTURES, fixtureDrv('single').drvFile));
    expect(await other.store.isValid(busyboxPath())).toBe(false);
  });
});
