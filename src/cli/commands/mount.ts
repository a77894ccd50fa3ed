/** `lazystore mount [options] MOUNTPOINT`: serve the lazy store at MOUNTPOINT until SIGINT/SIGTERM. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { startDaemon, type Daemon } from '../../fuse/daemon.js';
import type { Command } from '../command.js';
import { REALISE_OPTIONS } from '../options.js';
import { openRealiserFromArgs, type RealiseArgs } from '../open-realiser.js';

export const MOUNT_OPTIONS = {
  ...REALISE_OPTIONS,
  /** List valid paths in the mount's root directory (off: a lazy store's root lists nothing). */
  'list-root': { type: 'boolean' },
  /** Let other users read the mount (needs user_allow_other in /etc/fuse.conf for non-root). */
  'allow-other': { type: 'boolean' },
  /** What an unrealised path of unknown type looks like before it is built: directory or symlink. */
  'unknown-as': { type: 'string' },
} as const;

export const MOUNT_OPTIONS_USAGE = `  --state DIR              state directory (default $LAZYSTORE_STATE, /var/lib/lazystore as root)
  --substituter URL        binary cache to substitute from (repeatable)
  --trusted-key NAME:KEY   trusted public key (repeatable)
  --no-check-sigs          accept unsigned paths from substituters
  --drvs DIR|FILE          learn derivations (.drv files) from here (repeatable)
  --max-jobs N             builds at once (default: cores)
  --max-substitutions N    substitutions at once (default 8)
  --timeout SECONDS        kill a build after this long (also bounds a reader's wait)
  --max-silent-time SECONDS  kill a build silent this long
  --max-log-size BYTES     kill a build whose log passes BYTES (K/M/G; default 64M, 0 = none)
  --max-build-size BYTES   size of the build's /build, /tmp (tmpfs) and of its outputs (default: no limit)
  --list-root              list valid paths in the root directory
  --allow-other            let other users read the mount
  --unknown-as KIND        libfuse only: an unbuilt path of unknown type shows as 'directory' (default) or 'symlink'`;

export type MountArgs = RealiseArgs & { 'list-root'?: boolean; 'allow-other'?: boolean; 'unknown-as'?: string };

/** Opens the store and realiser from parsed options and mounts; prints the ready line. */
export async function startMountFromArgs(values: MountArgs, mountpoint: string, log: (line: string) => void): Promise<Daemon> {
  const unknownAs = values['unknown-as'] ?? 'directory';
  if (unknownAs !== 'directory' && unknownAs !== 'symlink') {
    throw new LazyError('CLI_BAD_OPTION', `--unknown-as must be 'directory' or 'symlink', not '${unknownAs}'`);
  }
  const { store, realiser, stateDir, timeoutMs } = await openRealiserFromArgs(values);
  const daemon = await startDaemon({
    mountpoint,
    stateDir,
    store,
    realiser,
    listRoot: values['list-root'] ?? false,
    allowOther: values['allow-other'] ?? false,
    unknownKind: unknownAs,
    // a reader waits for the build's own timeout plus its inputs' time; bound it generously
    waitMs: timeoutMs === undefined ? undefined : timeoutMs * 4,
    log,
  });
  process.stderr.write(`lazystore: mounted ${stateDir} at ${daemon.mount.mountpoint}\n`);
  return daemon;
}

/** Resolves on the first SIGINT or SIGTERM (handlers removed afterwards). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export function stderrLog(line: string): void {
  process.stderr.write(`lazystore: ${line}\n`);
}

export const command: Command = {
  summary: 'serve the lazy store at a mountpoint (FUSE), building or substituting paths on first read',
  usage: `usage: lazystore mount [options] MOUNTPOINT

Mounts the store read-only at MOUNTPOINT (usually /nix/store) and runs in the foreground. A
path that is not in the store is substituted or built when something inside it is read.
SIGINT/SIGTERM cancel running builds, unmount and exit 0. A stale mount left at MOUNTPOINT by a
killed daemon is cleared first.

As root the mount speaks the FUSE protocol itself: a lookup of an unbuilt path waits for it
(other lookups go on), built files are read by the kernel from the state directory (FUSE
passthrough, Linux >= 6.9), and a failed path is EIO, its reason in the daemon's log and in
the mount root's user.lazystore.error.<name> attribute. As another user (or with
LAZYSTORE_FUSE=libfuse) it goes through libfuse 2, where unbuilt paths are guessed at first
(--unknown-as). Details: docs/MOUNT.md.

options:
${MOUNT_OPTIONS_USAGE}`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: MOUNT_OPTIONS, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new LazyError('CLI_USAGE', 'mount takes exactly one MOUNTPOINT');
    const stop = untilSignal();
    const daemon = await startMountFromArgs(values, positionals[0] as string, stderrLog);
    const sig = await stop;
    stderrLog(`${sig}: cancelling builds and unmounting`);
    await daemon.stop();
    return 0;
  },
};
