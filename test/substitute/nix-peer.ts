/** Real Nix 2.8 as the peer: copy into a fresh chroot store, then verify it there. */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { formatHash, parseHash } from '../../src/nix/hash.js';

const NIX_ENV = { NIX_REMOTE: '', NIX_CONFIG: '' };
const NIX = ['--extra-experimental-features', 'nix-command'];

export async function nix(args: string[]): Promise<{ stdout: string; stderr: string }> {
  const r = await execa('nix', [...NIX, ...args], { env: NIX_ENV, reject: false });
  if (r.exitCode !== 0) throw new Error(`nix ${args.join(' ')} failed (${r.exitCode}):\n${r.stderr}`);
  return { stdout: r.stdout, stderr: r.stderr };
}

/** A fresh chroot store directory for `--store`/`--to`. */
export async function freshNixStore(parent: string): Promise<string> {
  return mkdtemp(join(parent, 'nixstore-'));
}

/** `nix copy --from URL --to STORE PATHS`, with the key trusted or signatures unchecked. */
export async function nixCopyFrom(url: string, store: string, paths: string[], trust: { publicKey?: string } = {}): Promise<void> {
  const sigArgs = trust.publicKey ? ['--option', 'trusted-public-keys', trust.publicKey] : ['--no-check-sigs'];
  // The narinfo disk cache would remember earlier answers for a reused URL: disable it.
  const base = ['copy', '--option', 'narinfo-cache-negative-ttl', '0', ...sigArgs, '--from', url, '--to', store];
  // A .drv argument means its outputs to `nix copy`, unless --derivation (which applies to all).
  const drvs = paths.filter((p) => p.endsWith('.drv'));
  const others = paths.filter((p) => !p.endsWith('.drv'));
  if (others.length > 0) await nix([...base, ...others]);
  if (drvs.length > 0) await nix([...base, '--derivation', ...drvs]);
}

/** `nix-store --verify --check-contents` on the chroot store; throws on any problem. */
export async function nixVerify(store: string): Promise<string> {
  const r = await execa('nix-store', ['--store', store, '--verify', '--check-contents'], { env: NIX_ENV, reject: false });
  if (r.exitCode !== 0 || /error|corrupt|modified|mismatch/i.test(r.stderr)) throw new Error(`nix-store --verify failed:\n${r.stderr}`);
  return r.stderr;
}

/** NAR hashes (sha256:nix32) of `paths`' closure as the chroot store records them. */
export async function nixNarHashes(store: string, paths: string[]): Promise<Map<string, string>> {
  const drvs = paths.filter((p) => p.endsWith('.drv'));
  const others = paths.filter((p) => !p.endsWith('.drv'));
  const { stdout } = await nix(['path-info', '--store', store, '--json', '--recursive', ...others]);
  const infos = JSON.parse(stdout) as { path: string; narHash: string; valid?: boolean }[];
  if (drvs.length > 0) {
    const d = await nix(['path-info', '--store', store, '--json', '--recursive', '--derivation', ...drvs]);
    infos.push(...(JSON.parse(d.stdout) as typeof infos));
  }
  return new Map(infos.map((i) => [i.path, formatHash(parseHash(i.narHash))]));
}
