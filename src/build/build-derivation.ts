/**
 * Builds one derivation whose inputs are all valid: sandbox, then outputs → store.
 * Nothing is registered unless every output exists, canonicalises, scans and (fixed-output)
 * matches its hash. The log is kept at store.logPath(drvPath) whatever happens.
 */
import { chmod, chown, mkdir, open, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LazyError, isLazyError, throwIfAborted } from '../errors.js';
import type { Derivation } from '../nix/derivation.js';
import { baseName, type StorePath } from '../nix/store-path.js';
import type { LocalStore } from '../store/local-store.js';
import type { PathInfo } from '../store/path-info.js';
import { builderEnv } from './builder-env.js';
import { buildUser, type BuildUser } from './build-user.js';
import { prepareInputs } from './input-view.js';
import { finishOutputs } from './finish-outputs.js';
import { outputSize } from './output-size.js';
import { DEFAULT_MAX_LOG_SIZE, runSandbox } from './run-sandbox.js';
import { SANDBOX_ETC, builderArgv, bwrapArgs } from './sandbox.js';

export interface BuildDerivationOptions {
  drvPath: string;
  drv: Derivation;
  /** Output name → the store path the builder must create. */
  outputs: ReadonlyMap<string, StorePath>;
  /** Closure of the inputs (inputSrcs ∪ needed input-derivation outputs, with their references); all valid. */
  inputPaths: readonly StorePath[];
  /** NIX_BUILD_CORES. */
  cores: number;
  timeoutMs?: number;
  maxSilentMs?: number;
  /** Kill the build when its log passes this many bytes (default DEFAULT_MAX_LOG_SIZE, 64 MiB; 0 = no limit). */
  maxLogSize?: number;
  /**
   * Bound on what the build may write (default: none): /build, /tmp and /dev/shm are tmpfs
   * mounts of this size (ENOSPC inside → BUILD_SIZE_LIMIT), and the outputs' total apparent
   * size is checked once the builder has exited, before anything is hashed or registered.
   */
  maxBuildSize?: number;
  /**
   * Runs the sandbox itself (not the scratch set-up or the output registration) — where a
   * caller bounds concurrent builders. Default: run it now.
   */
  slot?: <T>(run: () => Promise<T>) => Promise<T>;
  /** Observes the sandbox process (pid while it runs, undefined after), e.g. to count concurrency. */
  onProcess?: (pid: number | undefined) => void;
  signal?: AbortSignal;
}

/** The last 4 KiB of a log, as text ('' if unreadable). */
async function logTail(logPath: string): Promise<string> {
  try {
    const h = await open(logPath, 'r');
    try {
      const { size } = await h.stat();
      const buf = Buffer.alloc(Math.min(size, 4096));
      await h.read(buf, 0, buf.length, size - buf.length);
      return buf.toString('latin1');
    } finally {
      await h.close();
    }
  } catch {
    return '';
  }
}

/** Systems this machine builds for. */
export function localSystems(): string[] {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
  const sys = `${arch}-${process.platform}`;
  return sys === 'x86_64-linux' ? [sys, 'i686-linux'] : [sys];
}

export function isFixedOutput(drv: Derivation): boolean {
  const out = drv.outputs.get('out');
  return drv.outputs.size === 1 && out !== undefined && out.hash !== '';
}

export async function buildDerivation(store: LocalStore, opts: BuildDerivationOptions): Promise<Map<string, PathInfo>> {
  const { drv, drvPath, signal } = opts;
  throwIfAborted(signal);
  if (!localSystems().includes(drv.platform)) {
    throw new LazyError('BUILD_PLATFORM', `a '${drv.platform}' is required to build '${drvPath}', but I am a '${localSystems()[0] ?? '?'}'`, {
      details: { drvPath },
    });
  }
  if (drv.builder.startsWith('builtin:')) {
    throw new LazyError('BUILD_UNSUPPORTED', `builtin builder '${drv.builder}' of '${drvPath}' is not supported`, { details: { drvPath } });
  }
  const { env, files } = builderEnv(drv.env, { cores: opts.cores, drvPath });
  const argv = builderArgv(drv.builder, drv.args);
  const fixed = isFixedOutput(drv);

  const user = await buildUserFor(store);
  const tmp = await store.makeTempDir('build');
  const logPath = store.logPath(drvPath);
  try {
    const storeDir = join(tmp, 'store');
    const buildDir = join(tmp, 'build');
    await mkdir(storeDir);
    await mkdir(buildDir, { mode: 0o700 });
    await Promise.all(files.map((f) => writeFile(join(buildDir, f.name), f.contents)));
    const [etcDir, inputs] = await Promise.all([
      sandboxEtc(store),
      prepareInputs(storeDir, opts.inputPaths, { realPath: (p) => store.realPath(p), linkFiles: user !== undefined }),
    ]);
    if (user) for (const d of [tmp, storeDir, buildDir]) await chown(d, user.uid, user.gid);
    const maxBuildSize = opts.maxBuildSize;
    const args = bwrapArgs({
      storeDir,
      buildDir,
      etcDir,
      inputs,
      network: fixed,
      env,
      ...(maxBuildSize === undefined ? {} : { tmpfsSize: maxBuildSize, buildFiles: files.map((f) => f.name) }),
    });

    await mkdir(dirname(logPath), { recursive: true });
    const log = await open(logPath, 'w');
    // --max-build-size: the passAsFile files are copied into the /build tmpfs from these fds
    const fileHandles = maxBuildSize === undefined ? [] : await Promise.all(files.map((f) => open(join(buildDir, f.name), 'r')));
    try {
      const slot = opts.slot ?? ((run) => run());
      await slot(() =>
        runSandbox({
          args,
          argv,
          logFd: log.fd,
          fds: fileHandles.map((h) => h.fd),
          drvPath,
          logPath,
          timeoutMs: opts.timeoutMs,
          maxSilentMs: opts.maxSilentMs,
          maxLogSize: opts.maxLogSize ?? DEFAULT_MAX_LOG_SIZE,
          onProcess: opts.onProcess,
          user,
          signal,
        }),
      );
    } catch (e) {
      if (maxBuildSize !== undefined && isLazyError(e, 'BUILD_FAILED') && (await logTail(logPath)).includes('No space left on device')) {
        throw new LazyError(
          'BUILD_SIZE_LIMIT',
          `${e.message}: it ran out of space in its ${maxBuildSize}-byte build directory (--max-build-size; 'No space left on device' in its log)`,
          { cause: e, details: { ...e.details, maxBuildSize } },
        );
      }
      throw e;
    } finally {
      await log.close();
      for (const h of fileHandles) await h.close();
    }
    throwIfAborted(signal);
    const built = new Map<string, string>();
    for (const [name, p] of opts.outputs) built.set(name, join(storeDir, baseName(p)));
    if (maxBuildSize !== undefined) {
      const size = await outputSize(built.values(), { limit: maxBuildSize, signal });
      if (size > maxBuildSize) {
        throw new LazyError('BUILD_SIZE_LIMIT', `build of '${drvPath}' produced outputs of more than the maximum build size of ${maxBuildSize} bytes`, {
          details: { drvPath, logPath, maxBuildSize },
        });
      }
    }
    return await finishOutputs(store, {
      drvPath,
      drv,
      outputs: opts.outputs,
      built,
      inputPaths: opts.inputPaths,
      logPath,
      builderUid: user?.uid ?? process.getuid?.(),
      signal,
    });
  } finally {
    // Not awaited: removing the scratch (input links, mountpoints, a failed build's files) takes
    // ~14 ms here and nobody waits for it; an interrupted removal is finished by store recovery.
    void rm(tmp, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
  }
}

/**
 * The build user for this store, if builds can run as one. bwrap then runs as that user and
 * must reach its bind sources: the state directory, store/ and tmp/ get o+x (traverse only,
 * no listing — like /nix/store's 1775); when a directory above the state directory is not
 * traversable by others (a private 0700 temp dir), builds run as the calling user instead.
 */
const buildUsers = new WeakMap<LocalStore, Promise<BuildUser | undefined>>();
function buildUserFor(store: LocalStore): Promise<BuildUser | undefined> {
  let p = buildUsers.get(store);
  if (!p) {
    p = (async () => {
      const user = await buildUser();
      if (!user) return undefined;
      for (let d = dirname(store.stateDir); ; d = dirname(d)) {
        if (((await stat(d)).mode & 0o001) === 0) return undefined;
        if (d === dirname(d)) break;
      }
      for (const d of [store.stateDir, store.layout.storeDir, store.layout.tmpDir]) {
        const st = await stat(d);
        if ((st.mode & 0o001) === 0) await chmod(d, (st.mode & 0o7777) | 0o001);
      }
      return user;
    })();
    buildUsers.set(store, p);
  }
  return p;
}

/** passwd/group/hosts for builders: written once per store and process, bound read-only. */
const etcDirs = new WeakMap<LocalStore, Promise<string>>();
function sandboxEtc(store: LocalStore): Promise<string> {
  let p = etcDirs.get(store);
  if (!p) {
    p = (async () => {
      const dir = await store.makeTempDir('sandbox-etc');
      for (const [name, text] of Object.entries(SANDBOX_ETC)) await writeFile(join(dir, name), text, { mode: 0o444 });
      await chmod(dir, 0o555);
      return dir;
    })();
    p.catch(() => etcDirs.delete(store));
    etcDirs.set(store, p);
  }
  return p;
}
