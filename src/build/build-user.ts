/**
 * The host user builders run as. As root, lazystore runs bubblewrap as an unprivileged uid
 * (like Nix's nixbld users): the builder (uid 1000 inside) then owns nothing in the store, so
 * input files can be hard-linked into its /nix/store instead of bind-mounted — a link costs
 * ~60 µs here where bwrap's file mountpoint + mount cost ~1.5 ms each (measured on this
 * machine's ext4: creat 1.5 ms, link 63 µs), and a 400-path closure made every build ~1.7 s.
 * Needs unprivileged user namespaces; probed once, and without them (or not as root) the
 * builder runs as the calling user and every input is bind-mounted read-only instead.
 */
import { spawn } from 'node:child_process';
import { bwrapExecutable } from './run-sandbox.js';

export interface BuildUser {
  uid: number;
  gid: number;
}

/** `$LAZYSTORE_BUILD_UID` (default 30000, an unassigned id; gid the same). */
export function configuredBuildUser(env: NodeJS.ProcessEnv = process.env): BuildUser {
  const uid = Number(env.LAZYSTORE_BUILD_UID ?? 30000);
  const gid = Number(env.LAZYSTORE_BUILD_GID ?? uid);
  return { uid, gid };
}

let probed: Promise<BuildUser | undefined> | undefined;

/** The build user, or undefined when builds run as the calling user (not root, or no userns). */
export function buildUser(): Promise<BuildUser | undefined> {
  probed ??= probe();
  return probed;
}

async function probe(): Promise<BuildUser | undefined> {
  if (process.getuid?.() !== 0 || process.env.LAZYSTORE_BUILD_UID === '') return undefined;
  const user = configuredBuildUser();
  if (!Number.isInteger(user.uid) || user.uid <= 0 || !Number.isInteger(user.gid) || user.gid <= 0) return undefined;
  const ok = await new Promise<boolean>((resolve) => {
    const child = spawn(bwrapExecutable(), ['--unshare-all', '--uid', '1000', '--gid', '100', '--ro-bind', '/', '/', 'true'], {
      stdio: 'ignore',
      uid: user.uid,
      gid: user.gid,
    });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
  return ok ? user : undefined;
}
