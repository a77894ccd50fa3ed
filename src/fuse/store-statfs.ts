/**
 * What statfs answers for the mount, whichever transport asks: the size of the filesystem
 * holding the unpacked store, and nothing free (the mount is read-only).
 */
import { statfs } from 'node:fs/promises';

export interface StoreStatfs {
  /** Blocks of `bsize` bytes. */
  blocks: number;
  bsize: number;
  files: number;
  namelen: number;
}

export async function storeStatfs(stateDir: string): Promise<StoreStatfs> {
  const s = await statfs(stateDir);
  return { blocks: s.blocks, bsize: s.bsize, files: s.files, namelen: 255 };
}
