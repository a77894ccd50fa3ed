/**
 * The store's write path against real Nix's, same run, same inputs: every fixture output plus
 * busybox (~560 small paths) copied from the host /nix/store into an empty store.
 *  - ours: a node process opening a fresh state directory and calling
 *    `LocalStore.addFromDirectory` for each path, references first (dump → restore into tmp/,
 *    reference scan against all ~560 candidates, lock, rename, narinfo);
 *  - peer: `nix copy --to <fresh chroot store>` of the same paths (Nix 2.8: NAR from the host
 *    store, restore, SQLite registration).
 * Both end to end, process start included, one after the other.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import type { BenchResult } from './result.js';

const FIXTURES = process.env.LAZYSTORE_FIXTURES ?? '/tmp/nix-reference';
const DIST = join(dirname(fileURLToPath(import.meta.url)), '..');
const NIX_ENV = { NIX_REMOTE: '', NIX_CONFIG: '' };

interface Manifest {
  busybox: { storePath: string };
  derivations: { outputs: Record<string, { path: string; references: string[] }> }[];
}

/** Paths in reference order (a DFS post-order over the manifest's references). */
function referenceOrder(m: Manifest): string[] {
  const refs = new Map<string, string[]>([[m.busybox.storePath, []]]);
  for (const d of m.derivations) for (const o of Object.values(d.outputs)) refs.set(o.path, o.references);
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (p: string): void => {
    if (seen.has(p)) return;
    seen.add(p);
    for (const r of refs.get(p) ?? []) if (r !== p) visit(r);
    order.push(p);
  };
  for (const p of [...refs.keys()].sort()) visit(p);
  return order;
}

const CHILD = `
const [dist, state, listFile] = process.argv.slice(2);
const { LocalStore } = await import(dist + '/src/store/local-store.js');
const { parseStorePath } = await import(dist + '/src/nix/store-path.js');
const fs = await import('node:fs');
const paths = JSON.parse(fs.readFileSync(listFile, 'utf8')).map(parseStorePath);
const store = await LocalStore.open(state);
for (const p of paths) await store.addFromDirectory(p, { path: p, refCandidates: paths });
`;

async function seconds(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function run(): Promise<BenchResult[]> {
  const tmp = await mkdtemp(join(tmpdir(), 'lazystore-bench-store-'));
  try {
    const paths = referenceOrder(JSON.parse(await readFile(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest);
    const listFile = join(tmp, 'paths.json');
    await writeFile(listFile, JSON.stringify(paths));
    const script = join(tmp, 'import.mjs');
    await writeFile(script, CHILD);
    const distUrl = pathToFileURL(DIST).href;
    const oursRuns: number[] = [];
    const peerRuns: number[] = [];
    for (let i = 0; i < 3; i++) {
      const state = join(tmp, `state-${i}`);
      oursRuns.push(await seconds(() => execa('node', [script, distUrl, state, listFile])));
      const store = join(tmp, `nix-${i}`);
      peerRuns.push(
        await seconds(() =>
          execa('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--no-check-sigs', '--to', store, ...paths], { env: NIX_ENV }),
        ),
      );
    }
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    return [
      {
        name: `import ${paths.length} host store paths into an empty store`,
        ours: median(oursRuns),
        peer: median(peerRuns),
        peerName: 'nix copy --to <chroot store> (Nix 2.8)',
        unit: 's',
        lowerIsBetter: true,
        notes: `median of 3, process start included (ours ${oursRuns.map((x) => x.toFixed(2)).join('/')}, nix ${peerRuns.map((x) => x.toFixed(2)).join('/')}); 2 shared cores, noisy`,
      },
    ];
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
