/**
 * Real lazystore processes for the store's crash and concurrency tests: the sources compiled
 * once per test file into a private directory (so a concurrent `npm run build` cannot hand a
 * child a half-written module), and a child that runs one store operation from JSON arguments.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

/**
 * Compiles src/ into a fresh directory; returns it. With `selfContained`, the runtime
 * dependencies are copied in instead of linked, so a user who cannot traverse the checkout
 * (a clone under a 0700 home or mkdtemp directory) can still load them.
 */
export function buildPrivateDist(opts: { selfContained?: boolean } = {}): string {
  const out = mkdtempSync(join(tmpdir(), 'lazystore-dist-'));
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: ROOT, stdio: 'pipe' });
  } catch (e) {
    // Type errors elsewhere in the tree still emit JavaScript; only a missing output is fatal.
    void e;
  }
  chmodSync(out, 0o755); // readable by the unprivileged children of the non-root tests
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  if (opts.selfContained) copyRuntimeModules(join(out, 'node_modules'));
  else symlinkSync(join(ROOT, 'node_modules'), join(out, 'node_modules'));
  return out;
}

/** Copies package.json's dependencies and everything they depend on (a flat npm tree) into `dest`. */
function copyRuntimeModules(dest: string): void {
  const readDeps = (dir: string): string[] =>
    Object.keys((JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }).dependencies ?? {});
  const todo = readDeps(ROOT);
  const seen = new Set<string>();
  for (let name = todo.pop(); name !== undefined; name = todo.pop()) {
    if (seen.has(name)) continue;
    seen.add(name);
    const src = join(ROOT, 'node_modules', name);
    if (!existsSync(src)) continue; // an optional dependency not installed here
    cpSync(src, join(dest, name), { recursive: true });
    todo.push(...readDeps(src));
  }
  chmodTree(dest);
}

function chmodTree(dir: string): void {
  chmodSync(dir, 0o755);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) chmodTree(join(dir, e.name));
    else if (e.isFile()) chmodSync(join(dir, e.name), 0o644);
  }
}

export function removePrivateDist(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** The script each child runs: one store operation, its result as one JSON line on stdout. */
const CHILD = `
const dist = process.env.LZS_DIST;
const args = JSON.parse(process.env.LZS_ARGS);
const { LocalStore } = await import(dist + '/src/store/local-store.js');
const { parseHash, formatHash } = await import(dist + '/src/nix/hash.js');
const { parseStorePath } = await import(dist + '/src/nix/store-path.js');
const { scanPath } = await import(dist + '/src/store/scan-path.js');
const fs = await import('node:fs');
const path = await import('node:path');
const store = await LocalStore.open(args.state);
let info;
if (args.op === 'nar') {
  info = await store.addFromNar(fs.createReadStream(args.narFile), {
    path: parseStorePath(args.path), narHash: parseHash(args.narHash), narSize: args.narSize,
    references: args.references.map(parseStorePath),
  });
} else if (args.op === 'register-file') {
  const dir = await store.makeTempDir('child');
  const file = path.join(dir, 'out');
  fs.writeFileSync(file, args.content);
  fs.chmodSync(file, 0o444);
  fs.utimesSync(file, 1, 1);
  const scan = await scanPath(file);
  info = await store.register(file, { path: parseStorePath(args.path), narHash: scan.narHash, narSize: scan.narSize, references: [], sigs: [] });
  await store.discardTemp(dir);
} else if (args.op === 'delete') {
  await store.delete(parseStorePath(args.path));
  info = { path: args.path, narHash: { algo: 'sha256', digest: Buffer.alloc(32) }, narSize: 0 };
} else if (args.op === 'count') {
  // Read-modify-write of a counter file under one lock, with a pause inside the critical section.
  const { StoreLocks } = await import(dist + '/src/store/store-lock.js');
  const locks = new StoreLocks(args.state);
  const file = path.join(args.state, 'counter');
  for (let i = 0; i < args.times; i++) {
    const release = await locks.acquire('counter');
    const n = Number(fs.readFileSync(file, 'utf8'));
    await new Promise((r) => setTimeout(r, 1));
    fs.writeFileSync(file, String(n + 1));
    await release();
  }
  process.exit(0);
} else if (args.op === 'open') {
  process.stdout.write(JSON.stringify(store.recovery) + '\\n');
  process.exit(0);
}
process.stdout.write(JSON.stringify({ path: info.path, narHash: formatHash(info.narHash), narSize: info.narSize }) + '\\n');
`;

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StoreChild {
  proc: ChildProcess;
  /** Resolves when the child prints `paused at <point>` (its LAZYSTORE_TEST_PAUSE_AT hook). */
  paused: Promise<string>;
  /** Resolves when stderr so far contains `line` (e.g. a LAZYSTORE_TEST_TRACE point); rejects if the child exits first. */
  waitFor(line: string): Promise<void>;
  /** stderr so far. */
  stderr(): string;
  done: Promise<ChildResult>;
}

export function startStoreChild(
  dist: string,
  args: Record<string, unknown>,
  opts: { pauseAt?: string; trace?: boolean; uid?: number; gid?: number } = {},
): StoreChild {
  const env: NodeJS.ProcessEnv = { ...process.env, LZS_DIST: dist, LZS_ARGS: JSON.stringify(args) };
  delete env.LAZYSTORE_TEST_PAUSE_AT;
  delete env.LAZYSTORE_TEST_TRACE;
  if (opts.pauseAt !== undefined) env.LAZYSTORE_TEST_PAUSE_AT = opts.pauseAt;
  if (opts.trace) env.LAZYSTORE_TEST_TRACE = '1';
  // A file, not `--input-type=module -e`: worker threads inherit execArgv, and the NAR worker's
  // eval'd CommonJS source would then be read as a module.
  const script = join(dist, 'store-child.mjs');
  if (!existsSync(script)) writeFileSync(script, CHILD);
  const proc = spawn(process.execPath, [script], { env, stdio: ['ignore', 'pipe', 'pipe'], uid: opts.uid, gid: opts.gid });
  let stdout = '';
  let stderr = '';
  let exited = false;
  const watchers: (() => void)[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of [...watchers]) w();
  });
  const done = new Promise<ChildResult>((res) => {
    proc.on('close', (code, signal) => {
      exited = true;
      for (const w of [...watchers]) w();
      res({ code, signal, stdout, stderr });
    });
  });
  const waitFor = (line: string): Promise<void> =>
    new Promise((res, rej) => {
      const check = (): void => {
        if (stderr.includes(line)) {
          watchers.splice(watchers.indexOf(check), 1);
          res();
        } else if (exited) {
          watchers.splice(watchers.indexOf(check), 1);
          rej(new Error(`child exited before printing '${line}': ${stderr}`));
        }
      };
      watchers.push(check);
      check();
    });
  const paused = waitFor('lazystore: paused at ').then(() => /lazystore: paused at (\S+)/.exec(stderr)![1]!);
  paused.catch(() => undefined); // children that never pause are fine; awaiting `paused` still rejects
  return { proc, paused, waitFor, stderr: () => stderr, done };
}
