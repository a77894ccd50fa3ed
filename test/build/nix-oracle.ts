/** Real Nix as the oracle for new test derivations: build with nix-store --realise, read path-info. */
import { execFileSync } from 'node:child_process';
import { formatHash, parseHash } from '../../src/nix/hash.js';

export interface OracleOutput {
  path: string;
  narHash: string; // sha256:<nix32>
  narSize: number;
  references: string[];
}

/** Builds `drvPath` in the host store with real Nix (sandboxed) and returns its outputs by path. */
export function nixRealise(drvPath: string): Map<string, OracleOutput> {
  const outs = execFileSync('nix-store', ['--realise', drvPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    .split('\n')
    .filter((l) => l !== '');
  const json = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'path-info', '--json', ...outs], { encoding: 'utf8' });
  const m = new Map<string, OracleOutput>();
  for (const o of JSON.parse(json) as { path: string; narHash: string; narSize: number; references: string[] }[]) {
    m.set(o.path, { path: o.path, narHash: formatHash(parseHash(o.narHash), 'nix32'), narSize: o.narSize, references: [...o.references].sort() });
  }
  return m;
}
