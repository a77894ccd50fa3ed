/**
 * The small N-API addons in native/ (built into build/Release by node-gyp: `npm install`,
 * scripts/setup.sh), for the few system calls Node cannot make. Each is optional: without a C
 * compiler nothing is built, and every user of an addon has a plain-Node way that works.
 */
import { createRequire } from 'node:module';

/** build/Release seen from this module in src/native (vitest), dist/src/native (tsc) and dist/bundle. */
const DIRS = ['../../build/Release/', '../../../build/Release/'];

const loaded = new Map<string, unknown>();

/** The addon `name` (build/Release/<name>.node), or null when it was not built. */
export function loadAddon<T>(name: string): T | null {
  if (loaded.has(name)) return loaded.get(name) as T | null;
  const require = createRequire(import.meta.url);
  let addon: T | null = null;
  for (const dir of DIRS) {
    try {
      addon = require(`${dir}${name}.node`) as T;
      break;
    } catch {
      // not in this layout
    }
  }
  loaded.set(name, addon);
  return addon;
}
