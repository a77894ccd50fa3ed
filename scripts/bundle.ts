/**
 * Bundles the compiled CLI (dist/src/cli/main.js, from tsc) into dist/bundle/, which
 * bin/lazystore runs: one file per entry plus shared chunks, instead of the ~50 modules a
 * command like `copy` otherwise loads one by one (each resolved, read and compiled: ~17 ms of
 * every command's start here, 0.051-0.056 s vs 0.036-0.037 s for `copy --help`).
 * fuse-native stays outside (a native addon that finds its binary from its own
 * directory). Why esbuild: it bundles ES modules with code splitting in tens of milliseconds,
 * and is a single well-kept package with a prebuilt binary per platform.
 */
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('..', import.meta.url)); // dist/ (this file is dist/scripts/bundle.js)
const outdir = `${dist}bundle`;

await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: `${dist}src/cli/main.js` },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['fuse-native'],
  // Packages written as CommonJS (fuse-native's loader) need `require` inside an ES module.
  banner: { js: "import { createRequire as __lazystoreCreateRequire } from 'node:module'; const require = __lazystoreCreateRequire(import.meta.url);" },
  sourcemap: 'linked',
  logLevel: 'warning',
});
