/**
 * Nix's hashDerivationModulo and the store paths it determines.
 *
 * - Fixed-output: sha256(`fixed:out:<hashAlgo field>:<hex>:<out path>`) — the inputs do not
 *   matter, so changing how a tarball is fetched does not rebuild the world.
 * - Otherwise: sha256 of the ATerm with each input derivation path replaced by the hex of that
 *   input's hashModulo (re-sorted by that key). Output paths come from the same hash taken with
 *   the outputs masked (paths and the env vars named after outputs printed as `''`).
 * - The `.drv` itself is a text path: sha256 of the ATerm, references = inputSrcs ∪ inputDrvs.
 */
import { LazyError, throwIfAborted } from '../errors.js';
import { hashOf, parseHash, type HashAlgo } from './hash.js';
import {
  makeFixedOutputPath,
  makeOutputPath,
  makeTextPath,
  outputPathName,
  type FileIngestionMethod,
  type StorePath,
} from './store-path.js';
import { derivationName, isFixedOutput, serializeDerivation, type Derivation, type DerivationOutput } from './derivation.js';

export type DrvLoader = (drvPath: string, opts?: { signal?: AbortSignal }) => Promise<Derivation>;

/** The `.drv` store path of a derivation (its ATerm as Nix writes it). */
export function drvStorePath(drv: Derivation, bytes: Buffer = serializeDerivation(drv)): StorePath {
  const refs = [...drv.inputSrcs, ...drv.inputDrvs.keys()];
  return makeTextPath(`${derivationName(drv)}.drv`, hashOf('sha256', bytes), refs);
}

/** Method and hash of a fixed output (`r:sha256` → recursive, `text:sha256` → text). */
export function fixedOutputHash(o: DerivationOutput): { method: FileIngestionMethod; algo: HashAlgo; hex: string } {
  let method: FileIngestionMethod = 'flat';
  let algo = o.hashAlgo;
  if (algo.startsWith('r:')) {
    method = 'recursive';
    algo = algo.slice(2);
  } else if (algo.startsWith('text:')) {
    method = 'text';
    algo = algo.slice(5);
  }
  const h = parseHash(o.hash, algo as HashAlgo);
  return { method, algo: h.algo, hex: h.digest.toString('hex') };
}

/** The path a fixed output must have, computed from its name and hash (as Nix does). */
export function fixedOutputPath(drv: Derivation, outputName: string): StorePath {
  const o = drv.outputs.get(outputName);
  if (!o || o.hash === '') throw new LazyError('DRV_NOT_FIXED', `output '${outputName}' is not a fixed output`);
  const { method, algo, hex } = fixedOutputHash(o);
  return makeFixedOutputPath(outputPathName(derivationName(drv), outputName), {
    method,
    hash: { algo, digest: Buffer.from(hex, 'hex') },
  });
}

function unsupported(drv: Derivation): LazyError | undefined {
  for (const [name, o] of drv.outputs) {
    if (o.hashAlgo !== '' && o.hash === '') {
      return new LazyError('DRV_UNSUPPORTED', `output '${name}' is content-addressed (floating); ca-derivations are not supported`);
    }
    if (o.hash !== '' && drv.outputs.size !== 1) {
      return new LazyError('DRV_UNSUPPORTED', `fixed output '${name}' in a derivation with ${drv.outputs.size} outputs`);
    }
    if (o.hash !== '' && name !== 'out') {
      return new LazyError('DRV_UNSUPPORTED', `fixed output must be named 'out', not '${name}'`);
    }
  }
  return undefined;
}

/** Computes hashDerivationModulo over a graph of derivations, each input loaded once. */
export class DerivationHasher {
  private readonly memo = new Map<string, Promise<Buffer>>();

  constructor(private readonly loader: DrvLoader) {}

  /** hashModulo of the derivation stored at `drvPath` (memoised; concurrent calls share work). */
  hashModulo(drvPath: string, opts: { signal?: AbortSignal } = {}): Promise<Buffer> {
    let p = this.memo.get(drvPath);
    if (!p) {
      p = this.loader(drvPath, opts).then((drv) => this.hashModuloOf(drv, opts));
      this.memo.set(drvPath, p);
      p.catch(() => this.memo.delete(drvPath));
    }
    return p;
  }

  /** hashModulo of a derivation in hand; `maskOutputs` gives the hash its output paths are made from. */
  async hashModuloOf(drv: Derivation, opts: { maskOutputs?: boolean; signal?: AbortSignal } = {}): Promise<Buffer> {
    throwIfAborted(opts.signal);
    const bad = unsupported(drv);
    if (bad) throw bad;
    if (isFixedOutput(drv)) {
      const o = drv.outputs.get('out')!;
      const { hex } = fixedOutputHash(o);
      return hashOf('sha256', `fixed:out:${o.hashAlgo}:${hex}:${fixedOutputPath(drv, 'out')}`).digest;
    }
    const paths = [...drv.inputDrvs.keys()];
    const hashes = await Promise.all(paths.map((p) => this.hashModulo(p, { signal: opts.signal })));
    const replace = new Map(paths.map((p, i) => [p, hashes[i]!.toString('hex')]));
    return hashOf('sha256', serializeDerivation(drv, { replaceInputDrvs: replace, maskOutputs: opts.maskOutputs })).digest;
  }

  /** Every output's store path, computed (not read from the ATerm). */
  async outputPaths(drv: Derivation, opts: { signal?: AbortSignal } = {}): Promise<Map<string, StorePath>> {
    const bad = unsupported(drv);
    if (bad) throw bad;
    const out = new Map<string, StorePath>();
    if (isFixedOutput(drv)) {
      out.set('out', fixedOutputPath(drv, 'out'));
      return out;
    }
    const h = await this.hashModuloOf(drv, { maskOutputs: true, signal: opts.signal });
    const name = derivationName(drv);
    for (const outputName of drv.outputs.keys()) out.set(outputName, makeOutputPath(name, outputName, h));
    return out;
  }

  /** The derivation's `.drv` path (convenience for `drvStorePath`). */
  drvStorePath(drv: Derivation): StorePath {
    return drvStorePath(drv);
  }
}
