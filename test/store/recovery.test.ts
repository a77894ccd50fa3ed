/**
 * Crash recovery with real leftovers: entries made by hand as a crashed writer leaves them, and
 * real lazystore processes SIGKILLed at each point of the write path (LAZYSTORE_TEST_PAUSE_AT).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { baseName, hashPart, parseStorePath } from '../../src/nix/store-path.js';
import { LocalStore } from '../../src/store/local-store.js';
import { ownerToken } from '../../src/store/process-owner.js';
import { removeTree } from '../../src/store/remove-tree.js';
import { scanPath } from '../../src/store/scan-path.js';
import { manifest } from '../helpers/fixtures.js';
import { buildPrivateDist, removePrivateDist, startStoreChild } from './store-child.js';
import { expectedInfo, importFromHost, nixDump, pathsOfLabel, tempStateDir } from './store-fixtures.js';

const single = parseStorePath(manifest().derivations.find((d) => d.label === 'single')!.outputs.out!.path);
const chainA = parseStorePath(pathsOfLabel('chain.A')[0]!);
let dist: string;
let work: string;
let narFile: string;

beforeAll(async () => {
  dist = buildPrivateDist();
  work = tempStateDir('recovery');
  narFile = join(work, 'single.nar');
  await pipeline(nixDump(single), createWriteStream(narFile));
});
afterAll(async () => {
  removePrivateDist(dist);
  await removeTree(work);
});

/** A pid that certainly belongs to no running process: a child that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

function narArgs(state: string): Record<string, unknown> {
  const e = expectedInfo(single);
  return { op: 'nar', state, narFile, path: single, narHash: formatHash(e.narHash), narSize: e.narSize, references: e.references };
}

describe('recovery at open', () => {
  it('removes scratch of dead processes, half-written narinfo drafts and unregistered store entries; keeps the rest', async () => {
    const state = join(work, 'by-hand');
    const store = await LocalStore.open(state);
    await importFromHost(store, [chainA]);
    const { tmpDir, storeDir } = store.layout;
    const dead = `${deadPid()}.12345`;
    // An import scratch directory of a dead process, read-only inside like a restored tree.
    const deadImport = join(tmpDir, `${dead}.0abcd-nar-thing`);
    mkdirSync(join(deadImport, 'nar', 'sub'), { recursive: true });
    writeFileSync(join(deadImport, 'nar', 'sub', 'f'), 'x');
    chmodSync(join(deadImport, 'nar', 'sub'), 0o555);
    chmodSync(join(deadImport, 'nar'), 0o555);
    // A narinfo draft cut off mid-write, for a path that never became valid.
    writeFileSync(join(tmpDir, `${dead}.1-narinfo-${hashPart(single)}`), `StorePath: ${single}\nURL: nar/x.nar\nNarHa`);
    // Renamed into store/, crashed before the narinfo.
    mkdirSync(join(storeDir, baseName(single)));
    writeFileSync(join(storeDir, baseName(single), 'partial'), 'x');
    chmodSync(join(storeDir, baseName(single)), 0o555);
    // Ours (a live owner) and a name recovery cannot attribute: both kept.
    const live = await store.makeTempDir('live');
    mkdirSync(join(tmpDir, 'not-an-owner-token'));

    const reopened = await LocalStore.open(state);
    expect(reopened.recovery.removedTemp.sort()).toEqual([`${dead}.0abcd-nar-thing`, `${dead}.1-narinfo-${hashPart(single)}`]);
    expect(reopened.recovery.removedInvalid).toEqual([baseName(single)]);
    expect(readdirSync(tmpDir).sort()).toEqual([live.slice(tmpDir.length + 1), 'not-an-owner-token'].sort());
    expect(await reopened.isValid(single)).toBe(false);
    expect(existsSync(join(storeDir, baseName(single)))).toBe(false);
    expect(await reopened.isValid(chainA)).toBe(true);
    expect(readdirSync(storeDir)).toEqual([baseName(chainA)]);
    // The path can be added normally afterwards.
    const info = await reopened.addFromNar(nixDump(single), expectedInfo(single));
    expect(formatHash(info.narHash)).toBe(formatHash(expectedInfo(single).narHash));
    expect(ownerToken()).toMatch(/^\d+\.\d+$/);
  });
});

describe('recovery by several processes at once', () => {
  it('4 processes opening one store full of leftovers all succeed, and every leftover is gone', async () => {
    const state = join(work, 'many-openers');
    const store = await LocalStore.open(state);
    const dead = `${deadPid()}.777`;
    for (let i = 0; i < 30; i++) {
      const t = join(store.layout.tmpDir, `${dead}.${i}-nar-x${i}`);
      mkdirSync(join(t, 'a', 'b'), { recursive: true });
      writeFileSync(join(t, 'a', 'b', 'f'), 'x');
      chmodSync(join(t, 'a', 'b'), 0o555);
      const base = `${String(i).padStart(32, '0').replace(/[eotu]/g, '0')}-leftover${i}`;
      mkdirSync(join(store.layout.storeDir, base, 'sub'), { recursive: true });
      chmodSync(join(store.layout.storeDir, base), 0o555);
    }
    const children = [0, 1, 2, 3].map(() => startStoreChild(dist, { op: 'open', state }));
    const removed = { temp: 0, invalid: 0 };
    for (const c of children) {
      const r = await c.done;
      expect(r.code, r.stderr).toBe(0);
      const rec = JSON.parse(r.stdout) as { removedTemp: string[]; removedInvalid: string[] };
      removed.temp += rec.removedTemp.length;
      removed.invalid += rec.removedInvalid.length;
    }
    expect(readdirSync(store.layout.tmpDir)).toEqual([]);
    expect(readdirSync(store.layout.storeDir)).toEqual([]);
    // Each leftover is reported once, by the process that removed it.
    expect(removed.temp).toBe(30);
    expect(removed.invalid).toBe(30);
  });
});

describe('a writer SIGKILLed in the middle of adding a path', () => {
  for (const point of ['import:restored', 'register:before-rename', 'register:after-rename', 'register:before-commit']) {
    it(`killed at ${point}: after reopening, the path is invalid, no trace is left, and it can be added again`, async () => {
      const state = join(work, point.replace(':', '-'));
      await LocalStore.open(state);
      const child = startStoreChild(dist, narArgs(state), { pauseAt: point });
      expect(await child.paused).toBe(point);
      // While the writer is alive (and holds the path's lock), another open leaves its work alone.
      const meanwhile = await LocalStore.open(state);
      expect(meanwhile.recovery.removedTemp).toEqual([]);
      expect(meanwhile.recovery.removedInvalid).toEqual([]);
      expect(await meanwhile.isValid(single)).toBe(false);
      const leftBefore = readdirSync(meanwhile.layout.tmpDir).length + readdirSync(meanwhile.layout.storeDir).length;
      expect(leftBefore).toBeGreaterThan(0);

      child.proc.kill('SIGKILL');
      expect((await child.done).signal).toBe('SIGKILL');

      const after = await LocalStore.open(state);
      expect(await after.isValid(single)).toBe(false);
      expect(readdirSync(after.layout.tmpDir)).toEqual([]);
      expect(readdirSync(after.layout.storeDir)).toEqual([]);
      expect(readdirSync(after.layout.infoDir)).toEqual([]);
      const again = await after.addFromNar(nixDump(single), expectedInfo(single));
      expect(formatHash((await scanPath(after.realPath(single))).narHash)).toBe(formatHash(again.narHash));
    });
  }

  it('killed after renaming into store/: a second process adding the path replaces the leftover without a reopen', async () => {
    const state = join(work, 'second-writer');
    await LocalStore.open(state);
    const first = startStoreChild(dist, narArgs(state), { pauseAt: 'register:before-commit' });
    await first.paused;
    const opened = await LocalStore.open(state); // before the kill: nothing to recover yet
    first.proc.kill('SIGKILL');
    await first.done;
    const second = startStoreChild(dist, narArgs(state));
    const r = await second.done;
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).narHash).toBe(formatHash(expectedInfo(single).narHash));
    expect(await opened.isValid(single)).toBe(true);
    expect(formatHash((await scanPath(opened.realPath(single))).narHash)).toBe(formatHash(expectedInfo(single).narHash));
  });
});
