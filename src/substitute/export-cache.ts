/**
 * `copy --to file://DIR`: writes store paths (with their closure) as a flat-file binary cache
 * that real Nix reads: nix-cache-info, `<hash>.narinfo`, `nar/<filehash>.nar[.xz|.zst|.bz2]`.
 * Every file is written to a temp name and renamed, NARs before their narinfo and a path's
 * narinfo only after its references' narinfos, so a reader never sees a dangling entry.
 * Paths whose narinfo is already there are skipped, as Nix does.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { access, mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import { LazyError, throwIfAborted } from '../errors.js';
import { StreamingHash, formatHash, hashEquals } from '../nix/hash.js';
import { formatNarInfo, narInfoFingerprint, type NarInfo } from '../nix/narinfo.js';
import { signFingerprint, type SecretKey } from '../nix/signing.js';
import { baseName, hashPart, type StorePath } from '../nix/store-path.js';
import { dumpPath } from '../store/nar-dump.js';
import type { PathInfo } from '../store/path-info.js';
import { formatCacheInfo } from './cache-info.js';
import { compress, compressionExtension, type ExportCompression } from './compress.js';

/** What exporting needs from the store (LocalStore provides it). */
export interface ExportSource {
  closure(paths: Iterable<StorePath>, opts?: { signal?: AbortSignal }): Promise<StorePath[]>;
  queryPathInfo(p: StorePath, opts?: { signal?: AbortSignal }): Promise<PathInfo | undefined>;
  realPath(p: StorePath): string;
}

export interface ExportOptions {
  /** Target directory (a `file://` URL's path). */
  dir: string;
  compression?: ExportCompression;
  /** Adds a `Sig:` by this key (kept alongside the path's existing signatures). */
  signingKey?: SecretKey;
  /** Paths written at once (default 2: xz is CPU-bound, one core each). */
  jobs?: number;
  signal?: AbortSignal;
  onProgress?: (e: { path: StorePath; state: 'exists' | 'written'; fileSize?: number }) => void;
}

export interface ExportResult {
  written: StorePath[];
  skipped: StorePath[];
}

export async function exportCache(store: ExportSource, paths: Iterable<StorePath>, opts: ExportOptions): Promise<ExportResult> {
  const { dir, signal } = opts;
  const compression = opts.compression ?? 'xz';
  await mkdir(join(dir, 'nar'), { recursive: true });
  if (!(await exists(join(dir, 'nix-cache-info')))) await writeAtomic(join(dir, 'nix-cache-info'), formatCacheInfo());
  const closure = await store.closure(paths, { signal });
  const limit = pLimit(Math.max(1, opts.jobs ?? 2));
  const jobs = new Map<StorePath, Promise<void>>();
  const result: ExportResult = { written: [], skipped: [] };

  const ensure = (p: StorePath): Promise<void> => {
    let job = jobs.get(p);
    if (!job) {
      job = exportOne(p);
      jobs.set(p, job);
    }
    return job;
  };
  const exportOne = async (p: StorePath): Promise<void> => {
    const narInfoPath = join(dir, `${hashPart(p)}.narinfo`);
    if (await exists(narInfoPath)) {
      result.skipped.push(p);
      opts.onProgress?.({ path: p, state: 'exists' });
      return;
    }
    const info = await store.queryPathInfo(p, { signal });
    if (!info) throw new LazyError('SUBST_EXPORT_INVALID', `cannot export ${p}: it is not valid in the store`, { details: { path: p } });
    const narInfo = await limit(() => writeNar(store, info, dir, compression, signal));
    await Promise.all(info.references.filter((r) => r !== p).map(ensure));
    if (opts.signingKey) {
      const sig = signFingerprint(opts.signingKey, narInfoFingerprint(narInfo));
      narInfo.sigs = [...narInfo.sigs.filter((s) => !s.startsWith(`${opts.signingKey!.name}:`)), sig];
    }
    await writeAtomic(narInfoPath, formatNarInfo(narInfo));
    result.written.push(p);
    opts.onProgress?.({ path: p, state: 'written', fileSize: narInfo.fileSize });
  };

  // allSettled first so no write is still running when we report a failure.
  const outcomes = await Promise.allSettled(closure.map(ensure));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
  return result;
}

/** Dumps, hashes, compresses and stores one NAR; returns its narinfo (without new signature). */
async function writeNar(store: ExportSource, info: PathInfo, dir: string, compression: ExportCompression, signal?: AbortSignal): Promise<NarInfo> {
  throwIfAborted(signal);
  const narHash = new StreamingHash('sha256');
  const fileHash = new StreamingHash('sha256');
  const tmp = join(dir, 'nar', `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    const nar = tap(dumpPath(store.realPath(info.path), { signal }), narHash);
    await pipeline(tap(compress(nar, compression, { what: `NAR of ${info.path}`, signal }), fileHash), createWriteStream(tmp), { signal });
    const actual = narHash.digest();
    if (!hashEquals(actual, info.narHash) || narHash.size !== info.narSize) {
      throw new LazyError(
        'SUBST_EXPORT_CORRUPT',
        `${info.path} in the store no longer matches its metadata: expected ${formatHash(info.narHash)} (${info.narSize} bytes), got ${formatHash(actual)} (${narHash.size} bytes)`,
        { details: { path: info.path, expected: formatHash(info.narHash), actual: formatHash(actual) } },
      );
    }
    const fh = fileHash.digest();
    const url = `nar/${formatHash(fh, 'nix32', false)}.nar${compressionExtension(compression)}`;
    await rename(tmp, join(dir, url));
    const narInfo: NarInfo = {
      storePath: info.path,
      url,
      compression,
      fileHash: fh,
      fileSize: fileHash.size,
      narHash: info.narHash,
      narSize: info.narSize,
      references: info.references.map(baseName).sort(),
      sigs: [...info.sigs],
      extra: [],
    };
    if (info.deriver !== undefined) narInfo.deriver = baseName(info.deriver);
    if (info.ca !== undefined) narInfo.ca = info.ca;
    return narInfo;
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

async function* tap(source: AsyncIterable<Uint8Array>, h: StreamingHash): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    h.update(chunk);
    yield chunk;
  }
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
