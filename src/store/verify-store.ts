/**
 * `nix-store --verify` for the embedded store: every valid path must have its contents, its
 * references must be valid, and with `checkContents` its NAR must still hash to its NarHash.
 * Read-only: it reports, it does not repair.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../errors.js';
import { formatHash, hashEquals } from '../nix/hash.js';
import { parseNarInfo } from '../nix/narinfo.js';
import type { LocalStore } from './local-store.js';
import { pathInfoFromNarInfo } from './path-info.js';
import { scanPath } from './scan-path.js';

export interface VerifyProblem {
  /** The store path, or the narinfo file when it could not be read. */
  path: string;
  kind: 'bad-info' | 'missing' | 'modified' | 'not-canonical' | 'invalid-reference';
  message: string;
}

export interface VerifyResult {
  checked: number;
  problems: VerifyProblem[];
}

export async function verifyStore(
  store: LocalStore,
  opts: { checkContents?: boolean; signal?: AbortSignal; onProblem?: (p: VerifyProblem) => void } = {},
): Promise<VerifyResult> {
  const { signal } = opts;
  const problems: VerifyProblem[] = [];
  const report = (p: VerifyProblem): void => {
    problems.push(p);
    opts.onProblem?.(p);
  };
  const names = (await readdir(store.layout.infoDir)).filter((n) => n.endsWith('.narinfo')).sort();
  let checked = 0;
  for (const name of names) {
    throwIfAborted(signal);
    const file = join(store.layout.infoDir, name);
    let info;
    try {
      info = pathInfoFromNarInfo(parseNarInfo(await readFile(file, 'utf8'), file), file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted meanwhile
      report({ path: file, kind: 'bad-info', message: `cannot read '${file}': ${(e as Error).message}` });
      continue;
    }
    checked++;
    const p = info.path;
    const real = store.realPath(p);
    if ((await lstat(real).catch(() => undefined)) === undefined) {
      report({ path: p, kind: 'missing', message: `path '${p}' disappeared (no ${real})` });
      continue;
    }
    for (const ref of info.references) {
      if (ref !== p && !(await store.isValid(ref, { signal }))) {
        report({ path: p, kind: 'invalid-reference', message: `path '${p}' refers to invalid path '${ref}'` });
      }
    }
    if (opts.checkContents) {
      const odd = await firstNonCanonical(real, '');
      if (odd !== undefined) {
        report({ path: p, kind: 'not-canonical', message: `path '${p}' has non-canonical metadata at '${odd.at || '.'}': ${odd.why}` });
      }
      const actual = await scanPath(real, { signal });
      if (!hashEquals(actual.narHash, info.narHash) || actual.narSize !== info.narSize) {
        report({
          path: p,
          kind: 'modified',
          message: `path '${p}' was modified! expected hash '${formatHash(info.narHash)}', got '${formatHash(actual.narHash)}'`,
        });
      }
    }
  }
  return { checked, problems };
}

/**
 * The first entry that is not as canonicalisation left it (mtime 1 s; files 0444/0555;
 * directories 0555): the unpacked tree is what builders and the mount serve, so a stray chmod
 * or touch would show even where the NAR hash (which records only the executable bit) cannot.
 */
async function firstNonCanonical(fsPath: string, at: string): Promise<{ at: string; why: string } | undefined> {
  const st = await lstat(fsPath);
  if (st.isSymbolicLink()) return undefined;
  const mode = st.mode & 0o7777;
  if (st.mtimeMs !== 1000) return { at, why: `mtime ${st.mtimeMs / 1000}, not 1` };
  if (st.isDirectory() ? mode !== 0o555 : mode !== 0o444 && mode !== 0o555) return { at, why: `mode ${mode.toString(8).padStart(4, '0')}` };
  if (!st.isDirectory()) return undefined;
  for (const name of (await readdir(fsPath)).sort()) {
    const odd = await firstNonCanonical(join(fsPath, name), at === '' ? name : `${at}/${name}`);
    if (odd) return odd;
  }
  return undefined;
}
