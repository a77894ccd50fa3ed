/**
 * What the mount and its control socket let other users and writers do, checked from real
 * processes (other users via setpriv as `nobody`): the mount is read-only at the VFS level
 * for everyone (root included), invisible to other users unless --allow-other, and the
 * control socket answers only its owner. Build isolation is in test/build/sandbox.test.ts.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fixtureDrv } from '../helpers/fixtures.js';
import { CLI, HAVE_FUSE, isMounted, run, startCliMount } from '../fuse/mount-helpers.js';

const IS_ROOT = process.getuid?.() === 0;
const asNobody = (cmd: string, ...args: string[]): ReturnType<typeof run> =>
  run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', cmd, ...args]);

function mountOptions(mp: string): { vfs: string[]; fs: string[] } {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mp)!;
  const [pre, post] = line.split(' - ') as [string, string];
  return { vfs: pre.split(' ')[5]!.split(','), fs: post.split(' ')[2]!.split(',') };
}

describe.skipIf(!HAVE_FUSE || !IS_ROOT)('security of the mount and its control socket', () => {
  let state: string;
  let parent: string;
  let mp: string;
  let daemon: ChildProcess | undefined;
  const single = fixtureDrv('single');
  const out = single.outputs.out!.path;

  async function mount(extra: string[] = []): Promise<void> {
    daemon = (await startCliMount(['--state', state, '--drvs', single.drvPath, ...extra, mp])).child;
  }

  beforeAll(async () => {
    expect(existsSync(CLI)).toBe(true);
    state = await mkdtemp(join(tmpdir(), 'lazystore-sec-state-'));
    parent = await mkdtemp(join(tmpdir(), 'lazystore-sec-'));
    spawnSync('chmod', ['0755', parent]); // so `nobody` reaches the mountpoint itself
    mp = join(parent, 'store');
    spawnSync('mkdir', ['-m', '0755', mp]);
  });
  afterEach(async () => {
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    if (isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
  });
  afterAll(async () => {
    await rmdir(mp).catch(() => {});
    await rm(parent, { recursive: true, force: true });
    await rm(state, { recursive: true, force: true });
  });

  it('is mounted ro, nosuid, nodev at the VFS level, without allow_other by default', async () => {
    await mount();
    const o = mountOptions(mp);
    expect(o.vfs).toContain('ro');
    expect(o.vfs).toContain('nosuid');
    expect(o.vfs).toContain('nodev');
    expect(o.fs).not.toContain('allow_other');
  });

  it('refuses every kind of write, from root too, and leaves the built path intact', async () => {
    await mount();
    const file = join(mp, basename(out), 'share/doc/README');
    expect((await run('cat', [file])).stdout).toBe('hello from fixture-single\n');
    const attempts: [string, string[]][] = [
      ['sh', ['-c', `echo x > ${file}`]],
      ['sh', ['-c', `echo x >> ${file}`]],
      ['truncate', ['-s', '0', file]],
      ['touch', [join(mp, basename(out), 'new')]],
      ['mkdir', [join(mp, 'x')]],
      ['rm', ['-f', file]],
      ['mv', [file, `${file}.moved`]],
      ['ln', ['-s', '/etc/passwd', join(mp, basename(out), 'evil')]],
      ['chmod', ['0777', file]],
      ['chown', ['65534', file]],
      ['touch', ['-d', '2000-01-01', file]],
      ['python3', ['-c', 'import os,sys\ntry:\n  os.setxattr(sys.argv[1], "user.x", b"1")\nexcept OSError as e:\n  sys.exit(e.strerror)', file]],
    ];
    for (const [cmd, args] of attempts) {
      const r = await run(cmd, args);
      expect(r.code, `${cmd} ${args.join(' ')} must fail`).not.toBe(0);
      expect(r.stderr, `${cmd} ${args.join(' ')}`).toMatch(/Read-only file system|not supported|No such file/i);
    }
    expect((await run('cat', [file])).stdout).toBe('hello from fixture-single\n');
    const v = await run(process.execPath, [CLI, 'verify', '--state', state, '--check-contents']);
    expect(v.code).toBe(0);
  });

  it('other users see nothing without --allow-other, and can read (not write) with it', async () => {
    await mount();
    const denied = await asNobody('ls', join(mp, basename(out)));
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/Permission denied/);
    daemon!.kill('SIGTERM');
    await new Promise((r) => daemon!.once('exit', r));
    await mount(['--allow-other']);
    expect(mountOptions(mp).fs).toContain('allow_other');
    expect((await asNobody('cat', join(mp, basename(out), 'share/doc/README'))).stdout).toBe('hello from fixture-single\n');
    const w = await asNobody('touch', join(mp, basename(out), 'x'));
    expect(w.stderr).toMatch(/Read-only file system/);
  });

  it('the control socket is 0600 in a 0700 directory: other users cannot ask it anything', async () => {
    await mount();
    const sock = join(state, 'run', `${daemon!.pid}.sock`);
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(state, 'run')).mode & 0o777).toBe(0o700);
    spawnSync('chmod', ['0755', state]); // even with the state dir open, run/ keeps them out
    const pl = 'use IO::Socket::UNIX; my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]); print $s ? "connected\n" : "$!\n";';
    const r = await asNobody('perl', '-e', pl, sock);
    expect(r.stdout.trim()).toBe('Permission denied');
    const own = await run(process.execPath, [CLI, 'status', '--state', state, '--json']);
    expect(own.code).toBe(0);
  });
});
