/** `nix-cache-info`: the first file Nix reads from a binary cache. */
import { LazyError } from '../errors.js';
import { STORE_DIR } from '../nix/store-path.js';

export interface CacheInfo {
  storeDir: string;
  /** Lower is tried first; Nix's default is 50. */
  priority: number;
  wantMassQuery: boolean;
}

export const DEFAULT_PRIORITY = 50;

/** Parses `Key: value` lines; StoreDir must be /nix/store (our paths mean nothing elsewhere). */
export function parseCacheInfo(text: string, url: string): CacheInfo {
  const info: CacheInfo = { storeDir: STORE_DIR, priority: DEFAULT_PRIORITY, wantMassQuery: false };
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (key === 'StoreDir') info.storeDir = value;
    else if (key === 'Priority') {
      const n = Number(value);
      if (!Number.isInteger(n)) throw new LazyError('SUBST_CACHE_INFO', `${url}/nix-cache-info: bad Priority '${value}'`);
      info.priority = n;
    } else if (key === 'WantMassQuery') info.wantMassQuery = value === '1' || value === 'true';
  }
  if (info.storeDir !== STORE_DIR) {
    throw new LazyError(
      'SUBST_STORE_DIR',
      `binary cache ${url} is for store directory '${info.storeDir}', not '${STORE_DIR}'`,
      { details: { url, expected: STORE_DIR, actual: info.storeDir } },
    );
  }
  return info;
}

export function formatCacheInfo(info: Partial<CacheInfo> = {}): string {
  let s = `StoreDir: ${info.storeDir ?? STORE_DIR}\n`;
  if (info.wantMassQuery !== undefined) s += `WantMassQuery: ${info.wantMassQuery ? 1 : 0}\n`;
  if (info.priority !== undefined) s += `Priority: ${info.priority}\n`;
  return s;
}
