/** Registering a batch (the outputs of one build, which may reference each other). */
import { LazyError } from '../errors.js';
import type { StorePath } from '../nix/store-path.js';
import { closureOf } from './closure.js';
import type { LocalStore } from './local-store.js';
import type { PathInfo } from './path-info.js';

/**
 * Registers every entry, references first; each reference must be valid already or be in the
 * batch (STORE_REFERENCE_INVALID otherwise, before anything is registered). Returns the infos
 * in the order of `entries`.
 */
export async function registerAll(
  store: LocalStore,
  entries: readonly { tmpPath: string; info: PathInfo }[],
  opts: { signal?: AbortSignal } = {},
): Promise<PathInfo[]> {
  const batch = new Map(entries.map((e) => [e.info.path, e]));
  for (const { info } of entries) {
    for (const ref of info.references) {
      if (ref !== info.path && !batch.has(ref) && !(await store.isValid(ref, opts))) {
        throw new LazyError('STORE_REFERENCE_INVALID', `cannot register '${info.path}': its reference '${ref}' is not valid`, {
          details: { path: info.path, reference: ref },
        });
      }
    }
  }
  const order = await closureOf(batch.keys(), async (p) => batch.get(p)?.info.references.filter((r) => batch.has(r)) ?? [], opts);
  const out = new Map<StorePath, PathInfo>();
  for (const p of order) out.set(p, await store.register(batch.get(p)!.tmpPath, batch.get(p)!.info, opts));
  return entries.map((e) => out.get(e.info.path)!);
}
