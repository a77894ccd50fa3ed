/**
 * The --max-build-size check on outputs: the apparent size of what the builder left, summed
 * over lstat()s (regular files' lengths, symlink targets' lengths; directories count 0), which
 * is what the output's NAR will hold give or take its framing. Costs one lstat per entry,
 * no reads. Stops walking as soon as the limit is passed.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { throwIfAborted } from '../errors.js';

/** Bytes under `paths` (trees walked, hard links counted each time), or more than `limit` once passed. */
export async function outputSize(paths: Iterable<string>, opts: { limit?: number; signal?: AbortSignal } = {}): Promise<number> {
  const limit = opts.limit ?? Infinity;
  let total = 0;
  const stack = [...paths];
  while (stack.length > 0 && total <= limit) {
    throwIfAborted(opts.signal);
    const p = stack.pop() as string;
    const st = await lstat(p).catch(() => undefined);
    if (!st) continue;
    if (st.isDirectory()) {
      for (const name of await readdir(p)) stack.push(join(p, name));
    } else {
      total += st.size;
    }
  }
  return total;
}
