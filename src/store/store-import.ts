/**
 * Getting contents into the store: from a NAR stream (substitution, `nix-store --dump`) or from
 * a file tree on disk (builder inputs from a host store). Both restore into `tmp/` — canonical
 * modes and mtime as they are written — verify, then `register`. On any failure nothing is
 * left behind: the scratch directory is removed and the path stays invalid.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { LazyError, abortError, isLazyError, throwIfAborted } from '../errors.js';
import { StreamingHash, formatHash, hashEquals, hashOf, type Hash, type HashAlgo } from '../nix/hash.js';
import { encodeNar } from '../nix/nar-writer.js';
import { RefScanner } from '../nix/refscan.js';
import { checkStoreName, hashPart, makeFixedOutputPath, nameOf, type StorePath } from '../nix/store-path.js';
import { WholeBytes } from '../nix/whole-bytes.js';
import { checkContentAddress, formatContentAddress, parseContentAddress } from './content-address.js';
import type { LocalStore } from './local-store.js';
import { dumpPath } from './nar-dump.js';
import { planSmallNar, restoreNar, writeSmallNar } from './nar-restore.js';
import type { RestoreOp } from './nar-restore-worker.js';
import type { PathInfo } from './path-info.js';
import { removeTree } from './remove-tree.js';
import { testPause } from './test-pause.js';

/** What the NAR must turn out to be (typically from a narinfo). */
export interface NarExpectation {
  path: StorePath;
  /** Checked at the end of the stream; any algorithm. */
  narHash?: Hash;
  /** Checked while streaming: the import fails as soon as the stream runs past it. */
  narSize?: number;
  references: StorePath[];
  deriver?: StorePath;
  /** Checked against the contents and the path when given. */
  ca?: string;
  sigs?: string[];
}

export interface DirectoryImport {
  /**
   * The store path to register as. Verified when possible: when it is the content-addressed
   * (`source`) path of the contents, or against `ca` or `narHash` when given; an input-addressed
   * path with neither is taken on trust. Without `path`, the contents are added like
   * `nix-store --add`: the `source` path of `name`, with CA `fixed:r:sha256:…`.
   */
  path?: StorePath;
  name?: string;
  /** Store paths the contents may mention; those found become the references. */
  refCandidates?: Iterable<StorePath>;
  narHash?: Hash;
  deriver?: StorePath;
  ca?: string;
  sigs?: string[];
  signal?: AbortSignal;
}

export async function importNar(
  store: LocalStore,
  source: AsyncIterable<Uint8Array>,
  expected: NarExpectation,
  opts: { signal?: AbortSignal } = {},
): Promise<PathInfo> {
  const { path } = expected;
  const known = await store.queryPathInfo(path, opts);
  if (known) {
    await discardSource(source);
    return known;
  }
  // Restored straight to a fresh tmp/ name: a container directory would cost a mkdir and an
  // rmdir per path, a third of the metadata operations of a small path.
  const dest = store.tempPath(`nar-${nameOf(path)}`);
  try {
    const algos = new Set<HashAlgo>();
    if (expected.narHash && expected.narHash.algo !== 'sha256') algos.add(expected.narHash.algo);
    if (expected.ca !== undefined) {
      const ca = parseContentAddress(expected.ca);
      if (ca.method === 'recursive' && ca.hash.algo !== 'sha256') algos.add(ca.hash.algo);
    }
    // A small NAR held whole (most substituted paths): parsed and checked in one go, written
    // with synchronous calls only once its size and hash are right. Otherwise streamed: written
    // as it is parsed, checked at the end.
    const whole = source instanceof WholeBytes ? source.bytes : undefined;
    const plan = whole === undefined ? undefined : planWhole(path, whole, expected.narSize);
    let restored: { narSize: number; narHash: Hash };
    let narHashes: (algo: HashAlgo) => Hash | undefined;
    /** A flat/text CA hashes the lone file: known here when the NAR is in memory. */
    let file: Buffer | null | undefined;
    if (whole !== undefined && plan !== undefined) {
      const op = plan.length === 1 ? plan[0]! : undefined;
      const root = op && op[0] === 'f' && op[1] === '' ? op : undefined;
      file = root ? whole.subarray(root[3], root[3] + root[4]) : null;
      const narHash = hashOf('sha256', whole);
      restored = { narSize: whole.length, narHash };
      narHashes = (algo) => (algo === 'sha256' ? narHash : hashOf(algo, whole));
      checkNar(expected, restored.narSize, narHashes);
      throwIfAborted(opts.signal);
      writeSmallNar(whole, plan, dest);
    } else {
      const tap = new NarTap(path, expected.narSize, algos, undefined, opts.signal);
      restored = await withPath(path, restoreNar(tap.wrap(source), dest, opts));
      narHashes = tap.hashes(restored.narHash);
      checkNar(expected, restored.narSize, narHashes);
    }
    if (expected.ca !== undefined) {
      await checkContentAddress({ path, ca: expected.ca, references: expected.references, fsPath: dest, narHash: narHashes, file, signal: opts.signal });
    }
    const info: PathInfo = {
      path,
      narHash: restored.narHash,
      narSize: restored.narSize,
      references: [...expected.references].sort(),
      sigs: [...(expected.sigs ?? [])],
    };
    if (expected.deriver !== undefined) info.deriver = expected.deriver;
    if (expected.ca !== undefined) info.ca = expected.ca;
    await testPause('import:restored');
    return await store.register(dest, info, opts);
  } catch (e) {
    await removeTree(dest);
    throw e;
  }
}

/** NarSize and NarHash of a restored NAR against the expectation (both optional there). */
function checkNar(expected: NarExpectation, narSize: number, narHashes: (algo: HashAlgo) => Hash | undefined): void {
  const { path } = expected;
  if (expected.narSize !== undefined && narSize !== expected.narSize) throw sizeMismatch(path, expected.narSize, narSize);
  if (expected.narHash) {
    const actual = narHashes(expected.narHash.algo)!;
    if (!hashEquals(actual, expected.narHash)) {
      throw new LazyError('STORE_NAR_HASH_MISMATCH', `NAR hash mismatch for '${path}': expected ${formatHash(expected.narHash)}, got ${formatHash(actual)}`, {
        details: { path, expected: formatHash(expected.narHash), actual: formatHash(actual) },
      });
    }
  }
}

/**
 * planSmallNar for the NAR of `path`, with the errors the streaming path gives: a NAR longer
 * than promised is a size mismatch (as NarTap finds it before the parser does), NAR_* errors
 * name the path.
 */
function planWhole(path: StorePath, nar: Buffer, narSize: number | undefined): RestoreOp[] | undefined {
  if (narSize !== undefined && nar.length > narSize) throw sizeMismatch(path, narSize, nar.length, true);
  try {
    return planSmallNar(nar);
  } catch (e) {
    throw withPathSync(path, e);
  }
}

export async function importDirectory(store: LocalStore, srcPath: string, opts: DirectoryImport): Promise<PathInfo> {
  const { signal } = opts;
  if (opts.path) {
    const known = await store.queryPathInfo(opts.path, opts);
    if (known) return known;
  }
  const name = opts.path ? nameOf(opts.path) : opts.name;
  if (name === undefined) throw new LazyError('STORE_BAD_IMPORT', `importing '${srcPath}' needs a store path or a name`);
  checkStoreName(name);
  const index = candidateIndex(opts.refCandidates);
  const selfHash = opts.path === undefined ? undefined : hashPart(opts.path);
  const scanner = new RefScanner(selfHash === undefined ? index.hashes : [...index.hashes, selfHash]);
  const pathOfHash = (h: string): StorePath => (h === selfHash ? opts.path! : index.byHash.get(h)!);
  const dest = store.tempPath(`import-${name}`);
  try {
    const tap = new NarTap(opts.path ?? name, undefined, new Set(), scanner, signal);
    const restored = await withPath(opts.path ?? srcPath, restoreNar(tap.wrap(smallNar(srcPath) ?? dumpPath(srcPath, { signal })), dest, { signal }));
    const references = [...scanner.found()].map(pathOfHash).sort();
    const recursive = { method: 'recursive' as const, hash: restored.narHash };
    const sourcePath = makeFixedOutputPath(
      name,
      recursive,
      references.filter((r) => r !== opts.path),
      opts.path !== undefined && references.includes(opts.path),
    );
    const path = opts.path ?? sourcePath;
    let ca = opts.ca;
    if (path === sourcePath) {
      ca ??= formatContentAddress(recursive);
    }
    if (ca !== undefined) {
      await checkContentAddress({ path, ca, references, fsPath: dest, narHash: tap.hashes(restored.narHash), signal });
    } else if (opts.narHash && !hashEquals(opts.narHash, restored.narHash)) {
      throw new LazyError(
        'STORE_NAR_HASH_MISMATCH',
        `NAR hash mismatch for '${path}' (from ${srcPath}): expected ${formatHash(opts.narHash)}, got ${formatHash(restored.narHash)}`,
        { details: { path, expected: formatHash(opts.narHash), actual: formatHash(restored.narHash) } },
      );
    }
    const info: PathInfo = { path, narHash: restored.narHash, narSize: restored.narSize, references, sigs: [...(opts.sigs ?? [])] };
    if (opts.deriver !== undefined) info.deriver = opts.deriver;
    if (ca !== undefined) info.ca = ca;
    return await store.register(dest, info, { signal });
  } catch (e) {
    await removeTree(dest);
    throw e;
  }
}

interface CandidateIndex {
  list: StorePath[];
  byHash: Map<string, StorePath>;
  hashes: string[];
}
let lastIndex: CandidateIndex | undefined;

/**
 * Hash part → path for a list of reference candidates, remembered for the last list: importing a
 * closure passes the same list for every path, and rebuilding the map each time (562 paths ×
 * 562 candidates, hashPart and a Map insert each, plus the garbage) was a quarter of the CPU
 * profile of `bench store-import`. Reused only when the new list is element for element the
 * same, so a caller changing its list gets a new index.
 */
function candidateIndex(refCandidates: Iterable<StorePath> | undefined): CandidateIndex {
  const list = refCandidates === undefined ? [] : Array.isArray(refCandidates) ? (refCandidates as StorePath[]) : [...refCandidates];
  const last = lastIndex;
  if (last && last.list.length === list.length && last.list.every((p, i) => p === list[i])) return last;
  const byHash = new Map<string, StorePath>();
  for (const c of list) byHash.set(hashPart(c), c);
  lastIndex = { list: [...list], byHash, hashes: [...byHash.keys()] };
  return lastIndex;
}

/** Largest lone file whose NAR `smallNar` builds (restoreNar then writes it in this thread too). */
const SMALL_DUMP = 60 << 10;

/**
 * The NAR of a lone small regular file or a symlink, read here with synchronous calls instead of
 * by a dump worker (a job hand-out, a ring and two messages a path). Synchronous because the
 * promise API's five thread-pool round trips cost more than the worker did (562 host paths:
 * 0.57 s vs 0.50 s through the worker, 0.33 s with sync reads); a page-cached 60 KiB read
 * takes ~30 µs. Undefined for anything else, or on any doubt, so dumpPath decides and reports.
 */
function smallNar(fsPath: string): AsyncIterable<Buffer> | undefined {
  try {
    const st = lstatSync(fsPath);
    if (st.isSymbolicLink()) return once(encodeNar({ type: 'symlink', target: readlinkSync(fsPath, { encoding: 'buffer' }).toString('latin1') }));
    if (!st.isFile() || st.size > SMALL_DUMP) return undefined;
    const contents = readFileSync(fsPath);
    if (contents.length !== st.size) return undefined; // changing under us
    return once(encodeNar({ type: 'regular', executable: (st.mode & 0o100) !== 0, contents }));
  } catch {
    return undefined;
  }
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/**
 * Watches a NAR stream on its way to restoreNar: counts bytes (failing the moment they pass
 * the expected size, so a bad substituter cannot fill the disk), feeds extra hash algorithms
 * and a reference scanner.
 */
class NarTap {
  private size = 0;
  private readonly extra: Map<HashAlgo, StreamingHash>;

  constructor(
    private readonly what: string,
    private readonly limit: number | undefined,
    algos: Set<HashAlgo>,
    private readonly scanner?: RefScanner,
    private readonly signal?: AbortSignal,
  ) {
    this.extra = new Map([...algos].map((a) => [a, new StreamingHash(a)]));
  }

  async *wrap(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      if (this.signal?.aborted) throw abortError(this.signal);
      this.size += chunk.length;
      if (this.limit !== undefined && this.size > this.limit) throw sizeMismatch(this.what, this.limit, this.size, true);
      for (const h of this.extra.values()) h.update(chunk);
      this.scanner?.update(chunk);
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    }
  }

  /** NAR hash by algorithm, once the stream is done (sha256 comes from restoreNar). */
  hashes(sha256: Hash): (algo: HashAlgo) => Hash | undefined {
    const digests = new Map<HashAlgo, Hash>([...this.extra].map(([a, h]) => [a, h.digest()]));
    digests.set('sha256', sha256);
    return (algo) => digests.get(algo);
  }
}

function sizeMismatch(path: string, expected: number, actual: number, atLeast = false): LazyError {
  return new LazyError('STORE_NAR_SIZE_MISMATCH', `NAR size mismatch for '${path}': expected ${expected} bytes, got ${atLeast ? 'at least ' : ''}${actual}`, {
    details: { path, expected, actual },
  });
}

/**
 * Errors of the NAR layer name the path they were importing. The tap's own failures (STORE_*,
 * ABORTED) reach here unchanged: parseNar passes its source's errors through.
 */
async function withPath<T>(path: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw withPathSync(path, e);
  }
}

function withPathSync(path: string, e: unknown): unknown {
  if (isLazyError(e) && !e.code.startsWith('STORE_') && e.code !== 'ABORTED') {
    return new LazyError(e.code, `importing '${path}': ${e.message}`, { cause: e, details: { ...e.details, path } });
  }
  return e;
}

/**
 * Lets go of a stream that will not be read (the path is valid already), so a download or a
 * decompressor process behind it is not left blocked on a full pipe.
 */
async function discardSource(source: AsyncIterable<Uint8Array>): Promise<void> {
  const s = source as { destroy?: () => void } & AsyncIterable<Uint8Array>;
  if (typeof s.destroy === 'function') {
    s.destroy();
    return;
  }
  await source[Symbol.asyncIterator]().return?.();
}
