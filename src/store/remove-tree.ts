/** Removing store trees, whose directories are read-only (0555) once canonical. */
import { chmod, lstat, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** `rm -rf` that first makes read-only directories writable when it has to (non-root). */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
  }
  await makeDirsWritable(path);
  await rm(path, { recursive: true, force: true });
}

async function makeDirsWritable(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  await chmod(path, 0o755);
  for (const name of await readdir(path)) await makeDirsWritable(join(path, name));
}
