/**
 * A DrvLoader over directories of `.drv` files (a host `/nix/store`, a fixtures folder, the
 * state's `drv/`): `/nix/store/<base>.drv` is looked up as `<dir>/<base>.drv` in each directory
 * in turn. Each derivation is read and parsed once; the file must hash to the path it is
 * asked for, so a stale or edited copy cannot pose as another derivation.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LazyError, throwIfAborted } from '../errors.js';
import { parseDerivation, type Derivation } from '../nix/derivation.js';
import { drvStorePath, type DrvLoader } from '../nix/derivation-hash.js';
import { baseName, parseStorePath } from '../nix/store-path.js';

export interface DrvDirectoryLoader extends DrvLoader {
  /** The file a drv path was read from (after a successful load). */
  fileOf(drvPath: string): string | undefined;
}

export function makeDrvLoader(dirs: readonly string[], options: { verify?: boolean } = {}): DrvDirectoryLoader {
  const verify = options.verify ?? true;
  const memo = new Map<string, Promise<Derivation>>();
  const files = new Map<string, string>();

  async function load(drvPath: string, signal: AbortSignal | undefined): Promise<Derivation> {
    throwIfAborted(signal);
    const base = baseName(parseStorePath(drvPath));
    if (!base.endsWith('.drv')) throw new LazyError('STORE_NOT_A_DRV', `'${drvPath}' is not a derivation path`);
    for (const dir of dirs) {
      const file = join(dir, base);
      let bytes: Buffer;
      try {
        bytes = await readFile(file, { signal });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        if ((e as Error).name === 'AbortError') throwIfAborted(signal);
        throw new LazyError('STORE_IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
      }
      const drv = parseDerivation(bytes, file);
      if (verify) {
        const actual = drvStorePath(drv, bytes);
        if (actual !== drvPath) {
          throw new LazyError('STORE_DRV_MISMATCH', `${file} hashes to ${actual}, not ${drvPath}`, {
            details: { file, expected: drvPath, actual },
          });
        }
      }
      files.set(drvPath, file);
      return drv;
    }
    throw new LazyError('STORE_DRV_NOT_FOUND', `derivation ${drvPath} not found in ${dirs.join(', ') || '(no directories)'}`, {
      details: { drvPath, dirs },
    });
  }

  const loader = ((drvPath: string, opts: { signal?: AbortSignal } = {}) => {
    let p = memo.get(drvPath);
    if (!p) {
      p = load(drvPath, opts.signal);
      memo.set(drvPath, p);
      p.catch(() => memo.delete(drvPath));
    }
    return p;
  }) as DrvDirectoryLoader;
  loader.fileOf = (drvPath) => files.get(drvPath);
  return loader;
}
