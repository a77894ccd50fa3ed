/**
 * Several lazystore processes adding the same path at once: one wins, every one of them sees
 * the path valid with the winner's metadata, and the contents on disk are the winner's.
 */
import { createWriteStream, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { LocalStore } from '../../src/store/local-store.js';
import { removeTree } from '../../src/store/remove-tree.js';
import { scanPath } from '../../src/store/scan-path.js';
import { verifyStore } from '../../src/store/verify-store.js';
import { buildPrivateDist, removePrivateDist, startStoreChild, type ChildResult } from './store-child.js';
import { expectedInfo, fixtureOutputs, nixDump, tempStateDir } from './store-fixtures.js';

let dist: string;
let work: string;
const nars = new Map<StorePath, string>();
// Paths of a few shapes: a directory tree, a single file (flat FOD), a recursive FOD.
const sample = [...fixtureOutputs().values()]
  .filter((o) => /fixture-(single|fod-flat|fod-rec)/.test(o.path))
  .map((o) => parseStorePath(o.path));

beforeAll(async () => {
  dist = buildPrivateDist();
  work = tempStateDir('concurrency');
  for (const p of sample) {
    const f = join(work, `${p.slice(44)}.nar`);
    await pipeline(nixDump(p), createWriteStream(f));
    nars.set(p, f);
  }
});
afterAll(async () => {
  removePrivateDist(dist);
  await removeTree(work);
});

function narArgs(state: string, p: StorePath): Record<string, unknown> {
  const e = expectedInfo(p);
  return { op: 'nar', state, narFile: nars.get(p), path: p, narHash: formatHash(e.narHash), narSize: e.narSize, references: e.references };
}

async function expectConsistent(state: string): Promise<LocalStore> {
  const store = await LocalStore.open(state);
  expect(readdirSync(store.layout.tmpDir)).toEqual([]);
  const result = await verifyStore(store, { checkContents: true });
  expect(result.problems).toEqual([]);
  return store;
}

describe('processes adding the same path at once', () => {
  it('4 processes × 3 rounds × 3 paths from NAR: all succeed with the same info, one copy on disk', async () => {
    expect(sample.length).toBe(3);
    for (let round = 0; round < 3; round++) {
      const state = join(work, `nar-${round}`);
      const children = sample.flatMap((p) => [0, 1, 2, 3].map(() => ({ p, child: startStoreChild(dist, narArgs(state, p)) })));
      for (const { p, child } of children) {
        const r: ChildResult = await child.done;
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toEqual({ path: p, narHash: formatHash(expectedInfo(p).narHash), narSize: expectedInfo(p).narSize });
      }
      const store = await expectConsistent(state);
      expect(await store.listValid()).toEqual([...sample].sort());
    }
  });

  it('different contents for one path (a nondeterministic build run twice): the first registration wins everywhere', async () => {
    const state = join(work, 'nondet');
    const p = parseStorePath('/nix/store/22222222222222222222222222222222-nondeterministic');
    const contents = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];
    const children = contents.map((content) => startStoreChild(dist, { op: 'register-file', state, path: p, content }));
    const results = await Promise.all(children.map((c) => c.done));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const hashes = new Set(results.map((r) => (JSON.parse(r.stdout) as { narHash: string }).narHash));
    expect(hashes.size).toBe(1);
    const store = await expectConsistent(state);
    const info = (await store.queryPathInfo(p))!;
    expect(hashes).toEqual(new Set([formatHash(info.narHash)]));
    expect(contents).toContain(readFileSync(store.realPath(p), 'utf8'));
    expect(formatHash((await scanPath(store.realPath(p))).narHash)).toBe(formatHash(info.narHash));
  });

  it('a second writer waits for the lock holder, and takes over the moment the holder is SIGKILLed', async () => {
    const state = join(work, 'takeover');
    const p = parseStorePath('/nix/store/33333333333333333333333333333333-takeover');
    const holder = startStoreChild(dist, { op: 'register-file', state, path: p, content: 'holder' }, { pauseAt: 'register:before-commit' });
    await holder.paused;
    const waiter = startStoreChild(dist, { op: 'register-file', state, path: p, content: 'waiter' }, { trace: true });
    await waiter.waitFor('lazystore: at register:lock-wait');
    // The waiter is queued on the holder's lock: it cannot reach the rename while the holder lives.
    await sleep(300);
    expect(waiter.stderr()).not.toContain('register:before-rename');
    holder.proc.kill('SIGKILL');
    const r = await waiter.done;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('lazystore: at register:before-commit');
    const store = await expectConsistent(state);
    expect(readFileSync(store.realPath(p), 'utf8')).toBe('waiter');
  });

  it('the path lock excludes: 4 processes × 40 read-modify-writes of one counter lose no update', async () => {
    const state = join(work, 'counter');
    await LocalStore.open(state);
    writeFileSync(join(state, 'counter'), '0');
    const children = [0, 1, 2, 3].map(() => startStoreChild(dist, { op: 'count', state, times: 40 }));
    for (const c of children) {
      const r = await c.done;
      expect(r.code, r.stderr).toBe(0);
    }
    expect(readFileSync(join(state, 'counter'), 'utf8')).toBe('160');
  });

  it('tasks of one process adding the same path at once also get one registration', async () => {
    const state = join(work, 'in-process');
    const store = await LocalStore.open(state);
    const p = sample[0]!;
    const infos = await Promise.all([0, 1, 2, 3, 4, 5].map(() => store.addFromNar(nixDump(p), expectedInfo(p))));
    for (const info of infos) expect(formatHash(info.narHash)).toBe(formatHash(expectedInfo(p).narHash));
    await expectConsistent(state);
  });
});
