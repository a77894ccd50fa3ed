/** The reference fixtures real Nix 2.8 made (see /work/shared/nix-reference), as the demo uses them. */
import { mkdtemp, rm, readFile, mkdir, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { DemoFailure, check } from './demo-kit.js';

export const FIXTURES = process.env.LAZYSTORE_FIXTURES ?? '/tmp/nix-reference';

export interface FixtureDrv {
  label: string;
  name: string;
  drvPath: string;
  drvFile: string;
  inputSrcs: string[];
  outputs: Record<string, { path: string; narHash: string; narSize: number; references: string[] }>;
}
export interface Fixtures {
  busybox: { storePath: string };
  derivations: FixtureDrv[];
}

export function fixture(m: Fixtures, label: string): FixtureDrv {
  const d = m.derivations.find((x) => x.label === label);
  if (!d) throw new DemoFailure(`fixture ${label} missing from ${FIXTURES}/manifest.json`);
  return d;
}

const temps: string[] = [];
/** Removes every temporary directory made by tempDir (store paths in them are read-only: root only). */
export async function removeTemps(): Promise<void> {
  for (const d of temps.splice(0)) await rm(d, { recursive: true, force: true }).catch(() => undefined);
}

export async function tempDir(label: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), `lazystore-demo-${label}-`));
  temps.push(d);
  return d;
}

/**
 * A flat-file binary cache holding only busybox, the one tool every fixture builder runs:
 * lazystore substitutes busybox from it and has to build everything else itself.
 */
export async function busyboxOnlyCache(m: Fixtures): Promise<string> {
  const dir = await tempDir('cache');
  const base = basename(m.busybox.storePath);
  const hash = base.slice(0, 32);
  const src = join(FIXTURES, 'cache');
  const narinfo = await readFile(join(src, `${hash}.narinfo`), 'utf8');
  const url = /^URL: (.*)$/m.exec(narinfo)?.[1];
  check(url !== undefined, `no URL in ${hash}.narinfo`);
  await mkdir(join(dir, 'nar'));
  await copyFile(join(src, 'nix-cache-info'), join(dir, 'nix-cache-info'));
  await writeFile(join(dir, `${hash}.narinfo`), narinfo);
  await copyFile(join(src, url), join(dir, url));
  return `file://${dir}`;
}

