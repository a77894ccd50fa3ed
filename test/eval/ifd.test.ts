/**
 * A real evaluator (Nix 2.8's nix-instantiate) reading outputs through the lazy mount:
 * import-from-derivation without Nix building anything. The recipe (docs/EVALUATORS.md):
 *
 *   lazystore shell --state S --drvs E/nix/store -- \
 *     nix-instantiate --store E --eval --read-write-mode --json EXPR.nix
 *
 * - `--store E` (a chroot store, real directory E/nix/store) is where Nix writes .drv files
 *   and `builtins.path` sources; inside `lazystore shell` the logical /nix/store is the lazy
 *   mount, so Nix's own store must live elsewhere.
 * - `--read-write-mode`: `--eval` alone is read-only and writes no .drv files.
 * - the expression reads `builtins.readFile (builtins.unsafeDiscardStringContext
 *   drv.outPath + "/result.txt")`: without string context Nix neither builds the path in its
 *   own store nor maps it into E, so the read goes to /nix/store, i.e. the lazy mount, and the
 *   lazystore daemon (reading .drv files and busybox from E/nix/store) builds it.
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertBuilt, CLI } from '../vm/mount-process.js';
import { FIXTURES } from '../helpers/fixtures.js';

let work: string;
let evalStore: string;
let state: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'lazystore-eval-test-'));
  // as root, builds run as an unprivileged build uid that must traverse to the state dir
  await chmod(work, 0o755);
  evalStore = join(work, 'evalstore');
  state = join(work, 'state');
  await mkdir(join(evalStore, 'nix', 'store'), { recursive: true });
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  const env = { ...process.env };
  delete env.NIX_REMOTE; // Debian's nix-setup-systemd sets NIX_REMOTE=daemon; there is no daemon
  env.NIX_CONFIG = '';
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGTERM' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, ms: performance.now() - start }));
  });
}

/** nix-instantiate inside `lazystore shell`, evaluating `file` to JSON. */
function evalInLazyShell(file: string): Promise<Run> {
  assertBuilt();
  return run(process.execPath, [
    CLI, 'shell', '--state', state, '--drvs', join(evalStore, 'nix', 'store'), '--',
    'nix-instantiate', '--store', evalStore, '--eval', '--read-write-mode', '--strict', '--json', file,
  ]);
}

/** A Nix file beside the test's work dir, using the fixtures' busybox-only `mk`. */
async function nixFile(name: string, body: string): Promise<string> {
  const file = join(work, name);
  await writeFile(file, `let\n  lib = import ${FIXTURES}/nix/lib.nix { salt = "${work}"; };\n  read = d: builtins.readFile (builtins.unsafeDiscardStringContext d.outPath + "/result.txt");\n${body}`);
  return file;
}

/** The daemon's build logs, for failure messages. */
async function buildLogs(): Promise<string> {
  const dir = join(state, 'log');
  const names = await readdir(dir).catch(() => [] as string[]);
  const logs = await Promise.all(names.map(async (n) => `\n--- ${n}\n${await readFile(join(dir, n), 'utf8').catch(() => '')}`));
  return logs.join('');
}

const built = (log: string) => [...log.matchAll(/built (\/nix\/store\/\S+\.drv)/g)].map((m) => m[1]);

describe('nix-instantiate reading outputs through the lazy mount (IFD without Nix building)', () => {
  it('reads a file from an output instantiated before the mount started', async () => {
    // phase 1: plain instantiation into the chroot store (lazystore not involved)
    const drvExpr = await nixFile('a.nix', `in lib.mk { name = "eval-a"; script = "mkdir $out; echo -n 7 > $out/result.txt"; }\n`);
    const inst = await run('nix-instantiate', ['--store', evalStore, drvExpr]);
    expect(inst.code, inst.stderr).toBe(0);
    const drvPath = inst.stdout.trim();
    expect(await stat(join(evalStore, drvPath))).toBeTruthy();

    // phase 2: evaluation reads the output, lazystore builds it
    const readExpr = await nixFile('read-a.nix', `  a = import ${drvExpr};\nin { a = read a; imported = import (builtins.unsafeDiscardStringContext a.outPath + "/result.txt"); }\n`);
    const r = await evalInLazyShell(readExpr);
    expect(r.code, r.stderr + (await buildLogs())).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ a: '7', imported: 7 });
    expect(built(r.stderr)).toEqual([drvPath]);
    // the evaluator's own store never got the output: lazystore's did
    const out = /realised (\/nix\/store\/\S+-eval-a)/.exec(r.stderr)?.[1] as string;
    await expect(stat(join(evalStore, out))).rejects.toThrow();
    expect(await readFile(join(state, 'store', out.slice('/nix/store/'.length), 'result.txt'), 'utf8')).toBe('7');
    console.log(`eval, one read through the lazy mount: ${Math.round(r.ms)} ms`);
  });

  // Needs the realiser to re-scan the --drvs directories on a lookup miss: b's .drv is
  // written by this evaluation after the mount started.
  it('evaluates a chain where the second derivation depends on the first one read, in one evaluation', async () => {
    // b's name and script come from a's output, so b's .drv exists only after a was read:
    // lazystore must pick it up from the eval store while the evaluation runs.
    const expr = await nixFile(
      'chain.nix',
      [
        '  a = lib.mk { name = "eval-a"; script = "mkdir $out; echo -n 7 > $out/result.txt"; };',
        '  x = read a;',
        '  b = lib.mk { name = "eval-b-${x}"; script = "mkdir $out; echo -n $((${x} * 6)) > $out/result.txt"; };',
        'in { a = x; b = read b; }',
        '',
      ].join('\n'),
    );
    const r = await evalInLazyShell(expr);
    expect(r.code, r.stderr + (await buildLogs())).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ a: '7', b: '42' });
    const drvs = built(r.stderr);
    expect(drvs).toHaveLength(2);
    expect(drvs[0]).toMatch(/-eval-a\.drv$/);
    expect(drvs[1]).toMatch(/-eval-b-7\.drv$/);
    console.log(`eval, chain of two dependent reads through the lazy mount: ${Math.round(r.ms)} ms`);
  });
});
