/**
 * Content addresses as Nix writes them in narinfo `CA:` fields and path-info JSON:
 * `text:sha256:<nix32>`, `fixed:r:<algo>:<nix32>` (NAR hash), `fixed:<algo>:<nix32>` (flat file).
 * A content-addressed path can be checked against its contents without trusting anyone.
 */
import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { LazyError } from '../errors.js';
import { StreamingHash, formatHash, hashEquals, hashOf, parseHash, type Hash, type HashAlgo } from '../nix/hash.js';
import { makeFixedOutputPath, nameOf, type FileIngestionMethod, type StorePath } from '../nix/store-path.js';

export interface ContentAddress {
  method: FileIngestionMethod;
  hash: Hash;
}

export function parseContentAddress(ca: string): ContentAddress {
  try {
    if (ca.startsWith('text:')) return { method: 'text', hash: parseHash(ca.slice(5), 'sha256') };
    if (ca.startsWith('fixed:r:')) return { method: 'recursive', hash: parseHash(ca.slice(8)) };
    if (ca.startsWith('fixed:')) return { method: 'flat', hash: parseHash(ca.slice(6)) };
  } catch (e) {
    throw new LazyError('STORE_BAD_CA', `invalid content address '${ca}': ${(e as Error).message}`, { cause: e });
  }
  throw new LazyError('STORE_BAD_CA', `invalid content address '${ca}'`);
}

export function formatContentAddress(ca: ContentAddress): string {
  const h = formatHash(ca.hash, 'nix32');
  if (ca.method === 'text') return `text:${h}`;
  return ca.method === 'recursive' ? `fixed:r:${h}` : `fixed:${h}`;
}

/**
 * Throws STORE_CA_MISMATCH unless `path` is the path `ca` gives for these references and the
 * contents at `fsPath` hash to `ca`'s hash. `narHash(algo)` is the NAR hash in `algo`, when known.
 * `file`, when the caller has the NAR in memory, says what `fsPath` holds without reading it
 * back: the contents of a lone regular file, or null when the NAR is anything else.
 */
export async function checkContentAddress(args: {
  path: StorePath;
  ca: string;
  references: readonly StorePath[];
  fsPath: string;
  narHash: (algo: HashAlgo) => Hash | undefined;
  file?: Buffer | null;
  signal?: AbortSignal;
}): Promise<void> {
  const { path, references } = args;
  const ca = parseContentAddress(args.ca);
  const self = references.includes(path);
  const others = references.filter((r) => r !== path);
  let expectedPath: StorePath;
  try {
    expectedPath = makeFixedOutputPath(nameOf(path), ca, others, self);
  } catch (e) {
    throw mismatch(path, args.ca, (e as Error).message, e);
  }
  if (expectedPath !== path) throw mismatch(path, args.ca, `it gives the path '${expectedPath}'`);
  let actual: Hash | undefined;
  if (ca.method === 'recursive') actual = args.narHash(ca.hash.algo);
  else if (args.file === null) throw mismatch(path, args.ca, NOT_A_FILE);
  else if (args.file !== undefined) actual = hashOf(ca.hash.algo, args.file);
  else actual = await hashRegularFile(args.fsPath, ca.hash.algo, path, args.ca, args.signal);
  if (actual === undefined) throw mismatch(path, args.ca, `no ${ca.hash.algo} NAR hash was computed to check it`);
  if (!hashEquals(actual, ca.hash)) throw mismatch(path, args.ca, `the contents hash to ${formatHash(actual)}`);
}

async function hashRegularFile(fsPath: string, algo: HashAlgo, path: StorePath, ca: string, signal?: AbortSignal): Promise<Hash> {
  const st = await lstat(fsPath);
  if (!st.isFile()) throw mismatch(path, ca, NOT_A_FILE);
  const h = new StreamingHash(algo);
  for await (const chunk of createReadStream(fsPath, { signal })) h.update(chunk as Buffer);
  return h.digest();
}

const NOT_A_FILE = 'a flat or text content address needs a regular file';

function mismatch(path: StorePath, ca: string, why: string, cause?: unknown): LazyError {
  return new LazyError('STORE_CA_MISMATCH', `content address '${ca}' does not match '${path}': ${why}`, {
    cause,
    details: { path, ca },
  });
}
