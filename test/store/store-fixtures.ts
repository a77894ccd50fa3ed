/** Host /nix/store fixture outputs (made by real Nix 2.8) as inputs for store tests. */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseHash } from '../../src/nix/hash.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { closureOf } from '../../src/store/closure.js';
import type { LocalStore } from '../../src/store/local-store.js';
import type { PathInfo } from '../../src/store/path-info.js';
import { allOutputs, manifest, type ManifestOutput } from '../helpers/fixtures.js';

export interface FixtureOutput extends ManifestOutput {
  deriver: string;
}

let outputs: Map<string, FixtureOutput> | undefined;

/** Every fixture output by path, with its deriver. */
export function fixtureOutputs(): Map<string, FixtureOutput> {
  if (!outputs) {
    outputs = new Map();
    for (const d of manifest().derivations) {
      for (const o of Object.values(d.outputs)) outputs.set(o.path, { ...o, deriver: d.drvPath });
    }
  }
  return outputs;
}

export const BUSYBOX = (): StorePath => parseStorePath(manifest().busybox.storePath);

/** Candidates for reference scanning: every fixture output and busybox (a superset, as in a build). */
export function refCandidates(): StorePath[] {
  return [...allOutputs().keys()].map((p) => parseStorePath(p)).concat(BUSYBOX());
}

/** The closure of `roots` among fixture outputs, references first (from the manifest). */
export async function fixtureClosure(roots: Iterable<string>): Promise<StorePath[]> {
  const outs = fixtureOutputs();
  return closureOf(
    [...roots].map((r) => parseStorePath(r)),
    async (p) => outs.get(p)?.references.map((r) => parseStorePath(r)),
  );
}

/** What the manifest says about `p`, in PathInfo form. */
export function expectedInfo(p: string): PathInfo {
  const o = fixtureOutputs().get(p);
  if (!o) throw new Error(`${p} is not a fixture output`);
  const info: PathInfo = {
    path: parseStorePath(o.path),
    narHash: parseHash(o.narHash),
    narSize: o.narSize,
    references: o.references.map((r) => parseStorePath(r)).sort(),
    deriver: parseStorePath(o.deriver),
    sigs: [],
  };
  if (o.ca !== null) info.ca = o.ca;
  return info;
}

/**
 * `nix-store --dump <p>` as a stream. Piped at once into a PassThrough: when a child exits,
 * Node resumes (and so discards) any stdio stream nobody listens to yet, and an import may
 * only start reading after awaiting other things.
 */
export function nixDump(p: string): AsyncIterable<Buffer> {
  const child = spawn('nix-store', ['--dump', p], { stdio: ['ignore', 'pipe', 'inherit'] });
  return child.stdout.pipe(new PassThrough());
}

/** Imports the closure of `roots` from the host store by directory copy, references first. */
export async function importFromHost(store: LocalStore, roots: Iterable<string>): Promise<StorePath[]> {
  const order = await fixtureClosure(roots);
  const candidates = refCandidates();
  for (const p of order) {
    const e = expectedInfo(p);
    await store.addFromDirectory(p, { path: p, refCandidates: candidates, deriver: e.deriver, ca: e.ca });
  }
  return order;
}

export function tempStateDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `lazystore-${label}-`));
}

/** Output paths of the fixture derivations whose label starts with `prefix`. */
export function pathsOfLabel(prefix: string): string[] {
  return manifest()
    .derivations.filter((d) => d.label.startsWith(prefix))
    .flatMap((d) => Object.values(d.outputs).map((o) => o.path));
}
