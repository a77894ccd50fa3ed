/**
 * Store + known derivations + substituters + Realiser from the shared REALISE_OPTIONS, for the
 * commands that realise paths (mount, shell). Numbers are validated here, once.
 */
import { availableParallelism } from 'node:os';
import { LazyError } from '../errors.js';
import { parsePublicKey } from '../nix/signing.js';
import { KnownDerivations } from '../realise/known-derivations.js';
import { Realiser } from '../realise/realiser.js';
import { LocalStore } from '../store/local-store.js';
import { defaultStateDir } from '../store/state-dir.js';
import { openBinaryCache } from '../substitute/binary-cache.js';
import { Substituters } from '../substitute/substituters.js';

export interface RealiseArgs {
  state?: string;
  substituter?: string[];
  'trusted-key'?: string[];
  'no-check-sigs'?: boolean;
  drvs?: string[];
  'max-jobs'?: string;
  'max-substitutions'?: string;
  timeout?: string;
  'max-silent-time'?: string;
  'max-log-size'?: string;
  'max-build-size'?: string;
}

export interface OpenedRealiser {
  stateDir: string;
  store: LocalStore;
  realiser: Realiser;
  timeoutMs: number | undefined;
}

function positive(name: string, v: string | undefined, float = false): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (!float && !Number.isInteger(n))) {
    throw new LazyError('CLI_BAD_OPTION', `--${name} must be a positive ${float ? 'number' : 'integer'}, not '${v}'`);
  }
  return n;
}

/** A byte count: an integer, optionally with a K/M/G suffix (powers of 1024); `zero` allows 0. */
export function byteCount(name: string, v: string | undefined, zero: boolean): number | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+)([KMG]?)$/i.exec(v.trim());
  const n = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
  if (!Number.isSafeInteger(n) || (!zero && n === 0)) {
    throw new LazyError('CLI_BAD_OPTION', `--${name} must be a ${zero ? 'non-negative' : 'positive'} number of bytes (K, M, G suffixes allowed), not '${v}'`);
  }
  return n;
}

export async function openRealiserFromArgs(values: RealiseArgs, opts: { signal?: AbortSignal } = {}): Promise<OpenedRealiser> {
  const maxJobs = positive('max-jobs', values['max-jobs']) ?? availableParallelism();
  const maxSubstitutions = positive('max-substitutions', values['max-substitutions']);
  const timeoutS = positive('timeout', values.timeout, true);
  const silentS = positive('max-silent-time', values['max-silent-time'], true);
  const maxLogSize = byteCount('max-log-size', values['max-log-size'], true);
  const maxBuildSize = byteCount('max-build-size', values['max-build-size'], false);
  const stateDir = values.state ?? defaultStateDir();
  const store = await LocalStore.open(stateDir, { signal: opts.signal });
  const known = await KnownDerivations.open(stateDir, store);
  for (const d of values.drvs ?? []) await known.add(d, { signal: opts.signal });
  await known.refresh({ signal: opts.signal });
  const caches = await Promise.all((values.substituter ?? []).map((u) => openBinaryCache(u, { signal: opts.signal })));
  const substituters = caches.length
    ? new Substituters(caches, { trustedKeys: (values['trusted-key'] ?? []).map(parsePublicKey), requireSigs: !values['no-check-sigs'] })
    : undefined;
  const timeoutMs = timeoutS === undefined ? undefined : timeoutS * 1000;
  const realiser = new Realiser(store, {
    known,
    substituters,
    maxJobs,
    maxSubstitutions,
    timeoutMs,
    maxSilentMs: silentS === undefined ? undefined : silentS * 1000,
    maxLogSize,
    maxBuildSize,
  });
  return { stateDir, store, realiser, timeoutMs };
}
