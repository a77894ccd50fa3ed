/**
 * `npm run bench [-- filter…]`: runs every benchmark module in bench/ (each exports
 * `run(): Promise<BenchResult[]>`), one after another so they do not compete for the 2 cores,
 * prints one table row per figure with the ratio to its peer, and writes bench-results.json.
 *
 * A filter keeps the modules whose file name contains it (`npm run bench -- nar`). A module that
 * throws is reported as failed and the others still run; the exit code is then 1.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cpus } from 'node:os';
import type { BenchResult } from './result.js';

const NOT_MODULES = new Set(['main', 'result']);
/** Where the modules are: beside this file, or $LAZYSTORE_BENCH_DIR (the harness's own test). */
const here = process.env.LAZYSTORE_BENCH_DIR ?? dirname(fileURLToPath(import.meta.url));

/** Module names (file stems) found beside this file, compiled (.js) or not (.ts under tsx). */
async function discover(dir: string): Promise<string[]> {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  const names = (await readdir(dir))
    .filter((f) => f.endsWith(ext) && !f.endsWith('.d.ts') && !f.endsWith('.test' + ext))
    .map((f) => basename(f, ext))
    .filter((n) => !NOT_MODULES.has(n));
  return names.sort().map((n) => join(dir, n + ext));
}

interface ModuleOutcome {
  module: string;
  seconds: number;
  results: BenchResult[];
  error?: string;
}

/** ours/peer, flipped for higher-is-better so that below 1 always means "we are faster". */
export function costRatio(r: BenchResult): number {
  if (r.peer === r.ours) return 1; // also 0 vs 0
  return r.lowerIsBetter ? r.ours / r.peer : r.peer / r.ours;
}

/**
 * The goal, when a module states one in its notes as a cost ratio — `goal ≤ 0.5x`,
 * `goal: <= 1` — and whether this run met it.
 */
export function goalOf(r: BenchResult): { goal: number; met: boolean } | undefined {
  const m = /goal\s*:?\s*(?:<=|≤|<)?\s*([0-9]*\.?[0-9]+)\s*x?/i.exec(r.notes ?? '');
  if (!m?.[1]) return undefined;
  const goal = Number(m[1]);
  return Number.isFinite(goal) ? { goal, met: costRatio(r) <= goal } : undefined;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return n.toExponential(2);
  return a >= 100 ? n.toFixed(0) : a >= 10 ? n.toFixed(1) : n.toFixed(a >= 1 ? 2 : 3);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 || i === r.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function render(outcomes: ModuleOutcome[]): string {
  const rows: string[][] = [['benchmark', 'ours', 'peer', 'peer is', 'unit', 'cost ratio', 'goal', 'notes']];
  for (const o of outcomes) {
    if (o.error !== undefined) rows.push([`${o.module}: FAILED`, '', '', '', '', '', '', o.error]);
    for (const r of o.results) {
      const g = goalOf(r);
      rows.push([
        r.name,
        fmt(r.ours),
        fmt(r.peer),
        r.peerName,
        r.unit + (r.lowerIsBetter ? '' : ' ↑'),
        fmt(costRatio(r)) + 'x',
        g ? `${g.met ? 'met' : 'MISSED'} (≤${g.goal})` : '',
        (r.notes ?? '').replace(/\s+/g, ' '),
      ]);
    }
  }
  return table(rows);
}

async function main(argv: string[]): Promise<number> {
  const filters = argv.filter((a) => !a.startsWith('-'));
  const all = await discover(here);
  const chosen = all.filter((f) => filters.length === 0 || filters.some((p) => basename(f).includes(p)));
  if (chosen.length === 0) {
    process.stderr.write(`bench: no module matches ${filters.join(' ') || '(none found)'}; have: ${all.map((f) => basename(f).replace(/\.[jt]s$/, '')).join(', ') || 'none'}\n`);
    return all.length === 0 ? 0 : 1;
  }
  process.stdout.write(`bench: ${chosen.length} module(s) on ${cpus().length} core(s), node ${process.version}; numbers are noisy on a shared machine\n`);
  const outcomes: ModuleOutcome[] = [];
  for (const file of chosen) {
    const module = basename(file).replace(/\.[jt]s$/, '');
    const t0 = performance.now();
    process.stdout.write(`\n== ${module}\n`);
    try {
      const mod = (await import(pathToFileURL(file).href)) as { run?: () => Promise<BenchResult[]> };
      if (typeof mod.run !== 'function') throw new Error('exports no run()');
      const results = await mod.run();
      outcomes.push({ module, seconds: (performance.now() - t0) / 1000, results });
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      process.stdout.write(`   failed: ${msg.split('\n')[0]}\n`);
      outcomes.push({ module, seconds: (performance.now() - t0) / 1000, results: [], error: msg.split('\n')[0] });
    }
    const last = outcomes[outcomes.length - 1]!;
    process.stdout.write(`   ${last.results.length} figure(s) in ${last.seconds.toFixed(1)} s\n`);
    (globalThis as { gc?: () => void }).gc?.();
  }
  process.stdout.write('\n' + render(outcomes) + '\n\n');
  process.stdout.write('cost ratio: ours/peer for lower-is-better units, peer/ours for ↑ units; below 1x = we beat the peer.\n');
  const out = join(process.cwd(), 'bench-results.json');
  const json = {
    date: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    modules: outcomes.map((o) => ({
      ...o,
      results: o.results.map((r) => ({ ...r, costRatio: costRatio(r), goal: goalOf(r) })),
    })),
  };
  await writeFile(out, JSON.stringify(json, null, 2) + '\n');
  process.stdout.write(`wrote ${out}\n`);
  return outcomes.some((o) => o.error !== undefined) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // Exit explicitly: a module that leaves a server or timer behind must not hang the run
  // (stdout/stderr to files and pipes are synchronous on Linux, so nothing is lost).
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
