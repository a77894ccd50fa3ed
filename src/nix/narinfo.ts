/**
 * `.narinfo` files of binary caches: `Key: value` lines. Written in Nix 2.8's order
 * (StorePath URL Compression FileHash FileSize NarHash NarSize References Deriver System Sig CA),
 * unknown keys kept and written last. References are always written: Nix 2.8 reads a missing
 * References line as "no references", which would silently drop the closure.
 */
import { LazyError } from '../errors.js';
import { formatHash, parseHash, type Hash } from './hash.js';
import { parseStoreBaseName, parseStorePath, type StorePath } from './store-path.js';
import { verifyFingerprint, type PublicKey } from './signing.js';

export interface NarInfo {
  storePath: StorePath;
  url: string;
  /** `xz`, `bzip2`, `zstd`, `none`, …; Nix defaults a missing line to `bzip2`. */
  compression: string;
  fileHash?: Hash;
  fileSize?: number;
  narHash: Hash;
  narSize: number;
  /** Base names `<hash>-<name>`. */
  references: string[];
  /** Base name of the deriver. */
  deriver?: string;
  system?: string;
  /** `name:base64sig`, in file order. */
  sigs: string[];
  /** Content address, e.g. `fixed:r:sha256:…`, `text:sha256:…`. */
  ca?: string;
  /** Lines with keys this parser does not know, kept in order. */
  extra: [string, string][];
}

const SINGLE_KEYS = new Set(['StorePath', 'URL', 'Compression', 'FileHash', 'FileSize', 'NarHash', 'NarSize', 'References', 'Deriver', 'System', 'CA']);

function bad(code: string, where: string, line: number, msg: string): LazyError {
  return new LazyError(code, `${where}: line ${line}: ${msg}`, { details: { where, line } });
}

function parseSize(v: string, where: string, line: number, key: string): number {
  if (!/^[0-9]{1,15}$/.test(v)) throw bad('NARINFO_BAD_VALUE', where, line, `${key} '${v}' is not a size`);
  return Number(v);
}

/** Parses a narinfo; `where` (a URL or file name) prefixes error messages. */
export function parseNarInfo(text: string, where = 'narinfo'): NarInfo {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const seen = new Set<string>();
  const info: Partial<NarInfo> & { sigs: string[]; extra: [string, string][]; references: string[] } = {
    sigs: [],
    extra: [],
    references: [],
  };
  lines.forEach((raw, i) => {
    const n = i + 1;
    const colon = raw.indexOf(': ');
    if (colon <= 0) {
      if (raw.endsWith(':') && raw.length > 1 && !raw.includes(' ')) {
        // `References:` with nothing after it (no trailing space) — accept as empty.
        handle(raw.slice(0, -1), '', n);
        return;
      }
      throw bad('NARINFO_BAD_LINE', where, n, `'${raw.slice(0, 60)}' is not a 'Key: value' line`);
    }
    handle(raw.slice(0, colon), raw.slice(colon + 2), n);
  });

  function handle(key: string, v: string, n: number): void {
    if (SINGLE_KEYS.has(key)) {
      if (seen.has(key)) throw bad('NARINFO_DUPLICATE_FIELD', where, n, `${key} appears twice`);
      seen.add(key);
    }
    try {
      switch (key) {
        case 'StorePath':
          info.storePath = parseStorePath(v);
          break;
        case 'URL':
          info.url = v;
          break;
        case 'Compression':
          info.compression = v;
          break;
        case 'FileHash':
          info.fileHash = parseHash(v);
          break;
        case 'FileSize':
          info.fileSize = parseSize(v, where, n, key);
          break;
        case 'NarHash':
          info.narHash = parseHash(v);
          break;
        case 'NarSize':
          info.narSize = parseSize(v, where, n, key);
          break;
        case 'References':
          info.references = v.split(' ').filter((r) => r !== '');
          for (const r of info.references) parseStoreBaseName(r);
          break;
        case 'Deriver':
          if (v !== 'unknown-deriver') info.deriver = baseOf(parseStoreBaseName(v));
          break;
        case 'System':
          info.system = v;
          break;
        case 'Sig':
          info.sigs.push(v);
          break;
        case 'CA':
          info.ca = v;
          break;
        default:
          info.extra.push([key, v]);
      }
    } catch (e) {
      if (e instanceof LazyError && e.code.startsWith('NARINFO_')) throw e;
      throw new LazyError('NARINFO_BAD_VALUE', `${where}: line ${n}: bad ${key}: ${(e as Error).message}`, {
        cause: e,
        details: { where, line: n },
      });
    }
  }

  for (const key of ['StorePath', 'URL', 'NarHash', 'NarSize'] as const) {
    if (!seen.has(key)) throw new LazyError('NARINFO_MISSING_FIELD', `${where}: no ${key} line`, { details: { where } });
  }
  if (info.narSize === 0) throw new LazyError('NARINFO_BAD_VALUE', `${where}: NarSize is 0`, { details: { where } });
  if (info.url === '') throw new LazyError('NARINFO_BAD_VALUE', `${where}: URL is empty`, { details: { where } });
  info.compression ??= 'bzip2';
  return info as NarInfo;
}

function baseOf(p: StorePath): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

/** Serialises in Nix's order; `parseNarInfo(formatNarInfo(x))` equals `x`. */
export function formatNarInfo(info: NarInfo): string {
  let s = `StorePath: ${info.storePath}\nURL: ${info.url}\nCompression: ${info.compression}\n`;
  if (info.fileHash) s += `FileHash: ${formatHash(info.fileHash)}\n`;
  if (info.fileSize !== undefined) s += `FileSize: ${info.fileSize}\n`;
  s += `NarHash: ${formatHash(info.narHash)}\nNarSize: ${info.narSize}\n`;
  s += `References: ${info.references.join(' ')}\n`;
  if (info.deriver !== undefined) s += `Deriver: ${info.deriver}\n`;
  if (info.system !== undefined && info.system !== '') s += `System: ${info.system}\n`;
  for (const sig of info.sigs) s += `Sig: ${sig}\n`;
  if (info.ca !== undefined) s += `CA: ${info.ca}\n`;
  for (const [k, v] of info.extra) s += `${k}: ${v}\n`;
  return s;
}

/**
 * What Nix signs: `1;<storePath>;<narHash sha256:nix32>;<narSize>;<refs>` with the references
 * as absolute paths, sorted, comma-joined. The NAR hash must be sha256 (Nix refuses others).
 */
export function narInfoFingerprint(info: Pick<NarInfo, 'storePath' | 'narHash' | 'narSize' | 'references'>): string {
  if (info.narHash.algo !== 'sha256') {
    throw new LazyError('NARINFO_BAD_VALUE', `${info.storePath}: NarHash must be sha256 to be signed, not ${info.narHash.algo}`);
  }
  const refs = info.references.map((r) => (r.startsWith('/') ? r : `/nix/store/${r}`)).sort();
  return `1;${info.storePath};${formatHash(info.narHash)};${info.narSize};${refs.join(',')}`;
}

/** How many of `info`'s signatures are valid under `keys` (0 when none are). */
export function countValidSigs(info: NarInfo, keys: Iterable<PublicKey>): number {
  const ks = [...keys];
  if (ks.length === 0 || info.sigs.length === 0 || info.narHash.algo !== 'sha256') return 0;
  const fp = narInfoFingerprint(info);
  return info.sigs.filter((sig) => verifyFingerprint(ks, fp, sig)).length;
}
