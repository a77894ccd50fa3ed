/**
 * LocalStore against real Nix: host /nix/store outputs imported by directory copy and from
 * `nix-store --dump` must get exactly the PathInfo real Nix recorded in the manifest.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { LocalStore } from '../../src/store/local-store.js';
import { pathInfoToJson, type PathInfo } from '../../src/store/path-info.js';
import { defaultStateDir } from '../../src/store/state-dir.js';
import { removeTree } from '../../src/store/remove-tree.js';
import { scanPath } from '../../src/store/scan-path.js';
import { FIXTURES, manifest } from '../helpers/fixtures.js';
import { BUSYBOX, expectedInfo, fixtureClosure, fixtureOutputs, importFromHost, nixDump, pathsOfLabel, tempStateDir } from './store-fixtures.js';

const dirs: string[] = [];
function newStateDir(label: string): string {
  const d = tempStateDir(label);
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await removeTree(d);
});

function comparable(info: PathInfo): Record<string, unknown> {
  return {
    path: info.path,
    narHash: formatHash(info.narHash),
    narSize: info.narSize,
    references: [...info.references].sort(),
    deriver: info.deriver,
    ca: info.ca,
  };
}

async function expectRejects(p: Promise<unknown>, code: string): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected a ${code} error`).toBeDefined();
  expect(isLazyError(e) ? e.code : e).toBe(code);
  return e as Error;
}

/** Every entry of a tree is canonical: mtime 1, 0444/0555 files, 0555 directories. */
function expectCanonical(fsPath: string): void {
  const st = lstatSync(fsPath);
  if (!st.isSymbolicLink()) {
    expect(st.mtimeMs, fsPath).toBe(1000);
    const mode = st.mode & 0o7777;
    expect([0o444, 0o555], `${fsPath} mode ${mode.toString(8)}`).toContain(mode);
    if (st.isDirectory()) {
      expect(mode).toBe(0o555);
      for (const n of readdirSync(fsPath)) expectCanonical(join(fsPath, n));
    }
  }
}

describe('LocalStore imports from the host store', () => {
  const all = [...fixtureOutputs().keys()];

  it('addFromDirectory gives every fixture output the PathInfo real Nix recorded', async () => {
    const store = await LocalStore.open(newStateDir('dir'));
    const order = await importFromHost(store, all);
    expect(order.length).toBe(all.length);
    for (const p of order) {
      const got = await store.queryPathInfo(p);
      expect(got && comparable(got), p).toEqual(comparable(expectedInfo(p)));
    }
    // A fresh object reads the same from disk.
    const again = await LocalStore.open(store.stateDir);
    for (const p of order.slice(0, 20)) expect(comparable((await again.queryPathInfo(p))!)).toEqual(comparable(expectedInfo(p)));
    // Contents: canonical, and re-dumping them gives the recorded NAR hash.
    const single = parseStorePath(manifest().derivations.find((d) => d.label === 'single')!.outputs.out!.path);
    expectCanonical(store.realPath(single));
    for (const p of [single, ...pathsOfLabel('fod').map((x) => parseStorePath(x))]) {
      expect(formatHash((await scanPath(store.realPath(p))).narHash)).toBe(fixtureOutputs().get(p)!.narHash);
    }
    expect((await store.listValid()).length).toBe(all.length);
  });

  it('addFromDirectory with only a name adds a content-addressed source path, as nix-store --add does', async () => {
    const store = await LocalStore.open(newStateDir('source'));
    const bb = await store.addFromDirectory(BUSYBOX(), { name: 'busybox' });
    expect(bb.path).toBe(BUSYBOX());
    expect(formatHash(bb.narHash)).toBe(manifest().busybox.narHash);
    expect(bb.ca).toBe(`fixed:r:${manifest().busybox.narHash}`);
    // Given the path, the import is checked: a tree that is not that source path is refused.
    const other = parseStorePath(pathsOfLabel('chain.A')[0]!);
    const wrongBusybox = parseStorePath(BUSYBOX().replace('-busybox', '-chain'));
    await expectRejects(store.addFromDirectory(other, { path: wrongBusybox, ca: bb.ca }), 'STORE_CA_MISMATCH');
    await expectRejects(
      store.addFromDirectory(other, { path: parseStorePath(other), narHash: bb.narHash }),
      'STORE_NAR_HASH_MISMATCH',
    );
    expect(await store.isValid(parseStorePath(other))).toBe(false);
    expect(readdirSync(store.layout.tmpDir)).toEqual([]);
  });

  it('addFromNar of nix-store --dump streams gives the outputs the recorded PathInfo', async () => {
    const store = await LocalStore.open(newStateDir('nar'));
    // All but the 500-node DAG (one nix-store process per path costs ~35 ms; the directory test covers it).
    const order = await fixtureClosure(all.filter((p) => !/-dag500-/.test(p)));
    expect(order.length).toBeGreaterThan(55);
    for (const p of order) {
      const got = await store.addFromNar(nixDump(p), expectedInfo(p));
      expect(comparable(got), p).toEqual(comparable(expectedInfo(p)));
    }
    const fresh = await LocalStore.open(store.stateDir);
    for (const p of order) expect(await fresh.isValid(p)).toBe(true);
    expect(readdirSync(store.layout.tmpDir)).toEqual([]);
  });

  it('the JSON form matches nix path-info --json field for field', async () => {
    const reference = JSON.parse(readFileSync(join(FIXTURES, 'path-info.json'), 'utf8')) as Record<string, unknown>[];
    for (const entry of reference) {
      const { registrationTime: _t, ultimate: _u, ...want } = entry;
      expect(pathInfoToJson(expectedInfo(entry.path as string))).toEqual(want);
    }
  });
});

describe('addFromNar refuses bad NARs and leaves nothing behind', () => {
  const p = parseStorePath(manifest().derivations.find((d) => d.label === 'single')!.outputs.out!.path);
  let store: LocalStore;
  beforeAll(async () => {
    store = await LocalStore.open(newStateDir('bad'));
  });
  function expectNothingLeft(): void {
    expect(readdirSync(store.layout.tmpDir)).toEqual([]);
    expect(readdirSync(store.layout.storeDir)).toEqual([]);
    expect(readdirSync(store.layout.infoDir)).toEqual([]);
  }

  it('wrong NarHash: the error names the path, the expected and the actual hash', async () => {
    const good = expectedInfo(p);
    const digest = Buffer.from(good.narHash.digest);
    digest[0] = digest[0]! ^ 1;
    const wrong = { ...good, narHash: { algo: 'sha256' as const, digest } };
    const e = await expectRejects(store.addFromNar(nixDump(p), wrong), 'STORE_NAR_HASH_MISMATCH');
    expect(e.message).toContain(p);
    expect(e.message).toContain(formatHash(wrong.narHash));
    expect(e.message).toContain(formatHash(good.narHash));
    expect(await store.isValid(p)).toBe(false);
    expectNothingLeft();
  });

  it('NarSize too small fails while streaming, too large fails at the end', async () => {
    const good = expectedInfo(p);
    const e = await expectRejects(store.addFromNar(nixDump(p), { ...good, narSize: 1000 }), 'STORE_NAR_SIZE_MISMATCH');
    expect(e.message).toContain(p);
    await expectRejects(store.addFromNar(nixDump(p), { ...good, narSize: good.narSize + 8 }), 'STORE_NAR_SIZE_MISMATCH');
    expectNothingLeft();
  });

  it('a truncated NAR fails with the NAR error, naming the path', async () => {
    async function* truncated(): AsyncGenerator<Buffer> {
      let left = 1000;
      for await (const chunk of nixDump(p)) {
        if (left <= 0) break;
        yield chunk.subarray(0, left);
        left -= chunk.length;
      }
    }
    const e = await store.addFromNar(truncated(), { path: p, references: [p] }).catch((x: unknown) => x);
    expect(isLazyError(e, 'NAR_')).toBe(true);
    expect((e as Error).message).toContain(p);
    expectNothingLeft();
  });

  it('a NAR for a path that is valid already is not read, and its stream is let go', async () => {
    const first = await store.addFromNar(nixDump(p), expectedInfo(p));
    const stream = nixDump(p) as PassThrough;
    const again = await store.addFromNar(stream, expectedInfo(p));
    expect(again).toEqual(first);
    expect(stream.destroyed).toBe(true);
    await store.delete(p);
    expectNothingLeft();
  });

  it('an abort in the middle of the stream: ABORTED, nothing left behind', async () => {
    const ac = new AbortController();
    async function* slow(): AsyncGenerator<Buffer> {
      for await (const chunk of nixDump(p)) {
        for (let i = 0; i < chunk.length; i += 256) {
          if (i >= 512) ac.abort();
          yield chunk.subarray(i, i + 256);
        }
      }
    }
    await expectRejects(store.addFromNar(slow(), expectedInfo(p), { signal: ac.signal }), 'ABORTED');
    expect(await store.isValid(p)).toBe(false);
    expectNothingLeft();
  });

  it('register of a missing source: STORE_IO naming the path', async () => {
    const e = await expectRejects(store.register(join(store.layout.tmpDir, 'nothing-here'), expectedInfo(p)), 'STORE_IO');
    expect(e.message).toContain(store.realPath(p));
    expectNothingLeft();
  });

  it('a content address that does not match the contents is refused', async () => {
    const fod = parseStorePath(pathsOfLabel('fod.flat')[0]!);
    const other = expectedInfo(parseStorePath(pathsOfLabel('fod.recursive')[0]!)).ca!;
    await expectRejects(store.addFromNar(nixDump(fod), { ...expectedInfo(fod), ca: other }), 'STORE_CA_MISMATCH');
    const good = await store.addFromNar(nixDump(fod), expectedInfo(fod));
    expect(good.ca).toBe(expectedInfo(fod).ca);
  });
});

describe('LocalStore queries, closure, register and delete', () => {
  let store: LocalStore;
  const root = parseStorePath(pathsOfLabel('dag500.root')[0]!);
  const chain = Object.fromEntries(['A', 'B', 'C'].map((x) => [x, parseStorePath(pathsOfLabel(`chain.${x}`)[0]!)]));
  beforeAll(async () => {
    store = await LocalStore.open(newStateDir('graph'));
    await importFromHost(store, [root, ...Object.values(chain)]);
  });

  it('closure is nix-store -qR, each path after everything it references', async () => {
    const order = await store.closure([root]);
    const nix = execFileSync('nix-store', ['-qR', root], { encoding: 'utf8' }).trim().split('\n');
    expect([...order].sort()).toEqual([...nix].sort());
    const position = new Map(order.map((p, i) => [p, i]));
    for (const p of order) {
      for (const r of (await store.queryPathInfo(p))!.references) {
        if (r !== p) expect(position.get(r)!, `${r} before ${p}`).toBeLessThan(position.get(p)!);
      }
    }
  });

  it('queryPathInfo and isValid: unknown paths and a same-hash other name are not valid', async () => {
    const unknown = parseStorePath('/nix/store/00000000000000000000000000000000-nothing');
    expect(await store.queryPathInfo(unknown)).toBeUndefined();
    expect(await store.isValid(unknown)).toBe(false);
    const renamed = parseStorePath(chain.A!.replace(/-[^/]*$/, '-other-name'));
    expect(await store.isValid(renamed)).toBe(false);
    expect(await store.isValid(chain.A!)).toBe(true);
    expect(store.isKnownValid(chain.A!)).toBe(true);
    await expectRejects(store.closure([unknown]), 'STORE_PATH_INVALID');
  });

  it('delete refuses while a valid path references the path, then removes it completely', async () => {
    const e = await expectRejects(store.delete(chain.A!), 'STORE_PATH_IN_USE');
    expect(e.message).toContain(chain.B);
    expect(e.message).toContain(chain.C);
    expect(await store.isValid(chain.A!)).toBe(true);
    await store.delete(chain.B!);
    await expectRejects(store.delete(chain.A!), 'STORE_PATH_IN_USE');
    await store.delete(chain.C!);
    await store.delete(chain.A!);
    for (const p of Object.values(chain)) {
      expect(await store.isValid(p)).toBe(false);
      expect(() => lstatSync(store.realPath(p))).toThrow();
    }
    expect(readdirSync(store.layout.tmpDir)).toEqual([]);
    await expectRejects(store.delete(chain.A!), 'STORE_PATH_INVALID');
  });

  it('register is idempotent: a second registration is discarded and the first contents stay', async () => {
    const p = parseStorePath('/nix/store/11111111111111111111111111111111-idempotent');
    const add = async (content: string): Promise<PathInfo> => {
      const dir = await store.makeTempDir('t');
      const f = join(dir, 'f');
      execFileSync('sh', ['-c', `printf %s "$1" > "$2" && chmod 0444 "$2" && touch -d @1 "$2"`, 'sh', content, f]);
      const scan = await scanPath(f);
      const info = await store.register(f, { path: p, narHash: scan.narHash, narSize: scan.narSize, references: [], sigs: [] });
      expect(() => lstatSync(f)).toThrow();
      await store.discardTemp(dir);
      return info;
    };
    const first = await add('first');
    const second = await add('second, different');
    expect(formatHash(second.narHash)).toBe(formatHash(first.narHash));
    expect(readFileSync(store.realPath(p), 'utf8')).toBe('first');
    expect(formatHash((await scanPath(store.realPath(p))).narHash)).toBe(formatHash(first.narHash));
    await store.delete(p);
  });

  it('register refuses a source outside tmp/; registerAll orders a batch and checks references', async () => {
    const multi = manifest().derivations.find((d) => d.label === 'multi')!;
    const out = parseStorePath(multi.outputs.out!.path);
    const dev = parseStorePath(multi.outputs.dev!.path);
    await expectRejects(store.register(out, expectedInfo(out)), 'STORE_BAD_TEMP');
    const batch = [];
    for (const p of [dev, out]) {
      const dir = await store.makeTempDir('batch');
      execFileSync('cp', ['-a', p, join(dir, 'out')]);
      batch.push({ tmpPath: join(dir, 'out'), info: expectedInfo(p), dir });
    }
    await expectRejects(store.registerAll([batch[0]!]), 'STORE_REFERENCE_INVALID');
    const infos = await store.registerAll(batch);
    expect(infos.map((i) => i.path)).toEqual([dev, out]);
    expect(await store.closure([dev])).toEqual([out, dev]);
    for (const b of batch) await store.discardTemp(b.dir);
  });

  it('layout: logPath, realPath and the state directories', async () => {
    const drv = parseStorePath(manifest().derivations[0]!.drvPath);
    expect(store.logPath(drv)).toBe(join(store.stateDir, 'log', drv.slice('/nix/store/'.length)));
    expect(store.realPath(chain.A as StorePath)).toBe(join(store.stateDir, 'store', chain.A!.slice(11)));
    for (const d of ['store', 'info', 'drv', 'log', 'tmp']) expect(lstatSync(join(store.stateDir, d)).isDirectory()).toBe(true);
  });
});

describe('defaultStateDir', () => {
  it('is $LAZYSTORE_STATE, else /var/lib/lazystore as root, else $XDG_DATA_HOME/lazystore', () => {
    expect(defaultStateDir({ LAZYSTORE_STATE: '/srv/lazy' }, 0)).toBe('/srv/lazy');
    expect(defaultStateDir({ XDG_DATA_HOME: '/data', HOME: '/home/u' }, 0)).toBe('/var/lib/lazystore');
    expect(defaultStateDir({ XDG_DATA_HOME: '/data', HOME: '/home/u' }, 1000)).toBe('/data/lazystore');
    expect(defaultStateDir({ XDG_DATA_HOME: 'relative', HOME: '/home/u' }, 1000)).toBe('/home/u/.local/share/lazystore');
    expect(defaultStateDir({ HOME: '/home/u' }, 1000)).toBe('/home/u/.local/share/lazystore');
  });
});
