/**
 * Puts a build's input closure into the host directory that becomes the sandbox's /nix/store.
 * With a separate build user (build-user.ts), regular files are hard-linked (same filesystem;
 * the builder cannot write them: root owns them, mode 0444/0555); symlinks are re-created;
 * directories, and files when there is no build user, are read-only bind mounts whose
 * mountpoints are made here, concurrently, so bwrap finds them ready.
 */
import { link, lstat, mkdir, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { baseName, type StorePath } from '../nix/store-path.js';

type Kind = 'file' | 'dir' | 'symlink';

/** Store paths are immutable once valid, so their kind is remembered for the process. */
const kinds = new Map<string, Kind>();

/** Metadata operations in flight at once: the latency is the disk's, not the CPU's. */
const IO_CONCURRENCY = 16;

export interface InputBind {
  hostPath: string;
  storePath: string;
}

export async function prepareInputs(
  storeDir: string,
  inputs: readonly StorePath[],
  opts: { realPath: (p: StorePath) => string; linkFiles: boolean },
): Promise<InputBind[]> {
  const binds: InputBind[] = [];
  const limit = pLimit(IO_CONCURRENCY);
  await Promise.all(
    inputs.map((p) =>
      limit(async () => {
        const real = opts.realPath(p);
        const dest = join(storeDir, baseName(p));
        const kind = kinds.get(real) ?? (await kindOf(real));
        kinds.set(real, kind);
        if (opts.linkFiles && kind === 'file') return link(real, dest);
        if (kind === 'symlink') return symlink(await readlink(real), dest);
        binds.push({ hostPath: real, storePath: p });
        if (kind === 'dir') await mkdir(dest);
        else await writeFile(dest, '');
      }),
    ),
  );
  return binds;
}

async function kindOf(real: string): Promise<Kind> {
  const st = await lstat(real);
  return st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file';
}
