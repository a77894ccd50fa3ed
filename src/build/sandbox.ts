/**
 * bubblewrap command line for one build with Nix 2.8's sandbox semantics.
 *
 * Layout inside the sandbox (compare /tmp/nix-reference/sandbox-env.txt):
 *   /nix/store   a fresh writable host dir (under the store's tmp/, same filesystem as the
 *                store, so registering an output is a rename); each input-closure path is a
 *                read-only bind into it, and the builder creates its outputs there itself.
 *   /build       a fresh host dir, the cwd (NIX_BUILD_TOP)
 *   /etc         passwd, group, hosts with Nix's contents (hosts from the host for fixed-output)
 *   /dev         bwrap's minimal devtmpfs (null zero full random urandom tty pts ptmx shm fd std*), kvm
 *   /proc, /tmp  fresh procfs, fresh 1777 tmpfs
 * uid 1000 gid 100 in a new user namespace, hostname localhost, every namespace unshared and
 * the network too unless the derivation is fixed-output (Nix gives those the network).
 *
 * Options travel through `--args FD` as NUL-separated raw bytes: env values may be non-UTF-8
 * and a large closure would pass ARG_MAX. bwrap only takes the command itself from argv.
 */
import { LazyError } from '../errors.js';
import { SANDBOX_BUILD_DIR, SANDBOX_STORE_DIR } from './builder-env.js';

export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 100;

/** /etc files a Nix 2.8 builder sees (sandbox-env.txt; hosts from Nix's source). */
export const SANDBOX_ETC: Readonly<Record<string, string>> = {
  passwd:
    'root:x:0:0:Nix build user:/build:/noshell\n' +
    `nixbld:x:${SANDBOX_UID}:${SANDBOX_GID}:Nix build user:/build:/noshell\n` +
    'nobody:x:65534:65534:Nobody:/:/noshell\n',
  group: 'root:x:0:\n' + `nixbld:!:${SANDBOX_GID}:\n` + 'nogroup:x:65534:\n',
  hosts: '127.0.0.1 localhost\n::1 localhost\n',
};

/** Host files a fixed-output (networked) build gets instead of the sandbox's /etc/hosts. */
export const NETWORK_ETC_FILES = ['/etc/resolv.conf', '/etc/services', '/etc/hosts'];

export interface SandboxSpec {
  /** Host dir bound writable at /nix/store. */
  storeDir: string;
  /** Host dir bound at /build. */
  buildDir: string;
  /** Host dir holding passwd, group, hosts (see SANDBOX_ETC). */
  etcDir: string;
  /** Read-only binds: the input closure, host dir → /nix/store/<base>. */
  inputs: ReadonlyArray<{ hostPath: string; storePath: string }>;
  /** Share the host network (fixed-output derivations only). */
  network: boolean;
  /** Full builder environment, byte strings. */
  env: ReadonlyMap<string, string>;
  /**
   * --max-build-size: /build (and /tmp, /dev/shm) become tmpfs mounts of at most this many
   * bytes each instead of the buildDir bind, and `buildFiles` are copied into /build from fds
   * 4, 5, … (see runSandbox's `fds`). Undefined: buildDir is bound and the tmpfs are unbounded.
   */
  tmpfsSize?: number;
  /** Base names of the files put in /build (tmpfsSize only), in fd order. */
  buildFiles?: readonly string[];
}

/** First fd of SandboxSpec.buildFiles (0-2 stdio, 3 the --args pipe). */
export const BUILD_FILES_FD = 4;

/** The options for `bwrap --args FD`, NUL-separated; the command goes on argv (builderArgv). */
export function bwrapArgs(spec: SandboxSpec): Buffer {
  const a: string[] = [
    '--unshare-all',
    ...(spec.network ? ['--share-net'] : []),
    '--die-with-parent',
    '--new-session',
    '--uid', String(SANDBOX_UID),
    '--gid', String(SANDBOX_GID),
    '--hostname', 'localhost',
    '--clearenv',
  ];
  for (const [k, v] of spec.env) {
    if (k === '' || k.includes('=') || k.includes('\0') || v.includes('\0')) {
      throw new LazyError('BUILD_BAD_ENV', `environment variable ${JSON.stringify(k)} cannot be passed to a builder`);
    }
    a.push('--setenv', k, v);
  }
  a.push('--perms', '0755', '--dir', '/nix', '--perms', '0755', '--dir', '/etc');
  a.push('--bind', spec.storeDir, SANDBOX_STORE_DIR);
  for (const i of spec.inputs) a.push('--ro-bind', i.hostPath, i.storePath);
  const size = spec.tmpfsSize === undefined ? [] : ['--size', String(spec.tmpfsSize)];
  if (spec.tmpfsSize === undefined) {
    a.push('--bind', spec.buildDir, SANDBOX_BUILD_DIR);
  } else {
    // owned by the sandbox uid, 0700, like the bound dir
    a.push(...size, '--perms', '0700', '--tmpfs', SANDBOX_BUILD_DIR);
    (spec.buildFiles ?? []).forEach((name, i) => a.push('--perms', '0644', '--file', String(BUILD_FILES_FD + i), `${SANDBOX_BUILD_DIR}/${name}`));
  }
  a.push('--chdir', SANDBOX_BUILD_DIR);
  // bwrap's /dev also has core (→ /proc/kcore, unreadable); Nix adds kvm when the host has it
  a.push('--dev', '/dev', ...size, '--perms', '1777', '--tmpfs', '/dev/shm', '--dev-bind-try', '/dev/kvm', '/dev/kvm');
  a.push('--proc', '/proc', ...size, '--perms', '1777', '--tmpfs', '/tmp');
  a.push('--ro-bind', `${spec.etcDir}/passwd`, '/etc/passwd', '--ro-bind', `${spec.etcDir}/group`, '/etc/group');
  if (spec.network) {
    for (const f of NETWORK_ETC_FILES) a.push('--ro-bind-try', f, f);
  } else {
    a.push('--ro-bind', `${spec.etcDir}/hosts`, '/etc/hosts');
  }
  return Buffer.concat(a.map((s) => Buffer.from(s + '\0', 'latin1')));
}

/**
 * `--` builder args… for bwrap's argv. Node passes argv as UTF-8, so a byte string must be
 * valid UTF-8 to survive; anything else is refused rather than silently changed.
 */
export function builderArgv(builder: string, args: readonly string[]): string[] {
  return ['--', ...[builder, ...args].map(fromByteString)];
}

function fromByteString(s: string): string {
  // execve takes C strings: a NUL cannot reach the builder (Node would throw a TypeError)
  if (s.includes('\0')) throw new LazyError('BUILD_BAD_ARG', `builder or argument contains a NUL byte: ${JSON.stringify(s)}`);
  if (!/[\x80-\xff]/.test(s)) return s;
  const bytes = Buffer.from(s, 'latin1');
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) {
    throw new LazyError('BUILD_UNSUPPORTED', `builder argument is not valid UTF-8: ${JSON.stringify(s)}`);
  }
  return text;
}
