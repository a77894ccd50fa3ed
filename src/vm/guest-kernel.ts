/**
 * The host's installed Linux kernel, used as the test guest's kernel, and the modules the
 * guest needs to mount a virtio 9p share (Debian's linux-image-amd64 builds them as modules;
 * its linux-image-cloud-amd64 has no 9p at all).
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LazyError, throwIfAborted } from '../errors.js';

/** Module names (as in modules.dep, without .ko) the guest loads to mount 9p over virtio-pci. */
export const NINE_P_MODULES = ['virtio_pci', '9pnet_virtio', '9p'] as const;

export interface GuestKernel {
  version: string;
  /** The bzImage to pass to qemu -kernel. */
  kernel: string;
  /** /lib/modules/<version>. */
  modulesDir: string;
}

/** Newest kernel under /boot whose modules directory has 9p.ko (any compression); else VM_NO_KERNEL. */
export async function findGuestKernel(
  opts: { bootDir?: string; modulesRoot?: string; signal?: AbortSignal } = {},
): Promise<GuestKernel> {
  const bootDir = opts.bootDir ?? '/boot';
  const modulesRoot = opts.modulesRoot ?? '/lib/modules';
  throwIfAborted(opts.signal);
  const names = await readdir(bootDir).catch(() => [] as string[]);
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .sort((a, b) => b.localeCompare(a, 'en', { numeric: true }));
  for (const version of versions) {
    const modulesDir = join(modulesRoot, version);
    const dep = await readFile(join(modulesDir, 'modules.dep'), 'latin1').catch(() => '');
    if (/(^|\/)9p\.ko(\.xz|\.zst|\.gz)?:/m.test(dep)) {
      return { version, kernel: join(bootDir, `vmlinuz-${version}`), modulesDir };
    }
  }
  throw new LazyError(
    'VM_NO_KERNEL',
    `no kernel with 9p modules under ${bootDir} and ${modulesRoot} (apt-get install linux-image-amd64)`,
    { details: { bootDir, modulesRoot, versions } },
  );
}

/** A module file relative to the modules directory, e.g. `kernel/fs/9p/9p.ko`. */
export type ModuleFile = string;

/**
 * The module files to insmod, dependencies first, for the given module names, read from
 * modules.dep (`file: dep dep …`, each line's deps already transitively closed, listed so that
 * loading them right to left works). Names match with `-` and `_` treated alike, as modprobe does.
 */
export async function moduleLoadOrder(
  kernel: GuestKernel,
  names: readonly string[],
  opts: { signal?: AbortSignal } = {},
): Promise<ModuleFile[]> {
  throwIfAborted(opts.signal);
  const text = await readFile(join(kernel.modulesDir, 'modules.dep'), 'latin1');
  const deps = new Map<string, ModuleFile[]>();
  const byName = new Map<string, ModuleFile>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const file = line.slice(0, colon);
    deps.set(file, line.slice(colon + 1).trim().split(/\s+/).filter((s) => s !== ''));
    byName.set(moduleName(file), file);
  }
  const order: ModuleFile[] = [];
  const seen = new Set<ModuleFile>();
  const visit = (file: ModuleFile): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const d of [...(deps.get(file) ?? [])].reverse()) visit(d);
    order.push(file);
  };
  for (const name of names) {
    const file = byName.get(name.replaceAll('-', '_'));
    if (file === undefined) {
      // Built into the kernel (listed in modules.builtin) needs no insmod.
      const builtin = await readFile(join(kernel.modulesDir, 'modules.builtin'), 'latin1').catch(() => '');
      if (builtin.split('\n').some((l) => moduleName(l) === name.replaceAll('-', '_'))) continue;
      throw new LazyError('VM_NO_MODULE', `kernel ${kernel.version} has no module ${name}`, {
        details: { modulesDir: kernel.modulesDir, name },
      });
    }
    visit(file);
  }
  return order;
}

/** `kernel/net/9p/9pnet-virtio.ko.xz` → `9pnet_virtio`. */
export function moduleName(file: string): string {
  const base = file.slice(file.lastIndexOf('/') + 1);
  return base.replace(/\.ko(\.xz|\.zst|\.gz)?$/, '').replaceAll('-', '_');
}

