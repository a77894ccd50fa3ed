/** `lazystore drv show`: what `nix show-derivation` prints, computed from the .drv files alone. */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { parseDerivation, type Derivation } from '../../nix/derivation.js';
import { DerivationHasher, drvStorePath } from '../../nix/derivation-hash.js';
import { formatShowDerivation } from '../../nix/derivation-json.js';
import { STORE_DIR, type StorePath } from '../../nix/store-path.js';
import { makeDrvLoader } from '../../store/drv-loader.js';
import type { Command } from '../command.js';

interface Shown {
  file: string;
  drvPath: StorePath;
  drv: Derivation;
  outputPaths: Map<string, StorePath>;
}

export const command: Command = {
  summary: 'show derivations with their computed store paths (like nix show-derivation)',
  usage: `usage: lazystore drv show [--json] [--drvs DIR]… FILE.drv…

Parses each FILE.drv and prints it keyed by the store path its content hashes to, with every
output's store path computed (hashDerivationModulo over its input derivations). Input
derivations /nix/store/X.drv are read as X.drv from the file's own directory, then
${STORE_DIR}, then each --drvs DIR, and must hash to their paths.

  --json      print exactly what 'nix show-derivation' prints for these derivations
  --drvs DIR  another directory of .drv files to find input derivations in; repeatable
`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'show') {
      throw new LazyError('CLI_USAGE', `unknown drv subcommand '${sub ?? ''}' (see 'lazystore drv --help')`);
    }
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { json: { type: 'boolean' }, drvs: { type: 'string', multiple: true } },
    });
    if (positionals.length === 0) throw new LazyError('CLI_USAGE', "drv show needs at least one .drv file (see 'lazystore drv --help')");

    const extra = (values.drvs ?? []).map((d) => resolve(d));
    const hashers = new Map<string, DerivationHasher>();
    const shown: Shown[] = [];
    for (const file of positionals) {
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (e) {
        throw new LazyError('CLI_BAD_FILE', `${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, {
          cause: e,
        });
      }
      const drv = parseDerivation(bytes, file);
      const dirs = [...new Set([dirname(resolve(file)), STORE_DIR, ...extra])];
      const key = dirs.join('\0');
      let hasher = hashers.get(key);
      if (!hasher) {
        hasher = new DerivationHasher(makeDrvLoader(dirs));
        hashers.set(key, hasher);
      }
      shown.push({ file, drvPath: drvStorePath(drv, bytes), drv, outputPaths: await hasher.outputPaths(drv) });
    }

    if (values.json) {
      process.stdout.write(formatShowDerivation(shown));
    } else {
      process.stdout.write(Buffer.concat(shown.flatMap((x, i) => (i === 0 ? [summary(x)] : [Buffer.from('\n'), summary(x)]))));
    }
    return 0;
  },
};

/** Byte strings go to the terminal as the bytes they are. */
function summary(s: Shown): Buffer {
  const lines = [s.drvPath, `  file:    ${s.file}`, `  system:  ${s.drv.platform}`, `  builder: ${s.drv.builder}`, '  outputs:'];
  const width = Math.max(...[...s.outputPaths.keys()].map((n) => n.length));
  for (const [name, path] of s.outputPaths) {
    const o = s.drv.outputs.get(name)!;
    let line = `    ${name.padEnd(width)}  ${path}`;
    if (o.hash !== '') line += `  (fixed: ${o.hashAlgo}:${o.hash})`;
    if (o.path !== path) line += `  (the file says ${o.path === '' ? 'nothing' : o.path})`;
    lines.push(line);
  }
  if (s.drv.inputDrvs.size > 0) {
    lines.push('  input derivations:');
    for (const [p, outs] of s.drv.inputDrvs) lines.push(`    ${p} (${outs.join(', ')})`);
  }
  if (s.drv.inputSrcs.length > 0) {
    lines.push('  input sources:');
    for (const p of s.drv.inputSrcs) lines.push(`    ${p}`);
  }
  return Buffer.from(lines.join('\n') + '\n', 'latin1');
}
