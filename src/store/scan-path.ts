/**
 * NAR hash, NAR size and references of a file tree, in one streaming pass: what a build
 * registers for each output. The NAR is produced, hashed and scanned inside a worker thread, so
 * no bytes cross to the caller's thread.
 *
 * References are found as Nix finds them: the 32-char hash part of each candidate, anywhere in
 * the NAR serialisation (contents, symlink targets and file names).
 */
import { LazyError } from '../errors.js';
import type { Hash } from '../nix/hash.js';
import { hashPart, type StorePath } from '../nix/store-path.js';
import { SCAN_CHUNK_SIZE, runNarJob } from './nar-worker-pool.js';

export interface ScanResult {
  narHash: Hash;
  narSize: number;
  references: Set<StorePath>;
}

export async function scanPath(
  fsPath: string,
  opts: { refCandidates?: Iterable<StorePath>; signal?: AbortSignal } = {},
): Promise<ScanResult> {
  const byHash = new Map<string, StorePath>();
  for (const p of opts.refCandidates ?? []) byHash.set(hashPart(p), p);
  const reply = await runNarJob({ op: 'scan', path: fsPath, chunkSize: SCAN_CHUNK_SIZE, candidates: [...byHash.keys()] }, { signal: opts.signal });
  if (reply.narHash === undefined) throw new LazyError('STORE_WORKER_FAILED', 'NAR worker returned no hash');
  const references = new Set<StorePath>();
  for (const h of reply.found ?? []) references.add(byHash.get(h)!);
  return { narHash: { algo: 'sha256', digest: Buffer.from(reply.narHash) }, narSize: reply.narSize, references };
}
