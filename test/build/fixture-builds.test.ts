/**
 * Every deterministic fixture derivation, built by lazystore in a fresh state dir (busybox
 * imported from the host /nix/store), gives exactly real Nix's output paths, NAR hashes,
 * sizes and references (manifest.json).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath } from '../../src/nix/store-path.js';
import { manifest, type ManifestDrv } from '../helpers/fixtures.js';
import { freshEnv, type Env } from '../realise/helpers.js';

const LABELS = ['single', 'multi', 'chain.A', 'chain.B', 'chain.C', 'fod.flat', 'fod.recursive'];

describe('fixture derivations built by lazystore match real Nix', () => {
  let env: Env;
  beforeAll(async () => {
    env = await freshEnv({ maxJobs: 2 });
  });
  afterAll(async () => {
    await env.cleanup();
  });

  const drvs = (): ManifestDrv[] => manifest().derivations.filter((d) => LABELS.includes(d.label));

  it.each(LABELS)('%s', async (label) => {
    const d = drvs().find((x) => x.label === label);
    if (!d) throw new Error(`no fixture ${label}`);
    await env.known.add(d.drvPath);
    const built = await env.realiser.realiseDrv(parseStorePath(d.drvPath));
    expect([...built.keys()].sort()).toEqual(Object.keys(d.outputs).sort());
    for (const [name, want] of Object.entries(d.outputs)) {
      const info = built.get(name)!;
      expect(info.path).toBe(want.path);
      expect(formatHash(info.narHash, 'nix32')).toBe(want.narHash);
      expect(info.narSize).toBe(want.narSize);
      expect([...info.references].sort()).toEqual([...want.references].sort());
      expect(info.ca ?? null).toBe(want.ca);
      expect(await env.store.isValid(info.path)).toBe(true);
    }
  });

  it('dag50: every node and the root', async () => {
    const dag = manifest().derivations.filter((d) => d.label.startsWith('dag50.'));
    const root = dag.find((d) => d.label === 'dag50.root')!;
    await env.known.add(root.drvPath);
    await env.realiser.realiseDrv(parseStorePath(root.drvPath));
    for (const d of dag) {
      for (const want of Object.values(d.outputs)) {
        const info = await env.store.queryPathInfo(parseStorePath(want.path));
        expect(info, want.path).toBeDefined();
        expect(formatHash(info!.narHash, 'nix32')).toBe(want.narHash);
        expect([...info!.references].sort()).toEqual([...want.references].sort());
      }
    }
    expect(env.realiser.counts.done).toBeGreaterThanOrEqual(51);
  });

  it('dag500: all 501 derivations, each output exactly as real Nix made it', async () => {
    const dag = manifest().derivations.filter((d) => d.label.startsWith('dag500.'));
    expect(dag).toHaveLength(501);
    const root = dag.find((d) => d.label === 'dag500.root')!;
    await env.known.add(root.drvPath);
    await env.realiser.realiseDrv(parseStorePath(root.drvPath));
    for (const d of dag) {
      for (const want of Object.values(d.outputs)) {
        const info = await env.store.queryPathInfo(parseStorePath(want.path));
        expect(info, want.path).toBeDefined();
        expect(formatHash(info!.narHash, 'nix32'), want.path).toBe(want.narHash);
        expect(info!.narSize).toBe(want.narSize);
        expect([...info!.references].sort()).toEqual([...want.references].sort());
      }
    }
  }, 600_000);
});
