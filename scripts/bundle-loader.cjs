'use strict';
/*
 * dist/bundle/run.cjs, what bin/lazystore runs (copied there by scripts/bundle.ts): compiles
 * lazystore.cjs, the whole CLI bundled, with V8's code cache made at build time
 * (lazystore.cjs.cache), so a command starts without parsing and compiling the functions it
 * needs. A cache made by another Node.js is rejected by V8 and the code is compiled as usual.
 * LAZYSTORE_CODE_CACHE_OUT=FILE writes a new cache at exit (the build's training run).
 */
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const vm = require('node:vm');

const file = join(__dirname, 'lazystore.cjs');
let cachedData;
try {
  cachedData = readFileSync(`${file}.cache`);
} catch {
  // no cache: compiled as it runs
}
let source = readFileSync(file, 'utf8');
if (source.startsWith('#!')) source = `//${source.slice(2)}`;
// The sources are ES modules, so strict; the wrapper is CommonJS's.
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {'use strict';${source}\n})`, { filename: file, cachedData });
const out = process.env.LAZYSTORE_CODE_CACHE_OUT;
if (out) process.once('exit', () => writeFileSync(out, script.createCachedData()));
script.runInThisContext()(exports, require, module, file, __dirname);
