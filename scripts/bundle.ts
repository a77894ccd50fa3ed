/**
 * Bundles the compiled CLI (dist/src/cli/main.js, from tsc) into dist/bundle/lazystore.cjs,
 * with a V8 code cache for it, and copies the loader (scripts/bundle-loader.cjs) beside it as
 * run.cjs, which bin/lazystore runs. Why: a command used to load ~50 modules one by one (each
 * resolved, read and compiled), then compile every function it calls; bundled and cached it
 * starts with the bytecode in hand.
 *
 * The cache is made by a training run — the bundle substituting a two-path closure from a
 * binary cache made here — so it holds the functions of store opening, narinfo handling, NAR
 * decoding and restore, and registration. Training is best effort: without it (or with a cache
 * V8 rejects, e.g. under another Node.js) everything works, compiled as it runs.
 *
 * Why esbuild: it bundles ES modules in tens of milliseconds, and is a single well-kept package
 * with a prebuilt binary per platform. fuse-native stays outside (a native addon that finds its
 * binary from its own directory).
 */
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatHash } from '../src/nix/hash.js';
import { encodeNar } from '../src/nix/nar-writer.js';
import { encodeNix32 } from '../src/nix/nixbase32.js';

const root = fileURLToPath(new URL('../..', import.meta.url)); // this file is dist/scripts/bundle.js
const outdir = join(root, 'dist/bundle');
const bundle = join(outdir, 'lazystore.cjs');

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: [join(root, 'dist/src/cli/main.js')],
  outfile: bundle,
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['fuse-native'],
  // import.meta.url (addons, the VM init script) as the bundle's own URL.
  define: { 'import.meta.url': '__lazystoreUrl' },
  banner: { js: "var __lazystoreUrl = require('node:url').pathToFileURL(__filename).href;" },
  // Whitespace only (names stay): a third less to read and hash at every start (~3 ms of
  // `copy --help`). For readable stack traces run dist/src/cli/main.js, the unbundled program.
  minifyWhitespace: true,
  sourcemap: 'linked',
  logLevel: 'warning',
});
copyFileSync(join(root, 'scripts/bundle-loader.cjs'), join(outdir, 'run.cjs'));
train();

/** Runs the bundle once on a made-up closure, writing the code cache at its exit. */
function train(): void {
  const work = mkdtempSync(join(tmpdir(), 'lazystore-train-'));
  try {
    const cache = join(work, 'cache');
    mkdirSync(join(cache, 'nar'), { recursive: true });
    writeFileSync(join(cache, 'nix-cache-info'), 'StoreDir: /nix/store\n');
    const xz = spawnSync('xz', ['--version']).status === 0;
    const dep = storePath('lazystore-training-dep');
    const top = storePath('lazystore-training');
    const entries: [string, Buffer, string[]][] = [
      [dep, encodeNar({ type: 'regular', contents: 'training\n' }), []],
      [
        top,
        encodeNar({
          type: 'directory',
          entries: {
            bin: { type: 'directory', entries: { run: { type: 'regular', executable: true, contents: `#!/bin/sh\ncat ${dep}\n` } } },
            link: { type: 'symlink', target: dep },
          },
        }),
        [dep],
      ],
    ];
    for (const [path, nar, refs] of entries) {
      const hash = path.slice(11, 43);
      const file = xz ? spawnSync('xz', ['-c'], { input: nar }).stdout : nar;
      writeFileSync(join(cache, 'nar', `${hash}.nar${xz ? '.xz' : ''}`), file);
      const narHash = formatHash({ algo: 'sha256', digest: createHash('sha256').update(nar).digest() });
      const lines = [`StorePath: ${path}`, `URL: nar/${hash}.nar${xz ? '.xz' : ''}`, `Compression: ${xz ? 'xz' : 'none'}`];
      lines.push(`NarHash: ${narHash}`, `NarSize: ${nar.length}`, `References: ${refs.map((r) => r.slice(11)).join(' ')}`);
      writeFileSync(join(cache, `${hash}.narinfo`), `${lines.join('\n')}\n`);
    }
    const r = spawnSync(process.execPath, [join(outdir, 'run.cjs'), 'copy', '--state', join(work, 'state'), '--from', `file://${cache}`, '--no-check-sigs', top], {
      env: { ...process.env, LAZYSTORE_CODE_CACHE_OUT: `${bundle}.cache`, NODE_EXTRA_CA_CERTS: '' },
      encoding: 'utf8',
    });
    if (r.status !== 0) process.stderr.write(`bundle: training run failed, no code cache (${r.stderr.trim()})\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function storePath(name: string): string {
  return `/nix/store/${encodeNix32(createHash('sha256').update(name).digest().subarray(0, 20))}-${name}`;
}
