/**
 * `npm run demo` is the README's first command: it must pass on a machine set up by
 * scripts/setup.sh. Runs the compiled demo (npm test's pretest builds dist/) with its own
 * mountpoint, so it cannot collide with a developer's mountpoints/store.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = join(import.meta.dirname, '../..');
const demo = join(root, 'dist/scripts/demo.js');

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

describe('npm run demo', () => {
  it('runs every stage whose commands exist and exits 0', () => {
    expect(existsSync(demo), `${demo} missing: run 'npm run build' (npm test does)`).toBe(true);
    const mp = mkdtempSync(join(tmpdir(), 'lazystore-demo-test-'));
    try {
      const r = spawnSync(process.execPath, [demo], {
        cwd: root,
        encoding: 'utf8',
        timeout: 90_000,
        env: { ...process.env, LAZYSTORE_DEMO_MOUNTPOINT: mp, NO_COLOR: '1' },
      });
      expect(r.stdout + r.stderr).toMatch(/== Done\n.* stages ran, all passed/);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      expect(isMounted(mp), `demo left ${mp} mounted`).toBe(false);
    } finally {
      if (isMounted(mp)) spawnSync('fusermount', ['-u', '-z', mp]);
      rmdirSync(mp); // not recursive: never delete through a mount
    }
  }, 120_000);
});
