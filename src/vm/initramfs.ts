/**
 * Builds the test guest's initramfs: a newc cpio archive (uncompressed: the kernel unpacks it
 * directly, and at ~3 MB compression would only cost boot time) holding static busybox, the
 * 9p kernel modules, scripts/vm/init.sh as /init, and the run's command, shares and marker.
 * Built per run in a scratch directory (~20 ms), so runs never share state.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, writeFile, chmod, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { LazyError, throwIfAborted } from '../errors.js';
import type { GuestKernel, ModuleFile } from './guest-kernel.js';

/** One 9p share: qemu `-virtfs …,mount_tag=<tag>`, mounted read-only in the guest at `mountAt`. */
export interface GuestShare {
  tag: string;
  /** Host directory qemu serves (may be a FUSE mountpoint: qemu, not the daemon, reads it). */
  hostPath: string;
  /** Absolute guest path, e.g. /nix/store. */
  mountAt: string;
}

export interface InitramfsSpec {
  kernel: GuestKernel;
  /** Module files relative to kernel.modulesDir, in load order (see moduleLoadOrder). */
  modules: readonly ModuleFile[];
  shares: readonly GuestShare[];
  /** Shell script the guest runs with busybox sh. */
  command: string;
  marker: string;
  /** Static busybox for the guest (default /bin/busybox from Debian's busybox-static). */
  busybox?: string;
  /** Guest init script (default scripts/vm/init.sh of this package). */
  initScript?: string;
}

/** scripts/vm/init.sh, found from both src/vm (vitest) and dist/src/vm (built). */
export function defaultInitScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '..', '..', 'scripts', 'vm', 'init.sh'), join(here, '..', '..', '..', 'scripts', 'vm', 'init.sh')];
  return candidates.find((c) => existsSync(c)) ?? (candidates[0] as string);
}

const TAG_RE = /^[A-Za-z0-9_.-]{1,31}$/;

/** Writes the archive to `out`; `scratch` is an empty directory it may fill. */
export async function buildInitramfs(
  spec: InitramfsSpec,
  out: string,
  scratch: string,
  opts: { signal?: AbortSignal } = {},
): Promise<void> {
  const { signal } = opts;
  throwIfAborted(signal);
  for (const s of spec.shares) {
    if (!TAG_RE.test(s.tag) || !s.mountAt.startsWith('/') || /\s/.test(s.mountAt)) {
      throw new LazyError('VM_BAD_SHARE', `bad 9p share ${s.tag} at ${s.mountAt}`, { details: { share: s } });
    }
  }
  const root = join(scratch, 'root');
  await mkdir(join(root, 'bin'), { recursive: true });
  await mkdir(join(root, 'vm', 'mod'), { recursive: true });
  await copyFile(spec.busybox ?? '/bin/busybox', join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  await copyFile(spec.initScript ?? defaultInitScript(), join(root, 'init'));
  await chmod(join(root, 'init'), 0o755);

  const names: string[] = [];
  for (const file of spec.modules) {
    const name = basename(file).replace(/\.(xz|zst|gz)$/, '');
    await unpackModule(join(spec.kernel.modulesDir, file), join(root, 'vm', 'mod', name), { signal });
    names.push(name);
  }
  await writeFile(join(root, 'vm', 'modules'), names.map((n) => n + '\n').join(''));
  await writeFile(join(root, 'vm', 'shares'), spec.shares.map((s) => `${s.tag} ${s.mountAt}\n`).join(''));
  await writeFile(join(root, 'vm', 'command'), spec.command.endsWith('\n') ? spec.command : spec.command + '\n');
  await writeFile(join(root, 'vm', 'marker'), spec.marker + '\n');

  const list = ['.', 'bin', 'bin/busybox', 'init', 'vm', 'vm/mod', 'vm/modules', 'vm/shares', 'vm/command', 'vm/marker']
    .concat(names.map((n) => `vm/mod/${n}`))
    .join('\n');
  const r = await execa('cpio', ['--create', '--format=newc', '--quiet', '--owner=0:0'], {
    cwd: root,
    input: list + '\n',
    stdout: { file: out },
    reject: false,
    cancelSignal: signal,
  });
  throwIfAborted(signal);
  if (r.exitCode !== 0) {
    throw new LazyError('VM_INITRAMFS_FAILED', `cpio failed: ${String(r.stderr).trim()}`, { details: { out } });
  }
}

/** Copies a kernel module, decompressing .ko.xz / .ko.zst / .ko.gz (busybox insmod takes plain .ko). */
async function unpackModule(src: string, dest: string, opts: { signal?: AbortSignal }): Promise<void> {
  if (src.endsWith('.ko')) return copyFile(src, dest);
  if (src.endsWith('.gz')) return writeFile(dest, gunzipSync(await readFile(src)));
  const tool = src.endsWith('.xz') ? 'xz' : src.endsWith('.zst') ? 'zstd' : undefined;
  if (tool === undefined) throw new LazyError('VM_NO_MODULE', `unknown module format: ${src}`);
  const r = await execa(tool, ['-dc', src], { stdout: { file: dest }, reject: false, cancelSignal: opts.signal });
  throwIfAborted(opts.signal);
  if (r.exitCode !== 0) throw new LazyError('VM_INITRAMFS_FAILED', `${tool} -dc ${src} failed: ${String(r.stderr).trim()}`);
}
