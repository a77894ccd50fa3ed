/**
 * `npm run bench`'s harness (dist/bench/main.js) on stand-in modules: it runs every module (or
 * the filtered ones), prints ratios to the peer (flipped for higher-is-better units) and goals
 * met or missed, writes bench-results.json, and exits 1 when a module fails.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const harness = join(import.meta.dirname, '../../dist/bench/main.js');

function withModules(mods: Record<string, string>, args: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'lazystore-bench-'));
  try {
    for (const [name, body] of Object.entries(mods)) writeFileSync(join(dir, `${name}.js`), body);
    const r = spawnSync(process.execPath, [harness, ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, LAZYSTORE_BENCH_DIR: dir },
    });
    let json: { modules: { module: string; error?: string; results: { name: string; costRatio: number; goal?: { goal: number; met: boolean } }[] }[] } | undefined;
    try {
      json = JSON.parse(readFileSync(join(dir, 'bench-results.json'), 'utf8'));
    } catch {
      json = undefined;
    }
    return { ...r, json };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fast = `export async function run() { return [
  { name: 'fast build', ours: 2, peer: 8, peerName: 'nix', unit: 's', lowerIsBetter: true, notes: 'goal ≤ 0.5x' },
  { name: 'slow read', ours: 100, peer: 400, peerName: 'tmpfs', unit: 'MB/s', lowerIsBetter: false, notes: 'goal <= 1x' },
]; }`;
const broken = `export async function run() { throw new Error('no peer here\\nsecond line'); }`;

describe('bench harness', () => {
  it('prints ratios and goals, writes bench-results.json, fails when a module fails', () => {
    const r = withModules({ fast, broken, result: 'export {};', main: 'throw new Error("not a module");' }, []);
    expect(r.stdout).toMatch(/fast build\s+2\.00\s+8\.00\s+nix\s+s\s+0\.250x\s+met \(≤0\.5\)/);
    expect(r.stdout).toMatch(/slow read\s+100\s+400\s+tmpfs\s+MB\/s ↑\s+4\.00x\s+MISSED \(≤1\)/);
    expect(r.stdout).toMatch(/broken: FAILED.*no peer here/);
    expect(r.status).toBe(1);
    const mods = r.json!.modules.map((m) => m.module);
    expect(mods).toEqual(['broken', 'fast']); // main and result are not modules
    const results = r.json!.modules[1]!.results;
    expect(results.map((x) => [x.costRatio, x.goal?.met])).toEqual([
      [0.25, true],
      [4, false],
    ]);
  });

  it('runs only the modules whose name contains the filter', () => {
    const r = withModules({ fast, broken }, ['fa']);
    expect(r.status).toBe(0);
    expect(r.json!.modules.map((m) => m.module)).toEqual(['fast']);
    const none = withModules({ fast }, ['zzz']);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/no module matches zzz; have: fast/);
  });
});
