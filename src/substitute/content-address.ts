/**
 * Content-addressed paths from caches: a path whose `CA:` field recomputes to the path itself
 * needs no signature (Nix's ValidPathInfo::isContentAddressed), and its contents must then
 * match that content hash (Nix 2.8 checks this when adding the path: "ca hash mismatch").
 */
import { LazyError } from '../errors.js';
import { StreamingHash, formatHash, hashEquals, isHashAlgo, parseHash, type Hash } from '../nix/hash.js';
import type { NarInfo } from '../nix/narinfo.js';
import { makeFixedOutputPath, nameOf, parseStoreBaseName, type FileIngestionMethod, type StorePath } from '../nix/store-path.js';

export interface ContentAddress {
  method: FileIngestionMethod;
  hash: Hash;
}

/** `text:sha256:<h>`, `fixed:r:<algo>:<h>`, `fixed:<algo>:<h>`; undefined when not one of these. */
export function parseContentAddress(ca: string): ContentAddress | undefined {
  let method: FileIngestionMethod;
  let rest: string;
  if (ca.startsWith('text:')) [method, rest] = ['text', ca.slice(5)];
  else if (ca.startsWith('fixed:r:')) [method, rest] = ['recursive', ca.slice(8)];
  else if (ca.startsWith('fixed:')) [method, rest] = ['flat', ca.slice(6)];
  else return undefined;
  const colon = rest.indexOf(':');
  if (colon <= 0 || !isHashAlgo(rest.slice(0, colon))) return undefined;
  try {
    return { method, hash: parseHash(rest) };
  } catch {
    return undefined;
  }
}

/** True when `info.ca` is present and, with the references, makes exactly `info.storePath`. */
export function isContentAddressedPath(info: NarInfo): boolean {
  if (info.ca === undefined) return false;
  const ca = parseContentAddress(info.ca);
  if (!ca) return false;
  const self = info.references.some((r) => `/nix/store/${r}` === info.storePath);
  const refs = info.references.map((r) => parseStoreBaseName(r)).filter((r) => r !== info.storePath);
  try {
    return makeFixedOutputPath(nameOf(info.storePath), ca, refs, self) === info.storePath;
  } catch {
    return false; // e.g. a flat hash with references: cannot be that path
  }
}

/**
 * Passes a NAR stream through unchanged while computing the content hash `ca` speaks of; throws
 * SUBST_CA_MISMATCH at the end of the stream (before the consumer sees it end, so nothing is
 * registered) when it differs. recursive = hash of the NAR; flat/text = hash of the single
 * regular file's contents.
 */
export async function* verifyContentAddress(
  source: AsyncIterable<Buffer>,
  path: StorePath,
  ca: ContentAddress,
): AsyncGenerator<Buffer> {
  const h = new StreamingHash(ca.hash.algo);
  const flat = ca.method !== 'recursive' ? new FlatContents() : undefined;
  for await (const chunk of source) {
    if (flat) flat.update(chunk, h);
    else h.update(chunk);
    yield chunk;
  }
  if (flat && !flat.complete()) {
    throw new LazyError('SUBST_CA_MISMATCH', `${path}: CA '${ca.method}' needs a single regular file, and the NAR is not one`, {
      details: { path },
    });
  }
  const actual = h.digest();
  if (!hashEquals(actual, ca.hash)) {
    throw new LazyError(
      'SUBST_CA_MISMATCH',
      `${path}: content hash mismatch: expected ${formatHash(ca.hash)}, got ${formatHash(actual)}`,
      { details: { path, expected: formatHash(ca.hash), actual: formatHash(actual) } },
    );
  }
}

/**
 * Finds the contents of a NAR that is one regular file: `nix-archive-1 ( type regular
 * [executable ""] contents <u64 size> <bytes>`, and feeds exactly those bytes to the hash.
 * Anything else is left for the NAR reader to reject; here it only makes complete() false.
 */
class FlatContents {
  private header = Buffer.alloc(0);
  private remaining = -1; // content bytes still to hash; -1 while the header is incomplete
  private bad = false;

  update(chunk: Buffer, h: StreamingHash): void {
    if (this.bad) return;
    let data = chunk;
    if (this.remaining < 0) {
      this.header = Buffer.concat([this.header, chunk]);
      const parsed = parseFlatHeader(this.header);
      if (parsed === 'short') {
        if (this.header.length > 256) this.bad = true;
        return;
      }
      if (parsed === 'bad') {
        this.bad = true;
        return;
      }
      this.remaining = parsed.size;
      data = this.header.subarray(parsed.offset);
      this.header = Buffer.alloc(0);
    }
    const take = Math.min(this.remaining, data.length);
    if (take > 0) h.update(data.subarray(0, take));
    this.remaining -= take;
  }

  complete(): boolean {
    return !this.bad && this.remaining === 0;
  }
}

function parseFlatHeader(buf: Buffer): { offset: number; size: number } | 'short' | 'bad' {
  let off = 0;
  const str = (): string | undefined => {
    if (buf.length < off + 8) return undefined;
    const len = Number(buf.readBigUInt64LE(off));
    if (len > 64) return '\u0000bad';
    const padded = len + ((8 - (len % 8)) % 8);
    if (buf.length < off + 8 + padded) return undefined;
    const s = buf.toString('latin1', off + 8, off + 8 + len);
    off += 8 + padded;
    return s;
  };
  const expect = ['nix-archive-1', '(', 'type', 'regular'];
  for (const want of expect) {
    const s = str();
    if (s === undefined) return 'short';
    if (s !== want) return 'bad';
  }
  let s = str();
  if (s === undefined) return 'short';
  if (s === 'executable') {
    const empty = str();
    if (empty === undefined) return 'short';
    if (empty !== '') return 'bad';
    s = str();
    if (s === undefined) return 'short';
  }
  if (s !== 'contents') return 'bad';
  if (buf.length < off + 8) return 'short';
  const size = Number(buf.readBigUInt64LE(off));
  return { offset: off + 8, size };
}
