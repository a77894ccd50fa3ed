/**
 * What the mount shows, decided without fuse-native: answers each op from the store and the
 * realiser. The rule that shapes it (docs/MOUNT.md): a root lookup (`/<hash>-<name>`) never
 * waits for work, because a waiting lookup blocks every other uncached lookup in the store
 * directory. It answers a valid path's real attributes, or a guess for a path that can be
 * realised, and starts the realisation. Waits happen one level down — lookups inside the path,
 * open, opendir, readlink — where they block only readers of that path. When the real
 * attributes differ from the guess the kernel holds, that op fails once with ESTALE: the VFS
 * retries the walk with LOOKUP_REVAL, the kernel re-sends the lookup, sees the new type or
 * size, and the reader's retried syscall succeeds (measured in docs/MOUNT.md).
 */
import { promises as fsp, type Stats } from 'node:fs';
import { LazyError } from '../errors.js';
import { parseStoreBaseName, STORE_DIR, type StorePath } from '../nix/store-path.js';
import type { PathInfo } from '../store/path-info.js';
import { answeredOf, attrsFromStats, guessedAttrs, kindOfMode, rootAttrs, type Answered, type FileKind, type FuseStat } from './attrs.js';
import { FileHandles } from './file-handles.js';
import { pathXattrs, rootXattrs } from './xattrs.js';

/** The part of LocalStore the view reads. */
export interface ViewStore {
  realPath(p: StorePath): string;
  queryPathInfo(p: StorePath, opts?: { signal?: AbortSignal }): Promise<PathInfo | undefined>;
  listValid?(opts?: { signal?: AbortSignal }): Promise<StorePath[]> | AsyncIterable<StorePath>;
}

export interface ViewPlan {
  kind: 'valid' | 'substitute' | 'build';
  typeHint?: FileKind;
}

/** The part of Realiser the view drives. */
export interface ViewRealiser {
  plan(p: StorePath): ViewPlan | undefined | Promise<ViewPlan | undefined>;
  realise(p: StorePath, opts: { signal?: AbortSignal }): Promise<PathInfo>;
}

export interface StoreViewOptions {
  store: ViewStore;
  realiser: ViewRealiser;
  /** Kind assumed for a path that is not realised and whose kind nobody knows (default directory). */
  unknownKind?: 'directory' | 'symlink';
  /** List valid paths in the root directory (Nix's store is listable; a lazy one need not be). */
  listRoot?: boolean;
  /**
   * Let a root lookup wait for the realisation and answer the real attributes (no guesses).
   * Only where the kernel runs lookups in one directory in parallel (FUSE_PARALLEL_DIROPS, the
   * kernel-protocol session): there a waiting lookup holds up readers of that name alone.
   */
  waitInRootLookup?: boolean;
  /** Longest a reader waits for one realisation before EIO (default: no bound beyond the realiser's). */
  waitMs?: number;
  /** One line per realisation and per EIO cause. */
  log?: (line: string) => void;
  /** Aborts every realisation the view started (unmount). */
  signal?: AbortSignal;
}

interface Failure {
  path: StorePath;
  message: string;
  code: string;
  at: number;
}

export interface ViewStatus {
  /** Ops that failed once with ESTALE because the kernel held a wrong guess. */
  staleAnswers: number;
  /** Read requests answered by the daemon (0 while the kernel passes reads through). */
  readsServed: number;
  realising: { path: string; sinceMs: number }[];
  failures: { path: string; code: string; message: string; at: string }[];
}

const FAILURES_KEPT = 50;

export class StoreView {
  readonly handles = new FileHandles();
  private readonly store: ViewStore;
  private readonly realiser: ViewRealiser;
  private readonly unknownKind: 'directory' | 'symlink';
  private readonly log: (line: string) => void;
  /** Bases known valid: paths never become invalid while mounted. */
  private readonly valid = new Map<string, StorePath>();
  /** What the kernel was last told about a root entry that was not valid at the time. */
  private readonly answered = new Map<string, Answered>();
  private readonly inflight = new Map<string, { started: number; done: Promise<StorePath> }>();
  private readonly failures = new Map<string, Failure>();
  private staleAnswers = 0;

  constructor(private readonly opts: StoreViewOptions) {
    this.store = opts.store;
    this.realiser = opts.realiser;
    this.unknownKind = opts.unknownKind ?? 'directory';
    this.log = opts.log ?? (() => {});
  }

  async getattr(path: string): Promise<FuseStat> {
    if (path === '/') return rootAttrs();
    const { base, rest } = splitMountPath(path);
    if (rest === '') return this.rootEntry(path, base);
    const root = await this.ensureValid(base);
    return this.lstatInside(path, root, rest);
  }

  async readlink(path: string): Promise<string> {
    const real = await this.realFor(path);
    return fsp.readlink(real);
  }

  async readdir(path: string): Promise<string[]> {
    if (path === '/') return ['.', '..', ...(this.opts.listRoot ? await this.listRoot() : [])];
    const real = await this.realFor(path);
    return ['.', '..', ...(await fsp.readdir(real))];
  }

  /** Waits for the path (open is where a reader of an unrealised path waits). */
  async open(path: string, flags: number): Promise<number> {
    if ((flags & 3) !== 0) throw new LazyError('FUSE_READ_ONLY', `open ${path} for writing`);
    const real = await this.realFor(path);
    await this.checkKind(path, real, (k) => k === 'regular');
    return this.handles.open(real);
  }

  async opendir(path: string): Promise<void> {
    if (path === '/') return;
    await this.checkKind(path, await this.realFor(path), (k) => k === 'directory');
  }

  /**
   * The kernel sends OPENDIR only for an inode it holds as a directory and OPEN only for a
   * non-directory: a mismatch means its inode came from a guess, whoever woke up first. ESTALE
   * makes it look the path up again (no loop: the new lookup answers the real type).
   */
  private async checkKind(path: string, real: string, ok: (k: FileKind | undefined) => boolean): Promise<void> {
    if (splitMountPath(path).rest !== '') return;
    const kind = kindOfMode((await fsp.lstat(real)).mode);
    if (ok(kind)) return;
    this.staleAnswers++;
    throw new LazyError('FUSE_STALE', `${path}: the kernel holds a guessed inode, the path is a ${kind ?? 'special file'}`);
  }

  async getxattr(path: string, name: string): Promise<Buffer> {
    const value = (await this.xattrs(path)).get(name);
    if (value === undefined) throw new LazyError('FUSE_NO_XATTR', `${path} has no ${name}`);
    return Buffer.from(value, 'utf8');
  }

  async listxattr(path: string): Promise<string[]> {
    return [...(await this.xattrs(path)).keys()];
  }

  /** Writes never reach here for a `ro` mount; access(W_OK) does. */
  access(mode: number): void {
    if ((mode & 2) !== 0) throw new LazyError('FUSE_READ_ONLY', 'the store is read-only');
  }

  status(): ViewStatus {
    const now = Date.now();
    return {
      staleAnswers: this.staleAnswers,
      readsServed: this.handles.reads,
      realising: [...this.inflight.entries()].map(([base, j]) => ({ path: `${STORE_DIR}/${base}`, sinceMs: now - j.started })),
      failures: [...this.failures.values()].map((f) => ({ path: f.path, code: f.code, message: f.message, at: new Date(f.at).toISOString() })),
    };
  }

  async close(): Promise<void> {
    await this.handles.closeAll();
  }

  // ---- root entries: never wait --------------------------------------------------------

  private async rootEntry(path: string, base: string): Promise<FuseStat> {
    const p = parseBase(base);
    const known = this.valid.get(base) ?? ((await this.store.queryPathInfo(p)) ? p : undefined);
    if (known) {
      this.valid.set(base, p);
      this.answered.delete(base);
      return attrsFromStats(path, await fsp.lstat(this.store.realPath(p)));
    }
    const plan = await this.realiser.plan(p);
    if (!plan) throw new LazyError('FUSE_NOT_FOUND', `${p} is neither valid nor realisable`);
    if (plan.kind === 'valid') {
      this.valid.set(base, p);
      return attrsFromStats(path, await fsp.lstat(this.store.realPath(p)));
    }
    // parallel lookups: wait here and answer the real attributes (a failure: its errno, EIO)
    if (this.opts.waitInRootLookup) return attrsFromStats(path, await fsp.lstat(await this.ensureValid(base)));
    // Start now so the work overlaps the reader's next op; the wait happens one level down.
    this.startRealise(base, p).catch(() => {});
    const attrs = guessedAttrs(path, plan.typeHint ?? this.unknownKind);
    this.answered.set(base, answeredOf(attrs));
    return attrs;
  }

  // ---- one level down: wait, then answer or ESTALE ---------------------------------------

  /** The unpacked file for `path`, after realising its store path. */
  private async realFor(path: string): Promise<string> {
    const { base, rest } = splitMountPath(path);
    // The guess this op's inode was made from: taken before waiting, because every reader that
    // waited on the guessed inode must get its ESTALE, not only the first to wake up (1,000
    // readers of 100 single-file outputs: 574 read EISDIR when only the first one did).
    const guess = rest === '' ? this.answered.get(base) : undefined;
    const root = await this.ensureValid(base);
    if (rest === '') {
      await this.checkAnswered(base, root, guess);
      return root;
    }
    return root + rest;
  }

  /**
   * ESTALE when the kernel holds a guess that the real path contradicts. The guess is kept until
   * a root lookup answers the real attributes (rootEntry), so later ops on the old inode fail too.
   */
  private async checkAnswered(base: string, root: string, guess: Answered | undefined): Promise<void> {
    if (guess === undefined) return;
    const real = answeredOf(attrsFromStats('/', await fsp.lstat(root)));
    if (real.kind === guess.kind && (real.kind !== 'regular' || real.size === guess.size)) {
      if (this.answered.get(base) === guess) this.answered.delete(base);
      return;
    }
    this.staleAnswers++;
    throw new LazyError('FUSE_STALE', `${base}: guessed ${guess.kind} (${guess.size}), is ${real.kind} (${real.size})`);
  }

  private async lstatInside(path: string, root: string, rest: string): Promise<FuseStat> {
    let st: Stats;
    try {
      st = await fsp.lstat(root + rest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR' || (e as NodeJS.ErrnoException).code === 'ENOENT') {
        const top = await fsp.lstat(root);
        if (kindOfMode(top.mode) !== 'directory') throw new LazyError('FUSE_NOT_DIR', `${root} is not a directory`);
      }
      throw e;
    }
    return attrsFromStats(path, st);
  }

  /** Realised store path's unpacked directory; waits (bounded) for the realisation. */
  private async ensureValid(base: string): Promise<string> {
    const known = this.valid.get(base);
    if (known) return this.store.realPath(known);
    const p = parseBase(base);
    if (await this.store.queryPathInfo(p)) {
      this.valid.set(base, p);
      return this.store.realPath(p);
    }
    const job = this.startRealise(base, p);
    const done = this.opts.waitMs === undefined ? job : withTimeout(job, this.opts.waitMs, p);
    return this.store.realPath(await done);
  }

  private startRealise(base: string, p: StorePath): Promise<StorePath> {
    const running = this.inflight.get(base);
    if (running) return running.done;
    const started = Date.now();
    this.log(`realising ${p}`);
    const done = this.realiser.realise(p, { signal: this.opts.signal }).then(
      () => {
        this.valid.set(base, p);
        this.failures.delete(base);
        this.log(`realised ${p} in ${seconds(started)}`);
        return p;
      },
      (e: unknown) => {
        const code = e instanceof LazyError ? e.code : 'UNKNOWN';
        const message = e instanceof Error ? e.message : String(e);
        const repeated = this.failures.get(base)?.message === message; // a remembered failure
        this.failures.delete(base);
        this.failures.set(base, { path: p, code, message, at: Date.now() });
        if (this.failures.size > FAILURES_KEPT) this.failures.delete(this.failures.keys().next().value as string);
        if (!repeated) this.log(`failed ${p} after ${seconds(started)}: ${code}: ${message}`);
        throw e;
      },
    ).finally(() => this.inflight.delete(base));
    this.inflight.set(base, { started, done });
    return done;
  }

  private async xattrs(path: string): Promise<Map<string, string>> {
    const { base, rest } = splitMountPath(path);
    if (base === '') return rootXattrs([...this.failures.entries()].map(([b, f]) => [b, f.message]));
    if (rest !== '') return new Map();
    const p = parseBase(base);
    const failure = this.failures.get(base);
    const info = this.valid.has(base) || !failure ? await this.store.queryPathInfo(p) : undefined;
    return pathXattrs(info, failure?.message);
  }

  private async listRoot(): Promise<string[]> {
    const list = this.store.listValid ? await this.store.listValid() : [];
    const names: string[] = [];
    for await (const p of list as AsyncIterable<StorePath> | StorePath[]) names.push(p.slice(STORE_DIR.length + 1));
    return names;
  }
}

/** `/<base>/a/b` → base and `/a/b` (rest is `''` for the root entry, `''`/`''` for `/`). */
export function splitMountPath(path: string): { base: string; rest: string } {
  const slash = path.indexOf('/', 1);
  return slash < 0 ? { base: path.slice(1), rest: '' } : { base: path.slice(1, slash), rest: path.slice(slash) };
}

function parseBase(base: string): StorePath {
  if (Buffer.byteLength(base) > 255) throw new LazyError('FUSE_NAME_TOO_LONG', `${base.slice(0, 40)}…: name too long`);
  try {
    return parseStoreBaseName(base);
  } catch (e) {
    throw new LazyError('FUSE_NOT_FOUND', `${base} is not a store path name`, { cause: e });
  }
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(2)} s`;
}

function withTimeout<T>(job: Promise<T>, ms: number, p: StorePath): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new LazyError('FUSE_WAIT_TIMEOUT', `gave up waiting ${ms} ms for ${p}`)), ms);
    job.then(
      (v) => { clearTimeout(t); resolve(v); },
      (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); },
    );
  });
}
