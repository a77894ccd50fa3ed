/**
 * The README and docs/USAGE.md document exactly the commands that exist: every command in
 * `lazystore --help` has a row in the README's table and a section in USAGE.md, and neither
 * names a command the CLI does not have; CONFIGURATION.md names every option. Runs the compiled CLI (npm test builds it first).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');
const cli = join(root, 'dist/src/cli/main.js');

function commands(): string[] {
  const help = execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  return [...help.matchAll(/^ {2}([a-z][a-z-]*)\s/gm)].map((m) => m[1]!);
}

describe('documentation matches the CLI', () => {
  it('README and USAGE.md cover every command, and only those', () => {
    expect(existsSync(cli), `${cli} missing: run 'npm run build'`).toBe(true);
    const cmds = commands();
    expect(cmds.length).toBeGreaterThan(0);
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const usage = readFileSync(join(root, 'docs/USAGE.md'), 'utf8');
    const readmeRows = [...readme.matchAll(/^\| `lazystore ([a-z][a-z-]*)/gm)].map((m) => m[1]!);
    const usageSections = [...usage.matchAll(/^### `lazystore ([a-z][a-z-]*)/gm)].map((m) => m[1]!);
    expect([...new Set(readmeRows)].sort()).toEqual([...cmds].sort());
    expect([...new Set(usageSections)].sort()).toEqual([...cmds].sort());
  });

  it('CONFIGURATION.md names every option each command lists in its --help', () => {
    const config = readFileSync(join(root, 'docs/CONFIGURATION.md'), 'utf8');
    const missing: string[] = [];
    for (const cmd of commands()) {
      const help = execFileSync(process.execPath, [cli, cmd, '--help'], { encoding: 'utf8' });
      // option lines: "  --flag …" or "  -x, --flag …"
      for (const m of help.matchAll(/^\s+(?:-[a-zA-Z], )?--([a-z][a-z-]*)/gm)) {
        if (!config.includes(`--${m[1]}`)) missing.push(`${cmd} --${m[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every docs/*.md link in the README points at a file', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\((docs\/[^)#]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(0);
    for (const l of links) expect(existsSync(join(root, l)), l).toBe(true);
  });
});
