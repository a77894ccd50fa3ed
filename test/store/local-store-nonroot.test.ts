/**
 * The store run by an unprivileged user (the `$XDG_DATA_HOME/lazystore` case). Root ignores
 * directory permissions, so only a real non-root process shows that read-only (0555) trees can
 * be renamed into place, deleted and cleaned up after a crash. Needs root to switch to `nobody`.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, createWriteStream, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath } from '../../src/nix/store-path.js';
import { removeTree } from '../../src/store/remove-tree.js';
import { manifest } from '../helpers/fixtures.js';
import { buildPrivateDist, removePrivateDist, startStoreChild } from './store-child.js';
import { expectedInfo, nixDump, tempStateDir } from './store-fixtures.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const single = parseStorePath(manifest().derivations.find((d) => d.label === 'single')!.outputs.out!.path);
let dist: string;
let work: string;
let narFile: string;

beforeAll(async () => {
  if (!isRoot) return;
  dist = buildPrivateDist({ selfContained: true });
  work = tempStateDir('nonroot');
  chmodSync(work, 0o755);
  narFile = join(work, 'single.nar');
  await pipeline(nixDump(single), createWriteStream(narFile));
  chmodSync(narFile, 0o644);
});
afterAll(async () => {
  if (!isRoot) return;
  removePrivateDist(dist);
  await removeTree(work);
});

async function asNobody(args: Record<string, unknown>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return startStoreChild(dist, args, { uid: NOBODY, gid: NOBODY }).done;
}

describe.skipIf(!isRoot)('an unprivileged user', () => {
  it('adds a directory path, deletes it, and recovers read-only leftovers of a dead process', async () => {
    const state = join(work, 'state');
    mkdirSync(state);
    chownSync(state, NOBODY, NOBODY);
    const e = expectedInfo(single);
    let r = await asNobody({ op: 'nar', state, narFile, path: single, narHash: formatHash(e.narHash), narSize: e.narSize, references: e.references });
    expect(r.code, r.stderr).toBe(0);
    const real = join(state, 'store', single.slice(11));
    expect(statSync(real).uid).toBe(NOBODY);
    expect(statSync(real).mode & 0o777).toBe(0o555);

    r = await asNobody({ op: 'delete', state, path: single });
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(join(state, 'store'))).toEqual([]);

    // A crashed import of nobody's: a read-only tree in tmp/ with a dead owner.
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const left = join(state, 'tmp', `${dead}.1.0abc-nar-x`);
    mkdirSync(join(left, 'sub'), { recursive: true });
    writeFileSync(join(left, 'sub', 'f'), 'x');
    for (const p of [join(left, 'sub', 'f'), join(left, 'sub'), left]) chownSync(p, NOBODY, NOBODY);
    chmodSync(join(left, 'sub'), 0o555);
    chmodSync(left, 0o555);
    r = await asNobody({ op: 'open', state });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).removedTemp).toEqual([`${dead}.1.0abc-nar-x`]);
    expect(readdirSync(join(state, 'tmp'))).toEqual([]);
  });
});
