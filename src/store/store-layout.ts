/** The directories of a state directory (see docs/ARCHITECTURE.md, "src/store"). */
import { join, resolve } from 'node:path';

export interface StoreLayout {
  stateDir: string;
  /** `store/<hash>-<name>`: each valid path, unpacked and canonical. */
  storeDir: string;
  /** `info/<hash>.narinfo`: a path is valid iff its narinfo exists (written last). */
  infoDir: string;
  /** Known derivations (owned by src/realise). */
  drvDir: string;
  /** Build logs, `log/<drv basename>`. */
  logDir: string;
  /** Scratch on the same filesystem, entries named `<owner token>…` (see process-owner.ts). */
  tmpDir: string;
}

export function storeLayout(stateDir: string): StoreLayout {
  const s = resolve(stateDir);
  return {
    stateDir: s,
    storeDir: join(s, 'store'),
    infoDir: join(s, 'info'),
    drvDir: join(s, 'drv'),
    logDir: join(s, 'log'),
    tmpDir: join(s, 'tmp'),
  };
}

/** `hashPart` is a store path's (32 nix32 characters), so plain concatenation is safe: path.join cost ~5 µs a call. */
export function narInfoFile(layout: StoreLayout, hashPart: string): string {
  return `${layout.infoDir}/${hashPart}.narinfo`;
}
