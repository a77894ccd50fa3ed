/**
 * The store's commands as a user runs them: `lazystore path-info`, `verify`, `delete` on a
 * state directory filled from the host store, compared with what real Nix prints.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseStorePath } from '../../src/nix/store-path.js';
import { LocalStore } from '../../src/store/local-store.js';
import { removeTree } from '../../src/store/remove-tree.js';
import { verifyStore } from '../../src/store/verify-store.js';
import { FIXTURES, manifest } from '../helpers/fixtures.js';
import { buildPrivateDist, removePrivateDist } from './store-child.js';
import { importFromHost, pathsOfLabel, tempStateDir } from './store-fixtures.js';

let dist: string;
let work: string;
let state: string;
const dag50 = parseStorePath(pathsOfLabel('dag50.root')[0]!);
const single = parseStorePath(manifest().derivations.find((d) => d.label === 'single')!.outputs.out!.path);
const fods = [...pathsOfLabel('fod.flat'), ...pathsOfLabel('fod.recursive')].map((p) => parseStorePath(p));
const chain = ['A', 'B', 'C'].map((x) => parseStorePath(pathsOfLabel(`chain.${x}`)[0]!));

function lazystore(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(dist, 'src/cli/main.js'), ...args, '--state', state], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(async () => {
  dist = buildPrivateDist();
  work = tempStateDir('verify');
  state = join(work, 'state');
  const store = await LocalStore.open(state);
  await importFromHost(store, [dag50, single, ...fods, ...chain]);
});
afterAll(async () => {
  removePrivateDist(dist);
  await removeTree(work);
});

describe('lazystore path-info', () => {
  it('--json prints what nix path-info --json prints (less registrationTime and ultimate)', () => {
    const paths = [single, ...fods, dag50];
    const r = lazystore('path-info', '--json', ...paths);
    expect(r.code, r.stderr).toBe(0);
    const reference = JSON.parse(readFileSync(join(FIXTURES, 'path-info.json'), 'utf8')) as Record<string, unknown>[];
    const want = reference
      .filter((e) => paths.includes(e.path as never))
      .map(({ registrationTime: _t, ultimate: _u, ...rest }) => rest)
      .sort((a, b) => String(a.path).localeCompare(String(b.path)));
    expect(JSON.parse(r.stdout)).toEqual(want);
  });

  it('-r prints the closure like nix path-info -r: the same set, references first', () => {
    const r = lazystore('path-info', '-r', dag50);
    expect(r.code, r.stderr).toBe(0);
    const ours = r.stdout.trim().split('\n');
    const nix = spawnSync('nix', ['path-info', '-r', dag50], { encoding: 'utf8' }).stdout.trim().split('\n');
    expect([...ours].sort()).toEqual([...nix].sort());
    expect(ours[ours.length - 1]).toBe(dag50);
  });

  it('--all lists every valid path, references first', async () => {
    const r = lazystore('path-info', '--all');
    expect(r.code, r.stderr).toBe(0);
    const listed = r.stdout.trim().split('\n');
    const store = await LocalStore.open(state);
    expect([...listed].sort()).toEqual(await store.listValid());
    expect(listed.indexOf(chain[0]!)).toBeLessThan(listed.indexOf(chain[1]!));
  });

  it('a state directory that cannot be created: one line on stderr, exit 1', () => {
    const r = spawnSync(process.execPath, [join(dist, 'src/cli/main.js'), 'path-info', single, '--state', '/etc/passwd/lazystore'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^lazystore: cannot open the state directory \/etc\/passwd\/lazystore: .*\n$/);
  });

  it('an invalid path: one line on stderr, exit 1', () => {
    const missing = '/nix/store/00000000000000000000000000000000-missing';
    const r = lazystore('path-info', single, missing);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`lazystore: path '${missing}' is not valid\n`);
  });
});

describe('lazystore verify', () => {
  it('passes on an intact store; --check-contents finds a modified file and a vanished path', async () => {
    let r = lazystore('verify', '--check-contents');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/checked \d+ paths, 0 problems/);

    const store = await LocalStore.open(state);
    const file = join(store.realPath(single), 'share', 'doc', 'README');
    const dir = join(store.realPath(single), 'share', 'doc');
    const before = readFileSync(file);
    chmodSync(dir, 0o755);
    chmodSync(file, 0o644);
    writeFileSync(file, Buffer.concat([before, Buffer.from('tampered\n')]));
    chmodSync(file, 0o444);
    chmodSync(dir, 0o555);
    utimesSync(file, 1, 1); // canonical again: only the contents differ

    r = lazystore('verify');
    expect(r.code, r.stderr).toBe(0); // existence only: the change is not seen
    r = lazystore('verify', '--check-contents');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`path '${single}' was modified! expected hash '${manifest().derivations.find((d) => d.label === 'single')!.outputs.out!.narHash}'`);
    expect(r.stderr).toMatch(/checked \d+ paths, 1 problems/);

    const gone = store.realPath(fods[0]!);
    renameSync(gone, `${gone}.moved`);
    r = lazystore('verify');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`path '${fods[0]}' disappeared`);
    renameSync(`${gone}.moved`, gone);

    // Put the contents back but leave the file writable: same NAR hash, not canonical.
    chmodSync(dir, 0o755);
    chmodSync(file, 0o644);
    writeFileSync(file, before);
    chmodSync(dir, 0o555);
    utimesSync(file, 1, 1);
    r = lazystore('verify', '--check-contents');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`path '${single}' has non-canonical metadata at 'share/doc/README': mode 0644`);
    expect(r.stderr).not.toContain('was modified');
    chmodSync(file, 0o444);
    expect((await verifyStore(store, { checkContents: true })).problems).toEqual([]);
  });
});

describe('lazystore delete', () => {
  it('refuses a path that is still referenced, deletes a self-contained set referrers first', async () => {
    const [a, b, c] = chain;
    let r = lazystore('delete', a!);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toContain(`cannot delete '${a}': it is referenced by`);
    r = lazystore('delete', a!, b!, c!);
    expect(r.code, r.stderr).toBe(0);
    const store = await LocalStore.open(state);
    for (const p of chain) expect(await store.isValid(p)).toBe(false);
    expect(lazystore('verify').code).toBe(0);
  });
});
