/**
 * The StoreView without a mount, over the real store and realiser: root entries answer at once
 * (a guess while the build runs), waits happen one level down, a wrong guess is ESTALE once.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S_IFDIR, S_IFMT, S_IFREG } from '../../src/fuse/attrs.js';
import { StoreView } from '../../src/fuse/store-view.js';
import { KnownDerivations } from '../../src/realise/known-derivations.js';
import type { ProgressEvent } from '../../src/realise/progress.js';
import { Realiser } from '../../src/realise/realiser.js';
import { LocalStore } from '../../src/store/local-store.js';
import { fixtureDrv } from '../helpers/fixtures.js';
import { freshDrvs } from './mount-helpers.js';

describe('StoreView', () => {
  let state: string;
  let view: StoreView;
  let store: LocalStore;
  const events: ProgressEvent[] = [];
  const cancel = new AbortController();
  let fresh: Awaited<ReturnType<typeof freshDrvs>>;
  const mountPath = (p: string, rest = '') => p.slice('/nix/store'.length) + rest;

  beforeAll(async () => {
    fresh = await freshDrvs({ 'view-forever': 'sleep 600; mkdir $out', 'view-file': 'echo content > $out' });
    state = await mkdtemp(join(tmpdir(), 'lazystore-view-'));
    store = await LocalStore.open(state);
    const known = await KnownDerivations.open(state, store);
    const realiser = new Realiser(store, { known, maxJobs: 2 });
    realiser.onProgress((e) => events.push(e));
    for (const f of Object.values(fresh)) await known.add(f.drvPath);
    await known.add(fixtureDrv('fod.flat').drvPath);
    view = new StoreView({ store, realiser, signal: cancel.signal });
  }, 120_000);

  afterAll(async () => {
    cancel.abort();
    await view?.close();
    if (state) await rm(state, { recursive: true, force: true });
  });

  it('answers a root lookup with a guess while the build runs, and starts the build', async () => {
    const p = fresh['view-forever']!;
    const st = await view.getattr(mountPath(p.out));
    expect(st.mode & S_IFMT).toBe(S_IFDIR);
    while (!events.some((e) => e.type === 'started' && e.drvPath === p.drvPath)) await new Promise((r) => setTimeout(r, 20));
    expect(view.status().realising.map((r) => r.path)).toContain(p.out);
    expect(events.some((e) => e.type === 'finished' && e.drvPath === p.drvPath)).toBe(false);
  });

  it('guesses a regular file of size 0 for a flat fixed-output path', async () => {
    const st = await view.getattr(mountPath(fixtureDrv('fod.flat').outputs.out!.path));
    expect(st.mode & S_IFMT).toBe(S_IFREG);
    expect(st.size).toBe(0);
  });

  it('ENOENT for names that are not realisable or not store paths', async () => {
    await expect(view.getattr('/00000000000000000000000000000000-nothing')).rejects.toMatchObject({ code: 'FUSE_NOT_FOUND' });
    await expect(view.getattr('/hello')).rejects.toMatchObject({ code: 'FUSE_NOT_FOUND' });
  });

  it('waits one level down, and corrects a wrong guess with ESTALE once', async () => {
    const p = fresh['view-file']!;
    expect((await view.getattr(mountPath(p.out))).mode & S_IFMT).toBe(S_IFDIR); // the guess
    await expect(view.getattr(mountPath(p.out, '/x'))).rejects.toMatchObject({ code: 'FUSE_NOT_DIR' }); // waited for the build
    await expect(view.opendir(mountPath(p.out))).rejects.toMatchObject({ code: 'FUSE_STALE' });
    const real = await view.getattr(mountPath(p.out)); // the kernel's revalidating lookup
    expect(real).toMatchObject({ mode: S_IFREG | 0o444, size: 8, nlink: 1, uid: 0, mtime: 1000 });
    const h = await view.open(mountPath(p.out), 0);
    const buf = Buffer.alloc(64);
    expect(buf.subarray(0, await view.handles.read(h, buf, 64, 0)).toString()).toBe('content\n');
    await view.handles.release(h);
    await expect(view.open(mountPath(p.out), 1)).rejects.toMatchObject({ code: 'FUSE_READ_ONLY' });
  });
});
