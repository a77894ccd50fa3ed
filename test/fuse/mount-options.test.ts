/**
 * Mount options. `--list-root`: the root lists valid paths. `--unknown-as symlink`: an unbuilt path of unknown type shows as a symlink and the wait
 * happens in readlink, which every walk through the name performs, so even exec of an unbuilt
 * single-file output works (ESTALE → the kernel retries the walk; docs/MOUNT.md).
 */
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, HAVE_FUSE, freshDrvs, run, startTestMount, type TestMount } from './mount-helpers.js';

describe.skipIf(!HAVE_FUSE).each(BACKENDS)('mount with unknown types shown as symlinks, --list-root ($name)', ({ backend, passthrough }) => {
  let m: TestMount;
  let fresh: Awaited<ReturnType<typeof freshDrvs>>;
  const at = (p: string, rest = '') => join(m.mp, basename(p)) + rest;

  beforeAll(async () => {
    fresh = await freshDrvs({
      'sl-script': 'printf "#!/bin/sh\\necho script ran\\n" > $out; chmod +x $out',
      'sl-dir': 'mkdir -p $out/bin; printf "#!/bin/sh\\necho dir ran\\n" > $out/bin/run; chmod +x $out/bin/run',
    });
    m = await startTestMount({ unknownKind: 'symlink', listRoot: true, backend, passthrough });
    for (const f of Object.values(fresh)) await m.known.add(f.drvPath);
  }, 120_000);

  afterAll(async () => {
    await m?.close();
  });

  it('execs an unbuilt single-file output and a program inside an unbuilt directory output', async () => {
    // exec through sh: spawning a mount path directly from this (the daemon's) process
    // suspends the JS thread in vfork while the kernel waits for it to answer: deadlock
    expect(await run('sh', ['-c', 'exec "$0"', at(fresh['sl-script']!.out)])).toMatchObject({ code: 0, stdout: 'script ran\n' });
    expect(await run('sh', ['-c', 'exec "$0"', at(fresh['sl-dir']!.out, '/bin/run')])).toMatchObject({ code: 0, stdout: 'dir ran\n' });
    // after the retry the kernel holds the real types
    const st = await run('stat', ['-c', '%F', at(fresh['sl-script']!.out), at(fresh['sl-dir']!.out)]);
    expect(st.stdout).toBe('regular file\ndirectory\n');
    // kernel: the lookups waited, nothing was guessed
    expect(m.daemon.view.status().staleAnswers).toBe(backend === 'libfuse' ? 2 : 0);
  });

  it('lists valid paths in the root with --list-root', async () => {
    const ls = (await run('ls', [m.mp])).stdout.split('\n').filter(Boolean);
    expect(ls).toEqual(expect.arrayContaining([basename(fresh['sl-script']!.out), basename(fresh['sl-dir']!.out)]));
    expect(ls.some((n) => n.endsWith('-busybox'))).toBe(true);
  });
});
