/** Removing store trees, whose directories are read-only (0555) once canonical. */
import { chmod, lstat, readdir, rename, rm } from 'node:fs/promises';
import { renameSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `rm -rf` that first makes read-only directories writable when it has to (non-root). A tree
 * that vanishes meanwhile (another process recovering the same scratch) is not an error.
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
  }
  await makeDirsWritable(path);
  await rm(path, { recursive: true, force: true });
}

async function makeDirsWritable(path: string): Promise<void> {
  try {
    const st = await lstat(path);
    if (!st.isDirectory()) return;
    await chmod(path, 0o755);
    for (const name of await readdir(path)) await makeDirsWritable(join(path, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * `rename(from, to)` that also works for a read-only directory run by a non-root user: moving a
 * directory to another parent rewrites its `..` entry, which needs write permission on the
 * directory itself (EACCES otherwise). The mode is restored after the move; chmod leaves the
 * mtime alone. Whatever is at `to` is replaced if `replace`, else the rename's error is thrown.
 */
export async function moveTree(from: string, to: string, opts: { replace?: boolean } = {}): Promise<void> {
  try {
    renameSync(from, to); // one metadata call: cheaper than a thread-pool round trip (see local-store.ts)
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES') {
      const st = await lstat(from);
      if (!st.isDirectory() || (st.mode & 0o200) !== 0) throw e;
      await chmod(from, (st.mode & 0o7777) | 0o200);
      try {
        await moveTree(from, to, opts);
      } catch (e2) {
        await chmod(from, st.mode & 0o7777).catch(() => undefined);
        throw e2;
      }
      await chmod(to, st.mode & 0o7777);
      return;
    }
    if (!opts.replace || (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EISDIR' && code !== 'ENOTDIR')) throw e;
  }
  await removeTree(to);
  await rename(from, to);
}
