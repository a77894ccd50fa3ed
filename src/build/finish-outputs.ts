/**
 * After the builder exited 0: every output must exist; canonicalise each (modes, mtime 1),
 * hash + size + scan references in one pass (candidates: input closure ∪ own outputs, as Nix),
 * check fixed-output hashes, and only then register all outputs.
 */
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { LazyError, throwIfAborted } from '../errors.js';
import type { Derivation } from '../nix/derivation.js';
import { type Hash, type HashAlgo, StreamingHash, formatHash, hashEquals, isHashAlgo, parseHash } from '../nix/hash.js';
import type { StorePath } from '../nix/store-path.js';
import { canonicalisePath } from '../store/canonicalise.js';
import type { LocalStore } from '../store/local-store.js';
import { dumpPath } from '../store/nar-dump.js';
import type { PathInfo } from '../store/path-info.js';
import { scanPath } from '../store/scan-path.js';
import { finishSmallOutput } from './small-output.js';

export interface FinishOutputsOptions {
  drvPath: string;
  drv: Derivation;
  outputs: ReadonlyMap<string, StorePath>;
  /** Output name → where the builder left it on the host. */
  built: ReadonlyMap<string, string>;
  inputPaths: readonly StorePath[];
  logPath: string;
  /** Host uid the builder ran as: output files owned by anyone else (hard links to foreign files) are refused. */
  builderUid?: number;
  signal?: AbortSignal;
}

export interface FixedOutputSpec {
  method: 'flat' | 'recursive';
  hash: Hash;
}

/** The fixed-output spec of an ATerm output (`hashAlgo` `[r:]algo`, `hash` hex), or undefined. */
export function fixedOutputSpec(o: { hashAlgo: string; hash: string }): FixedOutputSpec | undefined {
  if (o.hash === '') return undefined;
  const recursive = o.hashAlgo.startsWith('r:');
  const algo = recursive ? o.hashAlgo.slice(2) : o.hashAlgo;
  if (!isHashAlgo(algo)) throw new LazyError('BUILD_BAD_DRV', `unknown hash algorithm '${o.hashAlgo}'`);
  return { method: recursive ? 'recursive' : 'flat', hash: parseHash(o.hash, algo) };
}

export async function finishOutputs(store: LocalStore, opts: FinishOutputsOptions): Promise<Map<string, PathInfo>> {
  const { drvPath, signal } = opts;
  const details = { drvPath, logPath: opts.logPath };
  for (const [name, p] of opts.outputs) {
    const fsPath = opts.built.get(name) ?? '';
    const st = await lstat(fsPath).catch(() => undefined);
    if (!st) {
      throw new LazyError('BUILD_NO_OUTPUT', `builder for '${drvPath}' failed to produce output path for output '${name}' at '${p}'`, { details });
    }
  }
  const candidates = [...opts.inputPaths, ...opts.outputs.values()];
  const infos = new Map<string, PathInfo>();
  for (const [name, p] of opts.outputs) {
    throwIfAborted(signal);
    const fsPath = opts.built.get(name) ?? '';
    let scan = await finishSmallOutput(fsPath, { refCandidates: candidates, builderUid: opts.builderUid });
    if (!scan) {
      await canonicalisePath(fsPath, { fromUid: opts.builderUid, signal });
      scan = await scanPath(fsPath, { refCandidates: candidates, signal });
    }
    const info: PathInfo = {
      path: p,
      narHash: scan.narHash,
      narSize: scan.narSize,
      references: [...scan.references].sort(),
      deriver: drvPath as StorePath,
      sigs: [],
    };
    const out = opts.drv.outputs.get(name);
    const fixed = out ? fixedOutputSpec(out) : undefined;
    if (fixed) {
      const got = await fixedOutputHash(fsPath, fixed, scan.narHash, signal);
      if (!hashEquals(got, fixed.hash)) {
        throw new LazyError(
          'BUILD_HASH_MISMATCH',
          `hash mismatch in fixed-output derivation '${drvPath}':\n  specified: ${formatHash(fixed.hash, 'sri')}\n     got:    ${formatHash(got, 'sri')}`,
          { details: { ...details, specified: formatHash(fixed.hash, 'sri'), got: formatHash(got, 'sri') } },
        );
      }
      const refs = info.references.filter((r) => r !== p);
      if (refs.length > 0) {
        throw new LazyError(
          'BUILD_FOD_REFERENCES',
          `fixed-output derivations must not reference store paths: '${drvPath}' references ${refs.length} distinct paths, e.g. '${refs[0] ?? ''}'`,
          { details },
        );
      }
      info.ca = `fixed:${fixed.method === 'recursive' ? 'r:' : ''}${formatHash(got, 'nix32')}`;
    }
    infos.set(name, info);
  }
  for (const [name, info] of infos) {
    throwIfAborted(signal);
    await store.register(opts.built.get(name) ?? '', info, { signal });
  }
  return infos;
}

async function fixedOutputHash(fsPath: string, spec: FixedOutputSpec, narHash: Hash, signal?: AbortSignal): Promise<Hash> {
  const algo: HashAlgo = spec.hash.algo;
  if (spec.method === 'recursive') {
    if (algo === narHash.algo) return narHash;
    const h = new StreamingHash(algo);
    for await (const chunk of dumpPath(fsPath, { signal })) h.update(chunk);
    return h.digest();
  }
  const st = await lstat(fsPath);
  if (!st.isFile() || (st.mode & 0o100) !== 0) {
    throw new LazyError('BUILD_FOD_NOT_FILE', `output path '${fsPath}' should be a non-executable regular file since recursive hashing is not enabled (outputHashMode=flat)`);
  }
  const h = new StreamingHash(algo);
  for await (const chunk of createReadStream(fsPath, { signal })) h.update(chunk as Buffer);
  return h.digest();
}
