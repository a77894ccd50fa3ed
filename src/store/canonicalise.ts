/**
 * Nix's canonicalisePathMetaData over a tree: every file and directory gets mode 0444, or 0555
 * when its owner-execute bit is set (so setuid, setgid, sticky and write bits are dropped);
 * every entry, symlinks included, gets mtime 1; ownership becomes the current user's.
 * Sockets, fifos and devices fail with `STORE_SPECIAL_FILE`. With `fromUid`, an entry owned by
 * anyone else fails with `STORE_BAD_OWNERSHIP` (a builder hard-linking a foreign file into its
 * output), unless it is a second link to a file already seen. Extended attributes are left alone
 * (Node has no xattr API).
 *
 * Runs in the NAR worker thread with synchronous fs calls: three calls per entry at most.
 */
import { runNarJob } from './nar-worker-pool.js';

export async function canonicalisePath(fsPath: string, opts: { fromUid?: number; signal?: AbortSignal } = {}): Promise<void> {
  await runNarJob({ op: 'canonicalise', path: fsPath, ...(opts.fromUid === undefined ? {} : { fromUid: opts.fromUid }) }, { signal: opts.signal });
}
