/**
 * The NAR serialisation of a file tree on disk, as `nix-store --dump` writes it, streamed in
 * 1 MiB chunks. The walk runs in a worker thread with synchronous fs calls (see
 * nar-worker-main.ts for why), so the caller's thread never blocks; at most
 * `DUMP_CREDITS` chunks are buffered ahead of the consumer.
 *
 * Directory entries are sorted bytewise on their raw names (non-UTF-8 names survive); a regular
 * file is executable when its owner-execute bit is set; sockets, fifos and devices are rejected
 * with `STORE_UNSUPPORTED_FILE`.
 */
import { streamNarJob } from './nar-worker-pool.js';

export function dumpPath(fsPath: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<Buffer> {
  return streamNarJob(fsPath, opts);
}
