/**
 * A running mount: the StoreView over a store and realiser, mounted with fuse-native, a
 * control socket for `lazystore status`, and one log line per build or substitution with its
 * time. Used by `lazystore mount`, `lazystore shell` and the tests.
 */
import { LazyError } from '../errors.js';
import type { StorePath } from '../nix/store-path.js';
import type { ProgressEvent, ProgressListener } from '../realise/progress.js';
import { serveControl, type ControlServer } from './control-socket.js';
import { defaultBackend, mountStore, type FuseBackend, type MountHandle } from './mount.js';
import { StoreView, type ViewRealiser, type ViewStore } from './store-view.js';

export interface DaemonRealiser extends ViewRealiser {
  onProgress?(listener: ProgressListener): () => void;
  readonly counts?: unknown;
  readonly maxJobs?: number;
}

export interface DaemonOptions {
  mountpoint: string;
  stateDir: string;
  store: ViewStore;
  realiser: DaemonRealiser;
  listRoot?: boolean;
  allowOther?: boolean;
  unknownKind?: 'directory' | 'symlink';
  waitMs?: number;
  /** How to speak FUSE (default: defaultBackend()). */
  backend?: FuseBackend;
  /** Kernel session: FUSE passthrough for reads of built files (default: on where possible). */
  passthrough?: boolean;
  /** Serve `<state>/run/<pid>.sock` (default true). */
  control?: boolean;
  log?: (line: string) => void;
}

export interface Daemon {
  readonly view: StoreView;
  readonly mount: MountHandle;
  /** Cancels running work, unmounts, closes the control socket. Idempotent. */
  stop(): Promise<void>;
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const log = dedupe(opts.log ?? (() => {}));
  const cancel = new AbortController();
  const backend = opts.backend ?? defaultBackend();
  const view = new StoreView({
    waitInRootLookup: backend === 'kernel',
    store: opts.store,
    realiser: opts.realiser,
    listRoot: opts.listRoot,
    unknownKind: opts.unknownKind,
    waitMs: opts.waitMs,
    signal: cancel.signal,
    log,
  });
  const unsubscribe = opts.realiser.onProgress?.(progressLogger(log)) ?? (() => {});
  const recent: ProgressEvent[] = [];
  const unsubscribeRecent = opts.realiser.onProgress?.((e) => {
    if (e.type === 'failed') recent.push(e);
    if (recent.length > 20) recent.shift();
  }) ?? (() => {});
  let mount: MountHandle;
  try {
    mount = await mountStore({ mountpoint: opts.mountpoint, view, stateDir: opts.stateDir, allowOther: opts.allowOther, backend, passthrough: opts.passthrough, log });
  } catch (e) {
    unsubscribe();
    unsubscribeRecent();
    throw e;
  }
  let control: ControlServer | undefined;
  if (opts.control ?? true) {
    try {
      control = await serveControl(opts.stateDir, () => ({
        mountpoint: mount.mountpoint,
        stateDir: opts.stateDir,
        counts: opts.realiser.counts,
        maxJobs: opts.realiser.maxJobs,
        ...view.status(),
        recentBuildFailures: recent.map((e) => ({
          drvPath: e.drvPath ?? e.path,
          message: e.type === 'failed' ? errorMessage(e.error) : '',
          logPath: e.type === 'failed' ? e.logPath : undefined,
        })),
      }));
    } catch (e) {
      await mount.unmount().catch(() => {});
      throw new LazyError('MOUNT_CONTROL_FAILED', `cannot serve the control socket: ${errorMessage(e)}`, { cause: e });
    }
  }
  let stopped: Promise<void> | undefined;
  return {
    view,
    mount,
    stop: () =>
      (stopped ??= (async () => {
        cancel.abort(new LazyError('ABORTED', 'the mount is shutting down'));
        unsubscribe();
        unsubscribeRecent();
        await control?.close();
        await mount.unmount();
      })()),
  };
}

/** `built fixture-chain-b in 0.12 s`, `failed building … after 0.30 s: …` */
function progressLogger(log: (line: string) => void): ProgressListener {
  const started = new Map<string, number>();
  return (e) => {
    const what: StorePath | undefined = e.drvPath ?? e.path;
    if (what === undefined) return;
    const key = `${e.kind}:${what}`;
    if (e.type === 'started') started.set(key, Date.now());
    if (e.type !== 'finished' && e.type !== 'failed') return;
    const t0 = started.get(key);
    started.delete(key);
    const took = t0 === undefined ? '' : ` ${((Date.now() - t0) / 1000).toFixed(2)} s`;
    if (e.type === 'failed') log(`failed ${e.kind === 'build' ? 'building' : 'fetching'} ${what} after${took}: ${errorMessage(e.error)}${e.logPath ? ` (log: ${e.logPath})` : ''}`);
    else log(`${e.kind === 'build' ? 'built' : 'fetched'} ${what} in${took}`);
  };
}

/** Repeats of a line within 10 s are dropped: 100 readers of a failed path log its EIO once. */
function dedupe(log: (line: string) => void): (line: string) => void {
  const seen = new Map<string, number>();
  return (line) => {
    const now = Date.now();
    const last = seen.get(line);
    if (last !== undefined && now - last < 10_000) return;
    if (seen.size > 1000) seen.clear();
    seen.set(line, now);
    log(line);
  };
}

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
