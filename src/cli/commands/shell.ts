/**
 * `lazystore shell [mount options] [--] CMD…`: runs CMD with the lazy store at /nix/store in a
 * private mount namespace, so the host's /nix/store is never touched. The daemon stays in the
 * host namespace with the mount at a temporary directory (so it reads the host's /nix/store,
 * never its own mount); only the command's namespace gets that mount bound onto /nix/store
 * (a bind works whether /nix/store is missing, empty, non-empty or already a mountpoint).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { constants } from 'node:os';
import { STORE_DIR } from '../../nix/store-path.js';
import type { Command } from '../command.js';
import { MOUNT_OPTIONS, MOUNT_OPTIONS_USAGE, startMountFromArgs, stderrLog } from './mount.js';

/** Runs in the new namespace: $0 is the mount, "$@" the command. */
const BIND_AND_EXEC = `mkdir -p ${STORE_DIR} && mount --bind "$0" ${STORE_DIR} && exec "$@"`;

export const command: Command = {
  summary: 'run a command with the lazy store mounted at /nix/store (private mount namespace)',
  usage: `usage: lazystore shell [options] [--] [CMD [ARG…]]

Mounts the lazy store, runs CMD (default: $SHELL) in a private mount namespace
(unshare -m --propagation private) where the mount is bound onto /nix/store, then unmounts.
Exits with CMD's exit code. The host's /nix/store is not changed.

options:
${MOUNT_OPTIONS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: MOUNT_OPTIONS, allowPositionals: true, strict: true });
    const cmd = positionals.length ? positionals : [process.env.SHELL ?? '/bin/sh'];
    const mp = await mkdtemp(join(tmpdir(), 'lazystore-shell-'));
    let daemon: Awaited<ReturnType<typeof startMountFromArgs>> | undefined;
    try {
      daemon = await startMountFromArgs(values, mp, stderrLog);
      return await runInNamespace(mp, cmd);
    } finally {
      await daemon?.stop();
      await rmdir(mp).catch(() => {}); // never recursive: it was a mountpoint
    }
  },
};

/** Exit code of CMD (128+signal when killed); the user's ^C goes to CMD, SIGTERM is forwarded. */
function runInNamespace(mp: string, cmd: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', BIND_AND_EXEC, mp, ...cmd], { stdio: 'inherit' });
    const ignore = () => {};
    const forward = (s: NodeJS.Signals) => child.kill(s);
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    const done = () => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
    };
    child.on('error', (e) => {
      done();
      reject(e);
    });
    child.on('exit', (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0));
    });
  });
}
