/**
 * Crash recovery at open. What a crash can leave (see the write order in local-store.ts):
 * - `tmp/<owner>…` entries (imports, builds, narinfo drafts) of a process that is gone;
 * - `store/<base>` without `info/<hash>.narinfo`: renamed in, metadata never written. Not
 *   valid; removed unless a live process holds the path's lock (it is registering it now).
 * Entries of live owners and paths being registered are left alone, so several processes may
 * open one state directory at once.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../errors.js';
import { ownerAlive, ownerOf, ownerToken } from './process-owner.js';
import { removeTree } from './remove-tree.js';
import { narInfoFile, type StoreLayout } from './store-layout.js';
import type { StoreLocks } from './store-lock.js';
import { existsSync, lstatSync, renameSync } from 'node:fs';

export interface RecoveryReport {
  /** Scratch entries of dead processes that were removed. */
  removedTemp: string[];
  /** `store/` entries without metadata that were removed. */
  removedInvalid: string[];
  /** Narinfo files whose `store/` entry is missing (damage from outside: `verify` reports them). */
  missingContents: string[];
}

const BASE = /^([0-9abcdfghijklmnpqrsvwxyz]{32})-/;

export async function recoverStore(
  layout: StoreLayout,
  locks: StoreLocks,
  opts: { signal?: AbortSignal } = {},
): Promise<RecoveryReport> {
  const report: RecoveryReport = { removedTemp: [], removedInvalid: [], missingContents: [] };
  let claims = 0;
  for (const name of await readdir(layout.tmpDir)) {
    throwIfAborted(opts.signal);
    const owner = ownerOf(name);
    if (owner === undefined || ownerAlive(owner)) continue;
    // Claim the entry by renaming it to a name of ours, so a process recovering at the same
    // time skips it (a live owner) instead of removing the same tree under our feet.
    const claimed = join(layout.tmpDir, `${ownerToken()}.reclaim${claims++}`);
    try {
      renameSync(join(layout.tmpDir, name), claimed);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // another process claimed it
      throw e;
    }
    await removeTree(claimed);
    report.removedTemp.push(name);
  }
  const infos = new Set((await readdir(layout.infoDir)).filter((n) => n.endsWith('.narinfo')).map((n) => n.slice(0, -8)));
  const present = new Set<string>();
  for (const name of await readdir(layout.storeDir)) {
    throwIfAborted(opts.signal);
    const hash = BASE.exec(name)?.[1];
    if (hash === undefined) continue;
    present.add(hash);
    if (infos.has(hash)) continue;
    const release = await locks.tryAcquire(hash);
    if (release === undefined) continue; // being registered right now by a live process
    try {
      if (!existsSync(narInfoFile(layout, hash)) && existsEntry(join(layout.storeDir, name))) {
        await removeTree(join(layout.storeDir, name));
        report.removedInvalid.push(name);
      }
    } finally {
      await release();
    }
  }
  for (const hash of infos) if (!present.has(hash)) report.missingContents.push(hash);
  return report;
}

/** Like existsSync, but true for a dangling symlink too (a store path may be one). */
function existsEntry(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
