/**
 * The mount end to end: a real FUSE mount of a fresh store, real builds (busybox fixtures
 * instantiated by real Nix), readers in child processes. Real Nix's outputs in the host store
 * are the oracle for the bytes.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { release } from 'node:os';
import { passthroughAddon } from '../../src/fuse/kernel/passthrough.js';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath } from '../../src/nix/store-path.js';
import { fixtureDrv } from '../helpers/fixtures.js';
import { BACKENDS, HAVE_FUSE, builtDrvs, freshDrvs, run, startTestMount, type TestMount } from './mount-helpers.js';

/** Root, the passthrough addon built, Linux >= 6.9: the kernel session must pass reads through. */
const PASSTHROUGH_EXPECTED = (() => {
  const [maj, min] = release().split('.').map(Number);
  return process.getuid?.() === 0 && passthroughAddon() !== null && (maj! > 6 || (maj === 6 && min! >= 9));
})();

if (!HAVE_FUSE) console.warn('test/fuse/mount.test.ts: SKIPPED: /dev/fuse is absent on this machine');

describe.skipIf(!HAVE_FUSE).each(BACKENDS)('lazystore mount ($name)', ({ backend, passthrough: passthroughWanted }) => {
  // libfuse: a root lookup answers a guess and a wrong one is corrected by ESTALE once;
  // kernel: lookups run in parallel, so the lookup itself waits and nothing is guessed
  const guessed = backend === 'libfuse' ? 1 : 0;
  let m: TestMount;
  let fresh: Awaited<ReturnType<typeof freshDrvs>>;
  const at = (p: string, rest = '') => join(m.mp, basename(p)) + rest;

  beforeAll(async () => {
    fresh = await freshDrvs({
      'fuse-slow-a': 'sleep 1; echo slow-a > $out',
      'fuse-slow-b': 'sleep 1; echo slow-b > $out',
      'fuse-wait-a': 'sleep 1; echo wait-a > $out',
      'fuse-wait-b': 'sleep 1; echo wait-b > $out',
      'fuse-crowd': 'sleep 1; mkdir $out; echo crowd > $out/file',
      'fuse-fails': 'echo going to fail; exit 3',
      'fuse-single': 'printf "one file" > $out',
      'fuse-exe': 'printf "#!/bin/sh\\necho exe ran\\n" > $out; chmod +x $out',
    });
    m = await startTestMount({ backend, passthrough: passthroughWanted });
    // Adding .drv files from the host store also imports busybox (their inputSrc) from it.
    for (const label of ['chain.C', 'fod.flat', 'fod.recursive', 'multi']) await m.known.add(fixtureDrv(label).drvPath);
    for (const f of Object.values(fresh)) await m.known.add(f.drvPath);
  }, 120_000);

  afterAll(async () => {
    await m?.close();
  });

  it('reading a file in an unbuilt output builds exactly its closure and returns the bytes Nix built', async () => {
    expect(m.daemon.mount.backend).toBe(backend);
    const c = fixtureDrv('chain.C');
    const out = c.outputs.out!.path;
    const r = await run('cat', [at(out, '/ref-to-a')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(await readFile(join(out, 'ref-to-a'), 'utf8'));
    const want = ['chain.A', 'chain.B', 'chain.C'].map((l) => fixtureDrv(l).drvPath).sort();
    expect(builtDrvs(m.events).sort()).toEqual(want);
    for (const l of ['chain.A', 'chain.B', 'chain.C']) {
      const o = fixtureDrv(l).outputs.out!;
      const info = await m.store.queryPathInfo(parseStorePath(o.path));
      expect(formatHash(info!.narHash, 'nix32')).toBe(o.narHash);
    }
    // the input chain-a is a single file: readable through the mount with Nix's bytes
    const a = fixtureDrv('chain.A').outputs.out!.path;
    expect((await run('cat', [at(a)])).stdout).toBe(await readFile(a, 'utf8'));
  });

  it('reads of built files: passed through to the unpacked file by the kernel session (where it can), served by the daemon through libfuse', async () => {
    const multi = fixtureDrv('multi').outputs.out!.path;
    expect((await run('ls', [at(multi, '/lib')])).code).toBe(0); // realised, nothing read yet
    const before = m.daemon.view.status().readsServed;
    expect((await run('cat', [at(multi, '/lib/libfixture.txt')])).stdout).toBe(await readFile(join(multi, 'lib/libfixture.txt'), 'utf8'));
    const r = await run('sh', ['-c', 'for i in 1 2 3; do cat "$1" > /dev/null; done; sha256sum < "$1"', 'sh', at(multi, '/lib/libfixture.txt')]);
    expect(r.stdout).toMatch(/^[0-9a-f]{64}/);
    const passthrough = m.logs.some((l) => /reads passed through to the store/.test(l));
    if (backend === 'kernel' && PASSTHROUGH_EXPECTED) expect(passthrough).toBe(passthroughWanted !== false);
    if (passthrough) expect(m.daemon.view.status().readsServed).toBe(before);
    else expect(m.daemon.view.status().readsServed).toBeGreaterThan(before);
  });

  it('lists a directory of 2,000 entries in full, in several READDIR(PLUS) replies, with each entry\'s type and size', async () => {
    const src = await mkdtemp(join(tmpdir(), 'lazystore-fuse-bigdir-'));
    try {
      await mkdir(join(src, 'd'));
      for (let i = 0; i < 2000; i++) {
        const name = `entry-${String(i).padStart(4, '0')}-${'x'.repeat(i % 97)}`;
        if (i % 10 === 0) await symlink(`target-${i}`, join(src, 'd', name));
        else if (i % 10 === 1) await mkdir(join(src, 'd', name));
        else await writeFile(join(src, 'd', name), 'y'.repeat(i));
      }
      const info = await m.store.addFromDirectory(src, { name: 'fuse-bigdir' });
      // sizes of files and symlinks (a Nix store reports directories as size 0)
      const listing = async (root: string) =>
        (await run('find', [root, '-type', 'd', '-printf', '%P d\n', '-o', '-printf', '%P %y %s\n'])).stdout.split('\n').filter(Boolean).sort();
      const through = await listing(at(info.path, '/d'));
      expect(through).toHaveLength(2001);
      expect(through).toEqual(await listing(join(m.store.realPath(info.path), 'd')));
    } finally {
      await rm(src, { recursive: true, force: true });
    }
  });

  it('answers attributes like a Nix store', async () => {
    const rec = fixtureDrv('fod.recursive').outputs.out!.path;
    const ls = await run('ls', [at(rec)]);
    expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual(['bin', 'data', 'link']);
    const st = await run('stat', ['-c', '%A %U %Y %s %h %i', at(rec, '/bin/run'), at(rec, '/data'), at(rec, '/bin'), at(rec, '/link')]);
    const [run_, data, bin, link] = st.stdout.trim().split('\n').map((l) => l.split(' '));
    expect(run_!.slice(0, 4)).toEqual(['-r-xr-xr-x', 'root', '1', String((await readFile(join(rec, 'bin/run'))).length)]);
    expect(data!.slice(0, 3)).toEqual(['-r--r--r--', 'root', '1']);
    expect(bin!.slice(0, 3)).toEqual(['dr-xr-xr-x', 'root', '1']);
    expect(link![0]).toBe('lrwxrwxrwx');
    expect((await run('readlink', [at(rec, '/link')])).stdout.trim()).toBe('data');
    // inode numbers are stable: the same on a second stat
    const again = await run('stat', ['-c', '%i', at(rec, '/bin/run')]);
    expect(again.stdout.trim()).toBe(run_![5]);
    // xattrs carry the path's metadata
    const py = `import os,sys; print(os.getxattr(sys.argv[1], 'user.lazystore.narHash').decode())`;
    expect((await run('python3', ['-c', py, at(rec)])).stdout.trim()).toBe(fixtureDrv('fod.recursive').outputs.out!.narHash);
  });

  it('a single-file output is read by cat (libfuse: guessed a directory, ESTALE once, the kernel retries)', async () => {
    const stale = m.daemon.view.status().staleAnswers;
    const r = await run('cat', [at(fresh['fuse-single']!.out)]);
    expect(r).toMatchObject({ code: 0, stdout: 'one file' });
    expect(m.daemon.view.status().staleAnswers).toBe(stale + guessed);
    expect(await readFile(m.store.realPath(fresh['fuse-single']!.out), 'utf8')).toBe('one file');
  });

  it('a flat fixed-output file (libfuse: guessed with size 0) reads in full; a lookup under a file is ENOTDIR', async () => {
    const flat = fixtureDrv('fod.flat').outputs.out!.path;
    const stale = m.daemon.view.status().staleAnswers;
    expect((await run('cat', [at(flat)])).stdout).toBe(await readFile(flat, 'utf8'));
    expect(m.daemon.view.status().staleAnswers).toBe(stale + guessed);
    const under = await run('cat', [at(flat, '/x')]);
    expect(under.code).not.toBe(0);
    expect(under.stderr).toMatch(/Not a directory/);
  });

  it('a lookup under an unbuilt single-file output is ENOTDIR once it is built, then cat works', async () => {
    const r = await run('stat', [at(fresh['fuse-exe']!.out, '/x')]);
    expect(r.stderr).toMatch(/Not a directory/);
    expect((await run('cat', [at(fresh['fuse-exe']!.out)])).stdout).toBe('#!/bin/sh\necho exe ran\n');
  });

  it('100 concurrent readers of one unbuilt path cause one build', async () => {
    const f = at(fresh['fuse-crowd']!.out, '/file');
    const script = `for i in $(seq 100); do cat "$1" > "$2.$i" 2>&1 & done; wait; cat "$2".* | sort | uniq -c`;
    const r = await run('sh', ['-c', script, 'sh', f, `${m.state}/crowd`]);
    expect(r.stdout.trim()).toBe('100 crowd');
    expect(builtDrvs(m.events).filter((d) => d === fresh['fuse-crowd']!.drvPath)).toHaveLength(1);
  });

  it('two independent unbuilt paths read at once build concurrently', async () => {
    const a = fresh['fuse-slow-a']!;
    const b = fresh['fuse-slow-b']!;
    const [ra, rb] = await Promise.all([run('cat', [at(a.out)]), run('cat', [at(b.out)])]);
    expect([ra.stdout, rb.stdout]).toEqual(['slow-a\n', 'slow-b\n']);
    const idx = (type: string, drv: string) => m.events.findIndex((e) => e.type === type && e.drvPath === drv);
    // each build takes ≥ 1 s: both started before either finished
    const firstFinish = Math.min(idx('finished', a.drvPath), idx('finished', b.drvPath));
    expect(idx('started', a.drvPath)).toBeGreaterThanOrEqual(0);
    expect(idx('started', a.drvPath)).toBeLessThan(firstFinish);
    expect(idx('started', b.drvPath)).toBeLessThan(firstFinish);
  });

  it.runIf(backend === 'kernel')('root lookups wait for their builds, in parallel, holding up no lookup of another name', async () => {
    const a = fresh['fuse-wait-a']!;
    const b = fresh['fuse-wait-b']!;
    const waiting = Promise.all([run('stat', ['-c', '%F', at(a.out)]), run('stat', ['-c', '%F', at(b.out)])]);
    const seen = (type: string, drv: string) => m.events.some((e) => e.type === type && e.drvPath === drv);
    while (!seen('started', a.drvPath) || !seen('started', b.drvPath)) await new Promise((r) => setTimeout(r, 10));
    // both stats are inside LOOKUP in the store directory now; 50 other names still look up
    const names = Array.from({ length: 50 }, (_, i) => join(m.mp, `${String(i).padStart(32, '0')}-other`));
    const others = await run('stat', names);
    expect(others.stderr.match(/No such file/g)).toHaveLength(50);
    expect(seen('finished', a.drvPath) || seen('finished', b.drvPath)).toBe(false);
    // the waiting lookups answered the real type: nothing was guessed
    expect((await waiting).map((r) => r.stdout.trim())).toEqual(['regular file', 'regular file']);
  });

  it('a failing build is EIO for every reader, remembered, and the mount keeps serving', async () => {
    const f = fresh['fuse-fails']!;
    const script = `for i in $(seq 10); do cat "$1/x" 2>&1 & done; wait`;
    const r = await run('sh', ['-c', script, 'sh', at(f.out)]);
    // Counted over the whole output, not per line: the ten cats write their messages to one pipe
    // in several writes each, which can interleave (a run once split one message across lines).
    expect(r.stdout.match(/Input\/output error/g)).toHaveLength(10);
    expect(builtDrvs(m.events).filter((d) => d === f.drvPath)).toHaveLength(1);
    // a later reader gets the remembered failure, without a rebuild
    expect((await run('ls', [at(f.out)])).stderr).toMatch(/Input\/output error/);
    expect(builtDrvs(m.events).filter((d) => d === f.drvPath)).toHaveLength(1);
    // the reason: on the mount root, one attribute per failed path (both backends), and on the
    // path itself where it still looks up (libfuse's guessed entry; the kernel session says EIO)
    const onRoot = `import os,sys; print(os.getxattr(os.path.dirname(sys.argv[1]), 'user.lazystore.error.' + os.path.basename(sys.argv[1])).decode())`;
    expect((await run('python3', ['-c', onRoot, at(f.out)])).stdout).toMatch(/fuse-fails/);
    const listed = `import os,sys; print(os.listxattr(os.path.dirname(sys.argv[1])))`;
    expect((await run('python3', ['-c', listed, at(f.out)])).stdout).toContain(`user.lazystore.error.${basename(f.out)}`);
    const onPath = `import os,sys; print(os.getxattr(sys.argv[1], 'user.lazystore.error').decode())`;
    const own = await run('python3', ['-c', onPath, at(f.out)]);
    if (backend === 'libfuse') expect(own.stdout).toMatch(/fuse-fails/);
    else expect(own.stderr).toMatch(/Input\/output error/);
    const multi = fixtureDrv('multi').outputs.out!.path;
    expect((await run('cat', [at(multi, '/lib/libfixture.txt')])).stdout).toBe(await readFile(join(multi, 'lib/libfixture.txt'), 'utf8'));
  });

  it('unknown names are ENOENT, the root lists nothing, writes are EROFS', async () => {
    expect((await run('stat', [join(m.mp, '00000000000000000000000000000000-nothing')])).stderr).toMatch(/No such file/);
    expect((await run('stat', [join(m.mp, 'not-a-store-path')])).stderr).toMatch(/No such file/);
    expect((await run('ls', ['-A', m.mp])).stdout).toBe('');
    const multi = fixtureDrv('multi').outputs.out!.path;
    expect((await run('touch', [at(multi, '/new')])).stderr).toMatch(/Read-only file system/);
    expect((await run('sh', ['-c', 'echo x >> "$1"', 'sh', at(multi, '/lib/libfixture.txt')])).stderr).toMatch(/Read-only file system/);
  });

  it('logs one line per build with its time', () => {
    expect(m.logs.some((l) => /^built \/nix\/store\/\S+-fixture-chain-c\.drv in \d+\.\d\d s$/.test(l))).toBe(true);
  });
});
