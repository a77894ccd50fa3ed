/**
 * Stage 3 of the demo: a lazystore mount in which reading one file builds a path's closure on
 * demand, then a built program run through `lazystore shell`. The mount is always taken down.
 */
import { mkdir, readFile } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { Commands, ROOT, check, heading, isMounted, lazystore, ok, run, say, seconds, sleep, startLazystore } from './demo-kit.js';
import { FIXTURES, busyboxOnlyCache, fixture, tempDir, type Fixtures } from './demo-fixtures.js';

let daemon: ChildProcess | undefined;
let mounted: string | undefined;

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Stops the daemon (SIGTERM: it unmounts), then makes sure nothing is left mounted. */
export async function cleanupMount(): Promise<void> {
  const d = daemon;
  daemon = undefined;
  if (d && d.exitCode === null && d.signalCode === null) {
    d.kill('SIGTERM');
    if (!(await exited(d, 10_000))) {
      d.kill('SIGKILL');
      await exited(d, 2_000);
    }
  }
  const mp = mounted;
  mounted = undefined;
  if (mp !== undefined && isMounted(mp)) {
    await run('fusermount', ['-u', '-z', mp], { quiet: true }).catch(() => undefined);
    if (isMounted(mp)) await run('umount', ['-l', mp], { quiet: true }).catch(() => undefined);
  }
}

export async function mountStage(cmds: Commands, m: Fixtures): Promise<boolean> {
  heading('3. Mount: read a file, and the store builds what it needs');
  if (!cmds.has('mount')) {
    say("skipped: no 'mount' command yet");
    return false;
  }
  const mp = process.env.LAZYSTORE_DEMO_MOUNTPOINT ?? join(ROOT, 'mountpoints', 'store');
  await mkdir(mp, { recursive: true });
  check(!isMounted(mp), `${mp} is already mounted (a previous run left it? 'fusermount -u ${mp}')`);
  const state = await tempDir('mount-state');
  const cache = await busyboxOnlyCache(m);
  const realiseArgs = ['--state', state, '--substituter', cache, '--no-check-sigs', '--drvs', join(FIXTURES, 'drvs')];
  const args = ['mount', ...realiseArgs, mp];
  say(`lazystore ${args.join(' ')} &`);
  daemon = startLazystore(args);
  mounted = mp;
  const t0 = performance.now();
  while (!isMounted(mp)) {
    check(daemon.exitCode === null, `mount exited ${daemon.exitCode} before mounting`);
    check(performance.now() - t0 < 20_000, `${mp} not mounted after 20 s`);
    await sleep(50);
  }
  ok(`mounted at ${mp} in ${seconds(performance.now() - t0)} (empty state: nothing built yet)`);

  const c = fixture(m, 'chain.C');
  const cOut = c.outputs.out!.path;
  const file = join(mp, basename(cOut), 'ref-to-a');
  say(`cat ${file}`);
  say('  (fixture-chain-c is not built, nor are chain-b and chain-a, which its build needs)');
  const r = await run('cat', [file], { echoStdout: true });
  check(r.code === 0, `cat exited ${r.code}: ${r.stderr.trim()}`);
  const want = await readFile(join(cOut, 'ref-to-a'), 'utf8'); // what real Nix built, in the host store
  check(r.stdout === want, `read ${JSON.stringify(r.stdout)}, Nix built ${JSON.stringify(want)}`);
  ok(`the whole closure was built on demand in ${seconds(r.ms)}; same bytes as Nix's build`);
  const again = await run('cat', [file], { quiet: true });
  check(again.stdout === want, 'second read differs');
  ok(`second read: ${seconds(again.ms)} (already built)`);
  if (cmds.has('path-info')) {
    const info = await lazystore(['path-info', '--state', state, '--recursive', cOut], { quiet: true });
    check(info.code === 0, `path-info exited ${info.code}: ${info.stderr.trim()}`);
    ok(`now valid in the store, with its closure (lazystore path-info -r): ${info.stdout.trim().split('\n').map((p) => basename(p)).join(', ')}`);
  }

  if (cmds.has('shell')) {
    const s = fixture(m, 'single');
    const hello = join(s.outputs.out!.path, 'bin', 'hello');
    const shellArgs = ['shell', ...realiseArgs, '--', hello];
    say(`lazystore ${shellArgs.join(' ')}`);
    say('  (a private mount namespace with the store at /nix/store; fixture-single is built first)');
    const sh = await lazystore(shellArgs, { echoStdout: true });
    check(sh.code === 0, `shell exited ${sh.code}`);
    check(sh.stdout.trim() === 'hi', `hello printed ${JSON.stringify(sh.stdout)}`);
    ok(`${basename(hello)} ran from the lazy store in ${seconds(sh.ms)}`);
  } else {
    say("skipped running a program: no 'shell' command yet");
  }

  say('unmounting (SIGTERM to the daemon)');
  const t1 = performance.now();
  await cleanupMount();
  check(!isMounted(mp), `${mp} still mounted`);
  ok(`unmounted in ${seconds(performance.now() - t1)}`);
  return true;
}
