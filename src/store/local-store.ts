/**
 * The embedded store: a state directory of unpacked canonical paths plus narinfo metadata.
 *
 * Write order, which every crash-consistency argument rests on:
 *   1. contents are prepared in `tmp/` (same filesystem) by the caller or an import;
 *   2. under the path's lock (store-lock.ts), `rename(tmp, store/<base>)`;
 *   3. the narinfo is drafted in `tmp/` and renamed to `info/<hash>.narinfo` — the commit point.
 * Delete runs it backwards (narinfo first). So a crash leaves only scratch in `tmp/` or a
 * `store/` entry without narinfo, both removed by recovery (store-recovery.ts) at the next open.
 * Not covered: power loss (nothing is fsynced; `lazystore verify --check-contents` finds what
 * the disk lost).
 *
 * The small metadata calls of the write path (narinfo read, draft write, renames) are
 * synchronous: each is a few µs in the kernel, while going through libuv's thread pool costs a
 * round trip that dominated under load — importing 561 small host paths took 3.2–4.0 s with
 * them async and 1.4–1.9 s sync (2 cores, load ~12).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LRUCache } from 'lru-cache';
import { LazyError, throwIfAborted } from '../errors.js';
import { formatNarInfo, parseNarInfo } from '../nix/narinfo.js';
import { baseName, hashPart, parseStoreBaseName, type StorePath } from '../nix/store-path.js';
import { closureOf } from './closure.js';
import { pathInfoFromNarInfo, pathInfoToNarInfo, type PathInfo } from './path-info.js';
import { ownerToken } from './process-owner.js';
import { moveTree, removeTree } from './remove-tree.js';
import { narInfoFile, storeLayout, type StoreLayout } from './store-layout.js';
import { StoreLocks } from './store-lock.js';
import { recoverStore, type RecoveryReport } from './store-recovery.js';
import { importDirectory, importNar, type DirectoryImport, type NarExpectation } from './store-import.js';
import { registerAll } from './register-all.js';
import { testPause } from './test-pause.js';

export type { DirectoryImport, NarExpectation } from './store-import.js';

interface Signal {
  signal?: AbortSignal;
}

/** How many PathInfos stay parsed in memory; one is ~0.5 KiB, so 10k ≈ 5 MiB. */
const INFO_CACHE_SIZE = 10_000;

export class LocalStore {
  readonly layout: StoreLayout;
  /** What recovery found and removed when this store was opened. */
  readonly recovery: RecoveryReport;
  private readonly locks: StoreLocks;
  /** Paths known valid. Valid paths are immutable, so a yes stays true (until our own delete). */
  private readonly valid = new Set<string>();
  private readonly infos = new LRUCache<string, PathInfo>({ max: INFO_CACHE_SIZE });
  private tempCounter = 0;
  /** Drawn once: `tempPath` names differ by the counter (a randomBytes call per name cost ~25 µs). */
  private readonly tempNonce = randomBytes(4).toString('hex');

  private constructor(layout: StoreLayout, locks: StoreLocks, recovery: RecoveryReport) {
    this.layout = layout;
    this.locks = locks;
    this.recovery = recovery;
  }

  /** Opens (creating if needed) the state directory and recovers from crashed writers. */
  static async open(stateDir: string, opts: Signal = {}): Promise<LocalStore> {
    throwIfAborted(opts.signal);
    const layout = storeLayout(stateDir);
    // Synchronous: six calls that find the directories there; through the thread pool they
    // were ~3 ms of every command's start.
    for (const d of [layout.stateDir, layout.storeDir, layout.infoDir, layout.drvDir, layout.logDir, layout.tmpDir]) {
      try {
        mkdirSync(d, { recursive: true });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new LazyError('STORE_OPEN', `cannot open the state directory ${layout.stateDir}: ${e.message}`, {
          cause: e,
          details: { stateDir: layout.stateDir, errno: e.code },
        });
      }
    }
    const locks = new StoreLocks(layout.stateDir);
    const recovery = await recoverStore(layout, locks, opts);
    return new LocalStore(layout, locks, recovery);
  }

  get stateDir(): string {
    return this.layout.stateDir;
  }

  /** Where the path's contents live on disk: `<state>/store/<base>`. */
  realPath(p: StorePath): string {
    return `${this.layout.storeDir}/${baseName(p)}`; // a store path's base name: no join needed
  }

  /** `log/<drv basename>`: where the build log of `drvPath` is kept. */
  logPath(drvPath: StorePath | string): string {
    return join(this.layout.logDir, drvPath.slice(drvPath.lastIndexOf('/') + 1));
  }

  /** Synchronous, memory only: true if this store object has already seen `p` valid. */
  isKnownValid(p: StorePath): boolean {
    return this.valid.has(p);
  }

  /** Positive answers are cached for the life of this object (paths are immutable once valid). */
  async isValid(p: StorePath, opts: Signal = {}): Promise<boolean> {
    if (this.valid.has(p)) return true;
    return (await this.queryPathInfo(p, opts)) !== undefined;
  }

  async queryPathInfo(p: StorePath, opts: Signal = {}): Promise<PathInfo | undefined> {
    const hit = this.infos.get(p);
    if (hit) return hit;
    throwIfAborted(opts.signal);
    const info = await this.readInfo(p);
    if (info) this.remember(info);
    return info;
  }

  /** Every valid path, sorted. Two directory listings, no narinfo is read. */
  async listValid(opts: Signal = {}): Promise<StorePath[]> {
    throwIfAborted(opts.signal);
    const infos = new Set((await readdir(this.layout.infoDir)).filter((n) => n.endsWith('.narinfo')).map((n) => n.slice(0, -8)));
    const out: StorePath[] = [];
    for (const name of await readdir(this.layout.storeDir)) {
      if (!infos.has(name.slice(0, 32))) continue;
      try {
        out.push(parseStoreBaseName(name));
      } catch {
        // not a store path name: nothing we registered
      }
    }
    return out.sort();
  }

  /** `paths` and everything they reference, each path after all of its references. */
  async closure(paths: Iterable<StorePath>, opts: Signal = {}): Promise<StorePath[]> {
    return closureOf(paths, async (p) => (await this.queryPathInfo(p, opts))?.references, opts);
  }

  /** Valid paths other than `p` that reference `p`. Reads every narinfo: meant for delete. */
  async referrers(p: StorePath, opts: Signal = {}): Promise<StorePath[]> {
    const out: StorePath[] = [];
    for (const q of await this.listValid(opts)) {
      if (q === p) continue;
      throwIfAborted(opts.signal);
      if ((await this.queryPathInfo(q))?.references.includes(p)) out.push(q);
    }
    return out;
  }

  /**
   * A new empty directory under `tmp/`, named `<pid>.<start time>.<n><random>-<label>` so
   * recovery can tell whether its owner still runs. The caller removes it (`discardTemp`)
   * unless `register` consumed it.
   */
  async makeTempDir(label: string, opts: Signal = {}): Promise<string> {
    throwIfAborted(opts.signal);
    const dir = this.tempPath(label);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  /** A fresh name under `tmp/`, owned like `makeTempDir`'s, that nothing exists at yet (not created). */
  tempPath(label: string): string {
    const safe = label.replace(/[^A-Za-z0-9+._?=-]/g, '_').slice(0, 80);
    return `${this.layout.tmpDir}/${ownerToken()}.${this.tempCounter++}${this.tempNonce}-${safe}`;
  }

  /** Removes a scratch entry made by `makeTempDir` (read-only trees included). */
  async discardTemp(tmpPath: string): Promise<void> {
    this.checkTemp(tmpPath);
    await removeTree(tmpPath);
  }

  /**
   * Makes `info.path` valid with the contents at `tmpPath` (a file, directory or symlink under
   * `tmp/`, already canonical, whose NAR hash, size and references the caller computed).
   * References other than the path itself should be valid already (the closure invariant that
   * `closure` and `delete` rely on). Not checked here, so the outputs of one build may come in
   * any order; `registerAll` checks and orders a batch.
   * If the path is valid already — another task or process won — `tmpPath` is discarded and
   * the winner's info returned: registration is idempotent and never replaces contents.
   */
  async register(tmpPath: string, info: PathInfo, opts: Signal = {}): Promise<PathInfo> {
    this.checkTemp(tmpPath);
    const { signal } = opts;
    // Memory only: the disk is read under the lock below anyway (a miss here cost a stat).
    const known = this.infos.get(info.path);
    if (known) {
      await removeTree(tmpPath);
      return known;
    }
    const hash = hashPart(info.path);
    await testPause('register:lock-wait');
    const release = await this.locks.acquire(hash, { signal });
    try {
      const winner = await this.readInfo(info.path);
      if (winner) {
        await removeTree(tmpPath);
        this.remember(winner);
        return winner;
      }
      const dest = this.realPath(info.path);
      await testPause('register:before-rename');
      // Holding the lock with no narinfo, anything at dest is a dead registration's leftover.
      await moveTree(tmpPath, dest, { replace: true }).catch((e: unknown) => {
        throw ioError(e, `cannot move '${tmpPath}' into the store as '${dest}'`, info.path);
      });
      const draft = `${this.layout.tmpDir}/${ownerToken()}.${this.tempCounter++}-narinfo-${hash}`;
      try {
        await testPause('register:after-rename');
        writeFileSync(draft, formatNarInfo(pathInfoToNarInfo(info)), { mode: 0o644 });
        await testPause('register:before-commit');
        renameSync(draft, narInfoFile(this.layout, hash));
      } catch (e) {
        await removeTree(dest).catch(() => undefined);
        await unlink(draft).catch(() => undefined);
        throw ioError(e, `cannot write the metadata of '${info.path}'`, info.path);
      }
    } finally {
      // Not awaited: the socket's close completes on a later event-loop turn, while the lock is
      // free for everyone as of this call (waiters in other processes are woken now; tasks here
      // wait on the in-process entry, dropped when the close completes). Awaiting it cost every
      // sequential registration a loop turn.
      void release();
    }
    this.remember(info);
    return info;
  }

  /**
   * Registers several paths, references first; each reference must be valid already or be in
   * the batch (STORE_REFERENCE_INVALID otherwise, before anything is registered).
   */
  async registerAll(entries: readonly { tmpPath: string; info: PathInfo }[], opts: Signal = {}): Promise<PathInfo[]> {
    return registerAll(this, entries, opts);
  }

  /** Restores a NAR stream as `expected.path`, checking NarSize/NarHash on the way; see store-import.ts. */
  async addFromNar(source: AsyncIterable<Uint8Array>, expected: NarExpectation, opts: Signal = {}): Promise<PathInfo> {
    return importNar(this, source, expected, opts);
  }

  /** Copies a file tree in (canonical, hashed and scanned in one pass); see store-import.ts. */
  async addFromDirectory(srcPath: string, opts: DirectoryImport): Promise<PathInfo> {
    return importDirectory(this, srcPath, opts);
  }

  /**
   * Makes `p` invalid and removes its contents. Refuses while another valid path references it.
   * Another process that cached `p` as valid keeps believing so until it reopens the store.
   * Not excluded: another process registering a new referrer of `p` during the delete (Nix
   * prevents that with a global GC lock; here `verify` would report the dangling reference).
   */
  async delete(p: StorePath, opts: Signal = {}): Promise<void> {
    const release = await this.locks.acquire(hashPart(p), opts);
    let trash: string | undefined;
    try {
      if ((await this.readInfo(p)) === undefined) {
        throw new LazyError('STORE_PATH_INVALID', `path '${p}' is not valid`, { details: { path: p } });
      }
      const referrers = await this.referrers(p, opts);
      if (referrers.length > 0) {
        throw new LazyError(
          'STORE_PATH_IN_USE',
          `cannot delete '${p}': it is referenced by ${referrers.map((r) => `'${r}'`).join(', ')}`,
          { details: { path: p, referrers } },
        );
      }
      this.valid.delete(p);
      this.infos.delete(p);
      await unlink(narInfoFile(this.layout, hashPart(p)));
      trash = join(this.layout.tmpDir, `${ownerToken()}.${this.tempCounter++}-deleted-${baseName(p)}`);
      await moveTree(this.realPath(p), trash).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        trash = undefined;
      });
    } finally {
      await release();
    }
    if (trash !== undefined) await removeTree(trash);
  }

  private remember(info: PathInfo): void {
    this.valid.add(info.path);
    this.infos.set(info.path, info);
  }

  /** The narinfo on disk, bypassing the caches; undefined when the path is not valid. */
  private async readInfo(p: StorePath): Promise<PathInfo | undefined> {
    const file = narInfoFile(this.layout, hashPart(p));
    // Most lookups while substituting are misses; existsSync answers those without the ~10 µs
    // of the Error object that a failing readFileSync builds.
    if (!existsSync(file)) return undefined;
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let info: PathInfo;
    try {
      info = pathInfoFromNarInfo(parseNarInfo(text, file), file);
    } catch (e) {
      throw new LazyError('STORE_BAD_INFO', `corrupt metadata for '${p}': ${(e as Error).message}`, { cause: e, details: { path: p, file } });
    }
    return info.path === p ? info : undefined;
  }

  /** `tmpPath` must name something strictly inside tmp/ (no `..`, `.` or empty step on the way). */
  private checkTemp(tmpPath: string): void {
    const prefix = `${this.layout.tmpDir}/`;
    const rel = tmpPath.startsWith(prefix) ? tmpPath.slice(prefix.length) : '';
    if (rel === '' || rel.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      throw new LazyError('STORE_BAD_TEMP', `'${tmpPath}' is not inside the store's scratch directory ${this.layout.tmpDir}`, {
        details: { tmpPath },
      });
    }
  }
}

/** Node's errno errors as LazyError('STORE_IO'), keeping the errno code in details. */
function ioError(e: unknown, what: string, path: StorePath): unknown {
  if (e instanceof LazyError) return e;
  const errno = (e as NodeJS.ErrnoException).code;
  return new LazyError('STORE_IO', `${what}: ${(e as Error).message}`, { cause: e, details: { path, errno } });
}
