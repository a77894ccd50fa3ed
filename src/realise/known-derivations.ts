/**
 * The derivations lazystore knows how to build, persisted in `<state>/drv/`:
 *   drv/<hash>-<name>.drv          the .drv text (copied; verified against its store path)
 *   drv/by-output/<out hash part>  symlink whose target is `<drv basename>!<output name>`
 *   drv/sources.json               directories to pick up new .drv files from (refresh)
 * Adding a .drv adds its input derivations first (resolved from the same directory), so a
 * known drv always has known inputs, and touches nothing else: adding one drv next to 100k
 * others reads only its own input closure. Output paths are recomputed (hashDerivationModulo)
 * before anything is indexed, so a forged .drv cannot claim somebody else's output path.
 */
import { link, mkdir, readFile, readdir, readlink, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import pLimit from 'p-limit';
import { LazyError, throwIfAborted } from '../errors.js';
import { parseDerivation, type Derivation } from '../nix/derivation.js';
import { DerivationHasher, drvStorePath } from '../nix/derivation-hash.js';
import { baseName, hashPart, parseStoreBaseName, parseStorePath, type StorePath } from '../nix/store-path.js';
import type { LocalStore } from '../store/local-store.js';

export interface DrvOutputRef {
  drvPath: StorePath;
  outputName: string;
}

interface SourceDir {
  dir: string;
  /** Directory mtime at the last full listing (ms), so an unchanged dir costs one stat. */
  mtimeMs?: number;
}

export class KnownDerivations {
  readonly dir: string;
  private readonly byOutput: string;
  private readonly store: LocalStore;
  private known: Set<string> | undefined;
  private readonly cache = new LRUCache<string, Derivation>({ max: 20_000 });
  private readonly adding = new Map<string, Promise<void>>();
  private readonly importing = new Map<string, Promise<void>>();
  /** Bounds the files read, parsed and written at once while adding a closure (memory, fds). */
  private readonly io = pLimit(16);
  private sources: SourceDir[] = [];
  private refreshing: Promise<number> | undefined;
  readonly hasher: DerivationHasher;

  private constructor(dir: string, store: LocalStore) {
    this.dir = dir;
    this.byOutput = join(dir, 'by-output');
    this.store = store;
    this.hasher = new DerivationHasher((p) => this.load(p));
  }

  /** Opens (creating) `<stateDir>/drv`. */
  static async open(stateDir: string, store: LocalStore): Promise<KnownDerivations> {
    const k = new KnownDerivations(join(stateDir, 'drv'), store);
    await mkdir(k.byOutput, { recursive: true });
    try {
      k.sources = JSON.parse(await readFile(join(k.dir, 'sources.json'), 'utf8')) as SourceDir[];
    } catch {
      k.sources = [];
    }
    return k;
  }

  /** The derivation and output that produce `p`, if known. One readlink. */
  async lookupOutput(p: StorePath): Promise<DrvOutputRef | undefined> {
    let target: string;
    try {
      target = await readlink(join(this.byOutput, hashPart(p)));
    } catch {
      return undefined;
    }
    const bang = target.lastIndexOf('!');
    if (bang < 0) return undefined;
    return { drvPath: parseStoreBaseName(target.slice(0, bang)), outputName: target.slice(bang + 1) };
  }

  async has(drvPath: string): Promise<boolean> {
    return (await this.knownSet()).has(basename(drvPath));
  }

  /** The parsed derivation (memoised). */
  async load(drvPath: string, opts: { signal?: AbortSignal } = {}): Promise<Derivation> {
    const base = basename(drvPath);
    const hit = this.cache.get(base);
    if (hit) return hit;
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, base), { signal: opts.signal });
    } catch (e) {
      throw new LazyError('KNOWN_NOT_FOUND', `derivation '${drvPath}' is not known (add it with 'lazystore known add')`, { cause: e });
    }
    const drv = parseDerivation(bytes, drvPath);
    this.cache.set(base, drv);
    return drv;
  }

  /**
   * Records a .drv file, or every .drv in a directory (which is then watched by refresh()).
   * Input derivations must be known already or sit in the same directory. inputSrcs found
   * in that directory (a Nix store, e.g. /nix/store) are imported into the store.
   * Returns how many derivations were new.
   */
  async add(fileOrDir: string, opts: { signal?: AbortSignal } = {}): Promise<number> {
    const abs = resolve(fileOrDir);
    const st = await stat(abs).catch((e: unknown) => {
      throw new LazyError('KNOWN_NOT_FOUND', `cannot read '${fileOrDir}'`, { cause: e });
    });
    if (st.isDirectory()) {
      if (!this.sources.some((s) => s.dir === abs)) {
        this.sources.push({ dir: abs });
        await this.saveSources();
      }
      return this.scanDir(abs, opts);
    }
    const before = (await this.knownSet()).size;
    await this.addFile(abs, dirname(abs), opts.signal);
    return (await this.knownSet()).size - before;
  }

  /**
   * Picks up new .drv files in the directories given to add(): one stat per unchanged dir.
   * Concurrent calls share one pass.
   */
  refresh(opts: { signal?: AbortSignal } = {}): Promise<number> {
    this.refreshing ??= (async () => {
      let n = 0;
      for (const s of this.sources) n += await this.scanDir(s.dir, opts);
      return n;
    })().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  /** lookupOutput, and on a miss one refresh() and a second lookup (a drv written since). */
  async lookupOutputFresh(p: StorePath): Promise<DrvOutputRef | undefined> {
    const hit = await this.lookupOutput(p);
    if (hit || this.sources.length === 0) return hit;
    if ((await this.refresh()) === 0) return undefined;
    return this.lookupOutput(p);
  }

  private async scanDir(dir: string, opts: { signal?: AbortSignal }): Promise<number> {
    const src = this.sources.find((s) => s.dir === dir);
    const st = await stat(dir);
    if (src?.mtimeMs !== undefined && src.mtimeMs === st.mtimeMs) return 0;
    const known = await this.knownSet();
    const before = known.size;
    const names = (await readdir(dir)).filter((n) => n.endsWith('.drv') && !known.has(n));
    const limit = pLimit(8);
    await Promise.all(names.map((n) => limit(() => this.addFile(join(dir, n), dir, opts.signal))));
    if (src) src.mtimeMs = st.mtimeMs;
    return known.size - before;
  }

  private async addFile(file: string, srcDir: string, signal?: AbortSignal): Promise<void> {
    const base = basename(file);
    if ((await this.knownSet()).has(base)) return;
    let job = this.adding.get(base);
    if (!job) {
      job = this.doAddFile(file, srcDir, signal).finally(() => this.adding.delete(base));
      this.adding.set(base, job);
    }
    return job;
  }

  private async doAddFile(file: string, srcDir: string, signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    const base = basename(file);
    let drvPath: StorePath;
    try {
      drvPath = parseStoreBaseName(base);
    } catch (e) {
      throw new LazyError('KNOWN_BAD_NAME', `'${file}' is not named like a store derivation (<hash>-<name>.drv)`, { cause: e });
    }
    const bytes = await this.io(() => readFile(file)).catch((e: unknown) => {
      throw new LazyError('KNOWN_NOT_FOUND', `cannot read derivation '${file}'`, { cause: e });
    });
    const drv = parseDerivation(bytes, file);
    if (drv.env.has('__json')) {
      throw new LazyError('KNOWN_UNSUPPORTED', `'${drvPath}' uses structured attributes (__json), which lazystore cannot build yet`, { details: { drvPath } });
    }
    if (drvStorePath(drv, bytes) !== drvPath) {
      throw new LazyError('KNOWN_BAD_DRV', `'${file}' does not hash to its store path ${drvPath}`, { details: { drvPath } });
    }
    await Promise.all(
      [...drv.inputDrvs.keys()].map(async (input) => {
        if ((await this.knownSet()).has(basename(input))) return;
        const candidate = join(srcDir, basename(input));
        if (!(await stat(candidate).catch(() => undefined))) {
          throw new LazyError('KNOWN_MISSING_INPUT', `input derivation '${input}' of '${drvPath}' is neither known nor in ${srcDir}`, {
            details: { drvPath, input },
          });
        }
        await this.addFile(candidate, srcDir, signal);
      }),
    );
    this.cache.set(base, drv);
    const outs = await this.hasher.outputPaths(drv);
    for (const [name, o] of drv.outputs) {
      if (outs.get(name) !== o.path) {
        this.cache.delete(base);
        throw new LazyError('KNOWN_BAD_DRV', `output '${name}' of '${drvPath}' should be ${outs.get(name) ?? '?'}, not ${o.path}`, {
          details: { drvPath },
        });
      }
    }
    for (const src of drv.inputSrcs) await this.importInputSrc(parseStorePath(src), srcDir, drv.inputSrcs, signal);
    // the .drv first, then the index: an indexed output always has its drv on disk
    await this.io(() => this.saveDrv(file, base, bytes));
    await Promise.all(
      [...drv.outputs].map(([name, o]) =>
        symlink(`${base}!${name}`, join(this.byOutput, hashPart(parseStorePath(o.path)))).catch((e: unknown) => {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }),
      ),
    );
    (await this.knownSet()).add(base);
  }

  /** One import per path however many drvs name it (500 DAG nodes share one busybox). */
  private importInputSrc(p: StorePath, srcDir: string, siblings: readonly string[], signal?: AbortSignal): Promise<void> {
    let job = this.importing.get(p);
    if (!job) {
      job = this.doImportInputSrc(p, srcDir, siblings, signal).finally(() => this.importing.delete(p));
      this.importing.set(p, job);
    }
    return job;
  }

  private async doImportInputSrc(p: StorePath, srcDir: string, siblings: readonly string[], signal?: AbortSignal): Promise<void> {
    if (await this.store.isValid(p)) return;
    const hostPath = join(srcDir, baseName(p));
    if (!(await stat(hostPath).catch(() => undefined))) return; // left to substituters
    // verified by the store when it is a content-addressed source path (builtins.path, ./file)
    await this.store.addFromDirectory(hostPath, { path: p, refCandidates: siblings.map((s) => parseStorePath(s)), signal });
  }

  /**
   * A hard link to the source when it is on the same filesystem and read-only (a Nix store's
   * .drv: immutable), else a copy. A link costs ~60 µs here, a new file ~1.5 ms.
   */
  private async saveDrv(file: string, base: string, bytes: Buffer): Promise<void> {
    const dest = join(this.dir, base);
    const st = await stat(file);
    if ((st.mode & 0o222) === 0) {
      try {
        await link(file, dest);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
      }
    }
    const tmp = join(this.dir, `.${base}.${process.pid}.tmp`);
    await writeFile(tmp, bytes);
    await rename(tmp, dest);
  }

  private knownLoading: Promise<Set<string>> | undefined;
  private async knownSet(): Promise<Set<string>> {
    if (this.known) return this.known;
    this.knownLoading ??= readdir(this.dir).then((names) => (this.known = new Set(names.filter((n) => n.endsWith('.drv') && !n.startsWith('.')))));
    return this.knownLoading;
  }

  private async saveSources(): Promise<void> {
    const tmp = join(this.dir, `.sources.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(this.sources.map((s) => ({ dir: s.dir })), null, 1));
    await rename(tmp, join(this.dir, 'sources.json'));
  }
}


/** The store paths a derivation's build needs: its inputSrcs and the wanted outputs of its input derivations. */
export async function neededInputs(
  known: KnownDerivations,
  drvPath: string,
  drv: Derivation,
  opts: { signal?: AbortSignal } = {},
): Promise<StorePath[]> {
  const needed: StorePath[] = drv.inputSrcs.map((s) => parseStorePath(s));
  for (const [inDrvPath, names] of drv.inputDrvs) {
    const inDrv = await known.load(inDrvPath, opts);
    for (const n of names) {
      const o = inDrv.outputs.get(n);
      if (!o) throw new LazyError('REALISE_BAD_DRV', `'${drvPath}' wants output '${n}' of '${inDrvPath}', which has none`, { details: { drvPath } });
      needed.push(parseStorePath(o.path));
    }
  }
  return needed;
}
