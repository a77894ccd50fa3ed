/**
 * Runs the compiled `lazystore mount` (npm test's pretest builds dist/) as a child process on a
 * temporary mountpoint, so the FUSE daemon is never the test's own process: the test, qemu and
 * nix-instantiate read the mount from outside it. stop() sends one SIGTERM (the daemon then
 * cancels builds and unmounts) and, if anything is left mounted, detaches it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');

export function assertBuilt(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run 'npm run build' (npm test does)`);
}

export function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

export interface LazyMount {
  mountpoint: string;
  /** Everything the daemon printed on stderr so far (one line per realisation). */
  log(): string;
  stop(): Promise<void>;
}

export async function startLazyMount(args: readonly string[], opts: { readyMs?: number } = {}): Promise<LazyMount> {
  assertBuilt();
  const mountpoint = await mkdtemp(join(tmpdir(), 'lazystore-vm-mnt-'));
  const child: ChildProcess = spawn(process.execPath, [CLI, 'mount', mountpoint, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (log += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (log += s));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    }
    if (isMounted(mountpoint)) spawnSync('fusermount', ['-u', '-z', mountpoint]);
    await rmdir(mountpoint).catch(() => {}); // never recursive: it was a mountpoint
  };
  const deadline = Date.now() + (opts.readyMs ?? 60_000);
  while (!isMounted(mountpoint)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`lazystore mount did not come up:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { mountpoint, log: () => log, stop };
}
