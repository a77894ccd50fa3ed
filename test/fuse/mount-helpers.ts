/**
 * A real mount for tests: a fresh state dir, the real LocalStore/KnownDerivations/Realiser,
 * the daemon in this process, and every access to the mount from child processes (this
 * process must never touch its own mount synchronously: that deadlocks in D state).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../src/fuse/daemon.js';
import type { FuseBackend } from '../../src/fuse/mount.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { KnownDerivations } from '../../src/realise/known-derivations.js';
import type { ProgressEvent } from '../../src/realise/progress.js';
import { Realiser, type RealiserOptions } from '../../src/realise/realiser.js';
import { LocalStore } from '../../src/store/local-store.js';
import { FIXTURES } from '../helpers/fixtures.js';

export const HAVE_FUSE = existsSync('/dev/fuse');

export interface MountVariant {
  name: string;
  backend: FuseBackend;
  passthrough?: boolean;
}

/** The ways of speaking FUSE; the kernel-protocol session needs root. */
export const BACKENDS: MountVariant[] = [
  ...(process.getuid?.() === 0
    ? [{ name: 'kernel', backend: 'kernel' as const }, { name: 'kernel, no passthrough', backend: 'kernel' as const, passthrough: false }]
    : []),
  { name: 'libfuse', backend: 'libfuse' },
];

export function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

export interface TestMount {
  mp: string;
  state: string;
  store: LocalStore;
  known: KnownDerivations;
  realiser: Realiser;
  daemon: Daemon;
  events: ProgressEvent[];
  logs: string[];
  close(): Promise<void>;
}

export async function startTestMount(opts: RealiserOptions & { unknownKind?: 'directory' | 'symlink'; listRoot?: boolean; backend?: FuseBackend; passthrough?: boolean } = {}): Promise<TestMount> {
  const state = await mkdtemp(join(tmpdir(), 'lazystore-fuse-state-'));
  const mp = await mkdtemp(join(tmpdir(), 'lazystore-fuse-mp-'));
  const store = await LocalStore.open(state);
  const known = await KnownDerivations.open(state, store);
  const realiser = new Realiser(store, { known, maxJobs: 2, ...opts });
  const events: ProgressEvent[] = [];
  realiser.onProgress((e) => events.push(e));
  const logs: string[] = [];
  const daemon = await startDaemon({ mountpoint: mp, stateDir: state, store, realiser, unknownKind: opts.unknownKind, listRoot: opts.listRoot, backend: opts.backend, passthrough: opts.passthrough, log: (l) => logs.push(l) });
  return {
    mp, state, store, known, realiser, daemon, events, logs,
    async close() {
      await daemon.stop().catch(() => {});
      if (isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
      await rmdir(mp).catch(() => {}); // never recursive: it was a mountpoint
      await rm(state, { recursive: true, force: true });
    },
  };
}

/** The bundled CLI that bin/lazystore runs (npm test builds it first). */
export const CLI = join(import.meta.dirname, '../../dist/bundle/run.cjs');

export interface CliMount {
  child: ChildProcess;
  /** Everything the daemon printed on stderr so far. */
  stderr: () => string;
}

/** Starts `lazystore mount ARGS` (the CLI, its own process); resolves once it printed its ready line. */
export function startCliMount(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliMount> {
  const child = spawn(process.execPath, [CLI, 'mount', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      err += c;
      if (/lazystore: mounted .* at /.test(err)) resolve({ child, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`mount exited ${code}: ${err}`)));
  });
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in a child process (never in this one: see above). `cmd` must not be inside
 * the mount: spawning suspends this process's JS thread (vfork) until the exec completes, and
 * an exec from the mount waits for that thread. Exec mount paths through `sh -c 'exec "$0"'`.
 */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, encoding: 'utf8', env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Paths of `started` builds, by derivation. */
export function builtDrvs(events: ProgressEvent[]): StorePath[] {
  return events.filter((e) => e.type === 'started' && e.kind === 'build' && e.drvPath).map((e) => e.drvPath as StorePath);
}

/**
 * Fresh derivations (salted, so nothing has built them) from busybox-only Nix expressions,
 * instantiated by real nix-instantiate. `script` runs under busybox sh with $out set.
 */
export async function freshDrvs(specs: Record<string, string>): Promise<Record<string, { drvPath: StorePath; out: StorePath }>> {
  const dir = await mkdtemp(join(tmpdir(), 'lazystore-fuse-nix-'));
  const salt = `fuse-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const attrs = Object.entries(specs)
    .map(([name, script]) => `  ${JSON.stringify(name)} = lib.mk { name = ${JSON.stringify(name)}; script = ${JSON.stringify(script).replace(/\$\{/g, '\\${')}; };`)
    .join('\n');
  const file = join(dir, 'drvs.nix');
  await writeFile(file, `let lib = import ${join(FIXTURES, 'nix', 'lib.nix')} { salt = ${JSON.stringify(salt)}; }; in {\n${attrs}\n}\n`);
  const out: Record<string, { drvPath: StorePath; out: StorePath }> = {};
  for (const name of Object.keys(specs)) {
    const r = await run('nix-instantiate', [file, '-A', name]);
    if (r.code !== 0) throw new Error(`nix-instantiate ${name}: ${r.stderr}`);
    const drvPath = parseStorePath(r.stdout.trim().replace(/!.*$/, ''));
    const show = await run('nix', ['--extra-experimental-features', 'nix-command', 'show-derivation', drvPath]);
    const json = JSON.parse(show.stdout) as Record<string, { outputs: { out: { path: string } } }>;
    out[name] = { drvPath, out: parseStorePath(Object.values(json)[0]!.outputs.out.path) };
  }
  await rm(dir, { recursive: true, force: true });
  return out;
}
