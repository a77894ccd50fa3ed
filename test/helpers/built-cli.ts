import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');

/**
 * Makes sure dist/ holds `built` (a path relative to the repo) compiled from `sources`, so a CLI
 * test also works run alone (npm test builds first): recompiles when it is missing or older.
 */
export function ensureBuiltCli(built: string, sources: string[]): boolean {
  const out = join(ROOT, built);
  const stale = !existsSync(out) || sources.some((s) => statSync(join(ROOT, s)).mtimeMs > statSync(out).mtimeMs);
  if (stale) spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
  return existsSync(out);
}
