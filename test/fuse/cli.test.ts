/**
 * The commands as users run them (compiled CLI in dist/, built by `npm test`'s pretest):
 * `lazystore shell` runs a program lazystore builds from /nix/store; a stale mount left by a
 * killed daemon is cleared at the next start; `lazystore status` answers from the socket.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, rmdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fixtureDrv } from '../helpers/fixtures.js';
import { CLI, HAVE_FUSE, freshDrvs, isMounted, run, startCliMount } from './mount-helpers.js';

const ROOT = join(import.meta.dirname, '../..');

if (!HAVE_FUSE) console.warn('test/fuse/cli.test.ts: SKIPPED: /dev/fuse is absent on this machine');

const startMount = startCliMount;

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe.skipIf(!HAVE_FUSE)('lazystore mount/shell/status commands', () => {
  let state: string;
  let mp: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} missing: run 'npm run build' (npm test does)`).toBe(true);
    state = await mkdtemp(join(tmpdir(), 'lazystore-cli-state-'));
    mp = await mkdtemp(join(tmpdir(), 'lazystore-cli-mp-'));
  });

  afterEach(async () => {
    for (const c of children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await exited(c);
    }
    if (isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
  });

  afterAll(async () => {
    if (mp && isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
    if (mp) await rmdir(mp).catch(() => {});
    if (state) await rm(state, { recursive: true, force: true });
  });

  it('shell runs a program lazystore builds, from /nix/store, and exits with its code', async () => {
    const { hello } = await freshDrvs({ hello: 'mkdir -p $out/bin; printf "#!/bin/sh\\necho hello from $out\\n" > $out/bin/hello; chmod +x $out/bin/hello' });
    expect(existsSync(hello!.out), 'the host store must not have it: the mount has to build it').toBe(false);
    const r = await run(process.execPath, [CLI, 'shell', '--state', state, '--drvs', hello!.drvPath, '--', `${hello!.out}/bin/hello`]);
    expect(r.stderr).toMatch(/built \S+-hello\.drv in/);
    expect(r).toMatchObject({ code: 0, stdout: `hello from ${hello!.out}\n` });
    expect(existsSync(hello!.out), 'the host /nix/store was changed').toBe(false);
    const code = await run(process.execPath, [CLI, 'shell', '--state', state, '--', '/bin/sh', '-c', 'exit 7']);
    expect(code.code).toBe(7);
    expect(readMounts().some((l) => l.includes('lazystore-shell-'))).toBe(false);
  });

  it('SIGTERM cancels running builds, fails their readers, unmounts and exits 0', async () => {
    const nap = `600.${process.pid}`; // a unique sleep to find the builder by
    const { slow } = await freshDrvs({ slow: `sleep ${nap}; mkdir $out` });
    const { child, stderr } = await startMount(['--state', state, '--drvs', slow!.drvPath, mp]);
    children.push(child);
    const reader = run('cat', [join(mp, basename(slow!.out), 'f')]);
    while (!stderr().includes(`realising ${slow!.out}`) || (await run('pgrep', ['-f', `sleep ${nap}`])).code !== 0) {
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect((await reader).stderr).toMatch(/Input\/output error|not connected/);
    expect(isMounted(mp)).toBe(false);
    expect((await run('pgrep', ['-f', `sleep ${nap}`])).code, 'the builder outlived the daemon').toBe(1);
  });

  it('clears a stale mount left by a killed daemon', async () => {
    // a FUSE daemon without auto_unmount, killed with SIGKILL: its mount stays, disconnected
    const script = `const F = require(${JSON.stringify(join(ROOT, 'node_modules/fuse-native'))});
      new F(${JSON.stringify(mp)}, { getattr: (p, cb) => cb(p === '/' ? 0 : -2, { mode: 0o40555, size: 0 }) }, {}).mount(e => { if (e) process.exit(1); console.log('up'); });`;
    const stale = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(stale);
    await new Promise((res) => stale.stdout!.once('data', res));
    stale.kill('SIGKILL');
    await exited(stale);
    expect(isMounted(mp)).toBe(true);
    await expect(stat(mp)).rejects.toMatchObject({ code: 'ENOTCONN' });

    const multi = fixtureDrv('multi');
    const { child, stderr } = await startMount(['--state', state, '--drvs', multi.drvPath, mp]);
    children.push(child);
    expect(stderr()).toMatch(/clearing stale mount/);
    const r = await run('cat', [join(mp, basename(multi.outputs.out!.path), 'lib/libfixture.txt')]);
    expect(r).toMatchObject({ code: 0, stdout: 'library payload\n' });

    // status answers through the control socket while the mount runs
    const s = await run(process.execPath, [CLI, 'status', '--state', state, '--json']);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout)[0].result.mountpoint).toBe(mp);
    const sock = await stat(join(state, 'run', `${child.pid}.sock`));
    expect(sock.mode & 0o777).toBe(0o600);

    // SIGKILL the lazystore daemon too: as root its watchdog detaches the dead mount (libfuse:
    // auto_unmount), and the next start must mount again either way
    child.kill('SIGKILL');
    await exited(child);
    if (process.getuid?.() === 0) {
      for (let i = 0; i < 200 && isMounted(mp); i++) await new Promise((r) => setTimeout(r, 50));
      expect(isMounted(mp), 'the dead mount was left behind').toBe(false);
    }
    const again = await startMount(['--state', state, mp]);
    children.push(again.child);
    expect((await run('cat', [join(mp, basename(multi.outputs.out!.path), 'lib/libfixture.txt')])).stdout).toBe('library payload\n');
    again.child.kill('SIGTERM');
    expect(await exited(again.child)).toBe(0);
    expect(isMounted(mp)).toBe(false);
    const none = await run(process.execPath, [CLI, 'status', '--state', state]);
    expect(none.code).toBe(1);
  });
});

function readMounts(): string[] {
  return spawnSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' }).stdout.split('\n');
}
