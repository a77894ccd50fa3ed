/** Derivations crafted byte by byte from the fixture `single`, with the store paths Nix would give them. */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DerivationHasher, drvStorePath } from '../../src/nix/derivation-hash.js';
import { parseDerivation, serializeDerivation, type Derivation } from '../../src/nix/derivation.js';
import { baseName, type StorePath } from '../../src/nix/store-path.js';
import { FIXTURES, fixtureDrv } from '../helpers/fixtures.js';

/** The fixture `single`: busybox builder, one output, no input derivations. */
export function baseDrv(): Derivation {
  return parseDerivation(readFileSync(join(FIXTURES, fixtureDrv('single').drvFile)));
}

/** `single` with `script` run by busybox sh -e -c, a salt, and its env sorted. */
export function scriptDrv(name: string, script: string, env: Record<string, string> = {}): Derivation {
  const d = baseDrv();
  d.args = ['sh', '-e', '-c', script];
  d.env.set('name', name);
  d.env.set('salt', `${name}-${process.pid}-${Date.now()}-${Math.random()}`);
  for (const [k, v] of Object.entries(env)) d.env.set(k, v);
  return sortEnv(d);
}

export function sortEnv(d: Derivation): Derivation {
  d.env = new Map([...d.env].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return d;
}

/** Writes `drv` into `dir` as <hash>-<name>.drv with output paths computed as Nix would (unless told not to). */
export async function craft(dir: string, drv: Derivation, opts: { fixPaths?: boolean } = {}): Promise<StorePath> {
  if (opts.fixPaths !== false) {
    // as Nix does: output paths come from the derivation with them (and their env vars) blanked
    const env = new Map(drv.env);
    for (const n of drv.outputs.keys()) if (env.has(n)) env.set(n, '');
    const masked: Derivation = { ...drv, env, outputs: new Map([...drv.outputs].map(([n, o]) => [n, { ...o, path: '' }])) };
    const hasher = new DerivationHasher(async () => {
      throw new Error('no input derivations here');
    });
    const paths = await hasher.outputPaths(masked);
    for (const [n, o] of drv.outputs) {
      o.path = paths.get(n) ?? o.path;
      if (drv.env.has(n)) drv.env.set(n, o.path);
    }
  }
  const bytes = serializeDerivation(drv);
  const drvPath = drvStorePath(drv, bytes);
  await writeFile(join(dir, baseName(drvPath)), bytes);
  return drvPath;
}
