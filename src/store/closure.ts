/** Closures: every path reachable through references, each after everything it references. */
import { LazyError, throwIfAborted } from '../errors.js';
import type { StorePath } from '../nix/store-path.js';

/**
 * Depth-first post-order over the reference graph from `roots` (iterative, so a chain of any
 * length fits the stack). Self-references are ignored; a cycle between distinct paths (which
 * Nix never registers) is an error. `referencesOf` returns undefined for an invalid path.
 */
export async function closureOf(
  roots: Iterable<StorePath>,
  referencesOf: (p: StorePath) => Promise<readonly StorePath[] | undefined>,
  opts: { signal?: AbortSignal } = {},
): Promise<StorePath[]> {
  const order: StorePath[] = [];
  const done = new Set<StorePath>();
  const onStack = new Set<StorePath>();
  for (const root of roots) {
    if (done.has(root)) continue;
    const stack: { path: StorePath; refs: StorePath[]; next: number }[] = [];
    const enter = async (p: StorePath, from?: StorePath): Promise<void> => {
      throwIfAborted(opts.signal);
      const refs = await referencesOf(p);
      if (refs === undefined) {
        throw new LazyError('STORE_PATH_INVALID', `path '${p}' is not valid${from ? ` (referenced by '${from}')` : ''}`, {
          details: { path: p, referrer: from },
        });
      }
      onStack.add(p);
      stack.push({ path: p, refs: [...refs].filter((r) => r !== p).sort(), next: 0 });
    };
    await enter(root);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.next < top.refs.length) {
        const ref = top.refs[top.next++]!;
        if (done.has(ref)) continue;
        if (onStack.has(ref)) {
          throw new LazyError('STORE_CYCLE', `reference cycle through '${ref}' and '${top.path}'`, { details: { path: ref } });
        }
        await enter(ref, top.path);
      } else {
        stack.pop();
        onStack.delete(top.path);
        done.add(top.path);
        order.push(top.path);
      }
    }
  }
  return order;
}
