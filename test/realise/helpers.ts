/** Fresh state directories with busybox imported, for build and realise tests. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { LocalStore } from '../../src/store/local-store.js';
import { KnownDerivations } from '../../src/realise/known-derivations.js';
import { Realiser, type RealiserOptions } from '../../src/realise/realiser.js';
import { manifest } from '../helpers/fixtures.js';

export interface Env {
  dir: string;
  store: LocalStore;
  known: KnownDerivations;
  realiser: Realiser;
  cleanup(): Promise<void>;
}

export async function freshEnv(opts: RealiserOptions = {}): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), 'lazystore-realise-'));
  const store = await LocalStore.open(dir);
  const known = await KnownDerivations.open(dir, store);
  const realiser = new Realiser(store, { known, ...opts });
  return { dir, store, known, realiser, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function busyboxPath(): StorePath {
  return parseStorePath(manifest().busybox.storePath);
}

/** Instantiates a .nix file with real nix-instantiate; returns the .drv paths (host /nix/store). */
export function instantiate(file: string, args: string[] = []): StorePath[] {
  const out = execFileSync('nix-instantiate', [file, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter((l) => l !== '').map((l) => parseStorePath(l.replace(/!.*$/, '')));
}

export function salt(): string {
  return `t${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
