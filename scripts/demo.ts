/**
 * `npm run demo`: lazystore's main job end to end, through the CLI as a user would run it, on
 * the reference fixtures that real Nix 2.8 built (/tmp/nix-reference, made by scripts/setup.sh).
 *
 *   1. formats  — `drv show` of a fixture derivation against `nix show-derivation`,
 *                 `nar hash` of a real output against Nix's NAR hash
 *   2. build    — build the fixture chain C → B → A from scratch into a temporary state dir
 *   3. mount    — mount at mountpoints/store, read a file deep inside an unbuilt path so its
 *                 closure builds on demand, run a built program via `lazystore shell`, unmount
 *
 * Each stage runs only if the commands it needs exist (`lazystore --help`), so the demo grows
 * with the CLI. Exit code 0 only if every stage that ran succeeded. Temporary state is removed
 * and the mount is always taken down, also on error and Ctrl-C.
 */
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseHash, formatHash } from '../src/nix/hash.js';
import { Commands, DemoFailure, CLI, bold, check, heading, lazystore, ok, red, say, seconds } from './demo-kit.js';
import { FIXTURES, busyboxOnlyCache, fixture, removeTemps, tempDir, type Fixtures } from './demo-fixtures.js';
import { mountStage, cleanupMount } from './demo-mount.js';

async function formatsStage(cmds: Commands, m: Fixtures): Promise<boolean> {
  heading('1. Formats: derivations and NARs, compared with real Nix 2.8');
  let ran = false;
  if (await cmds.hasSub('drv', 'show')) {
    ran = true;
    const c = fixture(m, 'chain.C');
    const file = join(FIXTURES, c.drvFile);
    say(`lazystore drv show ${file}`);
    const shown = await lazystore(['drv', 'show', file], { echoStdout: true });
    check(shown.code === 0, `drv show exited ${shown.code}: ${shown.stderr.trim()}`);
    say('lazystore drv show --json … (compared with `nix show-derivation`)');
    const r = await lazystore(['drv', 'show', '--json', file], { quiet: true });
    check(r.code === 0, `drv show --json exited ${r.code}: ${r.stderr.trim()}`);
    const ours = JSON.parse(r.stdout) as Record<string, { outputs: Record<string, { path: string }> }>;
    const theirs = (JSON.parse(await readFile(join(FIXTURES, 'show-derivation.json'), 'utf8')) as Record<string, unknown>)[c.drvPath];
    const mine = ours[c.drvPath];
    check(mine !== undefined, `drv show did not print ${c.drvPath}`);
    check(JSON.stringify(mine) === JSON.stringify(theirs), 'drv show --json differs from nix show-derivation');
    ok(`same JSON as \`nix show-derivation\` (${seconds(r.ms)})`);
    for (const [name, o] of Object.entries(c.outputs)) {
      check(mine.outputs[name]?.path === o.path, `output ${name}: ${mine.outputs[name]?.path} ≠ ${o.path}`);
    }
    ok('output paths are the ones Nix built');
  }
  if (await cmds.hasSub('nar', 'hash')) {
    ran = true;
    const s = fixture(m, 'single');
    const out = s.outputs.out!;
    say(`lazystore nar hash ${out.path}`);
    const r = await lazystore(['nar', 'hash', out.path], { quiet: true });
    check(r.code === 0, `nar hash exited ${r.code}: ${r.stderr.trim()}`);
    const got = parseHash(r.stdout.trim().split(/\s+/)[0]!, 'sha256');
    const want = parseHash(out.narHash);
    say(`  ours: ${formatHash(got, 'nix32')}`);
    say(`  Nix:  ${formatHash(want, 'nix32')}`);
    check(got.digest.equals(want.digest), 'NAR hash differs from Nix');
    ok(`identical (${out.narSize} bytes of NAR, ${seconds(r.ms)})`);
  }
  if (!ran) say("skipped: no 'drv show' or 'nar hash' command yet");
  return ran;
}

async function buildStage(cmds: Commands, m: Fixtures): Promise<boolean> {
  heading('2. Build a chain of derivations from scratch');
  if (!cmds.has('build')) {
    say("skipped: no 'build' command yet");
    return false;
  }
  const c = fixture(m, 'chain.C');
  const state = await tempDir('build-state');
  const cache = await busyboxOnlyCache(m);
  say(`fixture-chain-c needs fixture-chain-b, which needs fixture-chain-a; only busybox is in the cache.`);
  say(`state dir: ${state}`);
  const args = ['build', '--state', state, '--substituter', cache, '--no-check-sigs', join(FIXTURES, c.drvFile)];
  say(`lazystore ${args.join(' ')}`);
  const r = await lazystore(args, { echoStdout: true });
  check(r.code === 0, `build exited ${r.code}`);
  const want = c.outputs.out!.path;
  check(r.stdout.includes(want), `build did not print ${want}`);
  check(existsSync(join(state, 'store', basename(want), 'ref-to-a')), `${want} is not in ${state}/store`);
  ok(`built in ${seconds(r.ms)}; output ${want}`);
  if (cmds.has('path-info')) {
    const info = await lazystore(['path-info', '--state', state, '--json', want], { quiet: true });
    check(info.code === 0, `path-info exited ${info.code}: ${info.stderr.trim()}`);
    const [entry] = JSON.parse(info.stdout) as { narHash: string }[];
    check(entry !== undefined, `path-info printed nothing for ${want}`);
    check(parseHash(entry.narHash).digest.equals(parseHash(c.outputs.out!.narHash).digest), 'NAR hash differs from the one Nix built');
    ok('bit-for-bit the output real Nix built (lazystore path-info: same NAR hash)');
  }
  return true;
}

async function main(): Promise<number> {
  process.stdout.write(bold('lazystore demo') + ` — fixtures from real Nix at ${FIXTURES}\n`);
  if (!existsSync(CLI)) throw new DemoFailure(`${CLI} missing: run 'npm run build' (npm run demo does)`);
  if (!existsSync(join(FIXTURES, 'manifest.json'))) throw new DemoFailure(`no fixtures at ${FIXTURES}: run 'bash scripts/setup.sh'`);
  const m = JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')) as Fixtures;
  const cmds = await Commands.discover();
  say(`commands: ${[...cmds.names].join(', ') || '(none yet)'}`);
  const t0 = performance.now();
  const ran = [await formatsStage(cmds, m), await buildStage(cmds, m), await mountStage(cmds, m)];
  heading('Done');
  say(`${ran.filter(Boolean).length} of ${ran.length} stages ran, all passed, in ${seconds(performance.now() - t0)}`);
  return 0;
}

async function cleanup(): Promise<void> {
  await cleanupMount();
  await removeTemps();
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    interrupted = true;
    process.stdout.write(`\n${red(sig)}: cleaning up\n`);
    void cleanup().finally(() => process.exit(130));
  });
}
// `npm run demo | head` closes our stdout early: still unmount and remove temporary state.
process.stdout.on('error', () => {
  if (interrupted) return;
  interrupted = true;
  void cleanup().finally(() => process.exit(141));
});

main()
  .catch((e: unknown) => {
    if (interrupted) return 130;
    const msg = e instanceof DemoFailure ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stdout.write(`\n${red('FAILED')}: ${msg}\n`);
    return 1;
  })
  .then(async (code) => {
    await cleanup();
    process.exitCode = code;
  });
