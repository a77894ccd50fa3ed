/**
 * Small helpers for scripts/demo.ts: run the CLI as a user would (a child process), show its
 * progress indented, time things, and find which commands exist.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (dist/scripts/demo-kit.js → ../..). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

const useColour = process.stdout.isTTY === true && process.env.NO_COLOR === undefined;
const paint = (code: string) => (s: string) => (useColour ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint('1');
export const dim = paint('2');
export const green = paint('32');
export const red = paint('31');

export function heading(s: string): void {
  process.stdout.write(`\n${bold('== ' + s)}\n`);
}
export function say(s: string): void {
  process.stdout.write(`   ${s}\n`);
}
export function ok(s: string): void {
  process.stdout.write(`   ${green('ok')}  ${s}\n`);
}
export function seconds(ms: number): string {
  return ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export class DemoFailure extends Error {}
export function check(cond: boolean, what: string): asserts cond {
  if (!cond) throw new DemoFailure(what);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs a program, echoing its stderr (progress, logs) indented as it comes, capturing stdout;
 * `echoStdout` shows stdout too. Rejects only if it cannot start.
 */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; echoStdout?: boolean; quiet?: boolean; signal?: AbortSignal } = {},
): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], signal: opts.signal });
    let stdout = '';
    let stderr = '';
    const echo = (chunk: string) => {
      if (!opts.quiet) process.stdout.write(chunk.replace(/^(?=.)/gm, dim('   │ ')));
    };
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      if (opts.echoStdout) echo(c);
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      echo(c);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 }));
  });
}

/** `lazystore …` through node, as the installed binary would run. */
export function lazystore(args: string[], opts: Parameters<typeof run>[2] = {}): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], opts);
}

/** Starts `lazystore …` in the background (a daemon); its stderr is echoed. */
export function startLazystore(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const echo = (c: string) => process.stdout.write(c.replace(/^(?=.)/gm, dim('   │ ')));
  child.stdout?.setEncoding('utf8').on('data', echo);
  child.stderr?.setEncoding('utf8').on('data', echo);
  return child;
}

/** Command names listed by `lazystore --help`, and (lazily) each one's usage text. */
export class Commands {
  private constructor(
    readonly names: Set<string>,
    private readonly usages = new Map<string, string>(),
  ) {}

  static async discover(): Promise<Commands> {
    const r = await lazystore(['--help'], { quiet: true });
    const names = new Set([...r.stdout.matchAll(/^ {2}([a-z][a-z-]*)\s/gm)].map((m) => m[1]!));
    return new Commands(names);
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  async usage(name: string): Promise<string> {
    let u = this.usages.get(name);
    if (u === undefined) {
      const r = await lazystore([name, '--help'], { quiet: true });
      u = r.stdout + r.stderr;
      this.usages.set(name, u);
    }
    return u;
  }

  /** True when `lazystore <name>` exists and its usage mentions `sub` as a word (a subcommand or flag). */
  async hasSub(name: string, sub: string): Promise<boolean> {
    if (!this.has(name)) return false;
    return new RegExp(`(^|[\\s|[(])${sub.replace(/[-]/g, '\\-')}(?=[\\s|\\])=,]|$)`, 'm').test(await this.usage(name));
  }
}

/** Is `dir` a mountpoint right now (per /proc/self/mountinfo)? */
export function isMounted(dir: string): boolean {
  const esc = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === esc);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
