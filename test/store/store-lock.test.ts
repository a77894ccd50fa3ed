/**
 * The two ways of taking a store lock — the store_lock addon and net.Server — bind the same
 * abstract names, so processes with and without the addon exclude each other; a waiter wakes
 * when either kind of holder lets go, or dies.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { loadAddon } from '../../src/native/addons.js';
import { StoreLocks } from '../../src/store/store-lock.js';

const built = loadAddon('store_lock') !== null;

function stateDir(): string {
  return mkdtempSync(join(tmpdir(), 'lazystore-lock-'));
}

describe.skipIf(!built)('store locks, with and without the addon', () => {
  it('the addon is built here (scripts/setup.sh builds it; without a compiler this suite is skipped)', () => {
    expect(built).toBe(true);
  });

  for (const [first, second] of [
    [true, false],
    [false, true],
  ] as const) {
    it(`a ${first ? 'native' : 'net.Server'} holder excludes a ${second ? 'native' : 'net.Server'} taker until it lets go`, async () => {
      const dir = stateDir();
      try {
        const a = new StoreLocks(dir, { native: first });
        const b = new StoreLocks(dir, { native: second });
        const release = await a.acquire('k');
        expect(await b.tryAcquire('k')).toBeUndefined();
        let woke = false;
        const waiting = b.acquire('k').then((r) => {
          woke = true;
          return r;
        });
        await new Promise((r) => setTimeout(r, 50));
        expect(woke).toBe(false);
        await release();
        const releaseB = await waiting;
        expect(await a.tryAcquire('k')).toBeUndefined();
        await releaseB();
        const again = await a.tryAcquire('k');
        expect(again).toBeDefined();
        await again!();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('a native holder that is killed lets its waiter in', async () => {
    const dir = stateDir();
    try {
      const src = join(import.meta.dirname, '../../dist/src/store/store-lock.js');
      const child = execa('node', [
        '--input-type=module',
        '-e',
        `const { StoreLocks } = await import(${JSON.stringify(src)}); await new StoreLocks(process.argv[1]).acquire('k'); console.log('held'); setInterval(() => {}, 1000);`,
        dir,
      ]);
      await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
      const b = new StoreLocks(dir, { native: true });
      expect(await b.tryAcquire('k')).toBeUndefined();
      const waiting = b.acquire('k');
      child.kill('SIGKILL');
      await child.catch(() => undefined);
      const release = await waiting;
      await release();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
