/**
 * Access to the reference fixtures written by ../shared/nix-reference/make-fixtures.sh
 * (real Nix 2.8 is the oracle). `scripts/setup.sh` creates them before the tests run.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = process.env.LAZYSTORE_FIXTURES ?? '/tmp/nix-reference';

export interface ManifestOutput {
  path: string;
  narHash: string; // sha256:<nix32>
  narSize: number;
  references: string[];
  ca: string | null;
}
export interface ManifestDrv {
  label: string;
  name: string;
  drvPath: string;
  drvFile: string; // relative to FIXTURES
  deterministic: boolean;
  fixedOutput: boolean;
  inputDrvs: string[];
  inputSrcs: string[];
  outputs: Record<string, ManifestOutput>;
}
export interface Manifest {
  nixVersion: string;
  storeDir: string;
  busybox: { storePath: string; narHash: string };
  derivations: ManifestDrv[];
}

let cached: Manifest | undefined;
export function manifest(): Manifest {
  if (!existsSync(join(FIXTURES, 'manifest.json'))) {
    throw new Error(`fixtures missing at ${FIXTURES}: run 'bash scripts/setup.sh' (npm test does)`);
  }
  cached ??= JSON.parse(readFileSync(join(FIXTURES, 'manifest.json'), 'utf8')) as Manifest;
  return cached;
}

export function fixtureDrv(label: string): ManifestDrv {
  const d = manifest().derivations.find((x) => x.label === label);
  if (!d) throw new Error(`no fixture derivation labelled ${label}`);
  return d;
}

/** Absolute path of a fixture .drv file copied out of the real store. */
export function drvFile(d: ManifestDrv): string {
  return join(FIXTURES, d.drvFile);
}

/** Every output in the manifest, keyed by store path. */
export function allOutputs(): Map<string, ManifestOutput> {
  const m = new Map<string, ManifestOutput>();
  for (const d of manifest().derivations) for (const o of Object.values(d.outputs)) m.set(o.path, o);
  return m;
}
