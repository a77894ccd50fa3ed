/** How a binary cache's files are fetched: one implementation per URL scheme. */

export interface CacheTransport {
  /** The cache URL, without a trailing slash and without query parameters. */
  readonly url: string;
  /**
   * The file at `rel` (relative to the cache root) as a byte stream, or undefined when the cache
   * does not have it. Transient failures are retried inside; what escapes is final.
   */
  get(rel: string, opts?: { signal?: AbortSignal }): Promise<AsyncIterable<Uint8Array> | undefined>;
  /** A small file read whole (nix-cache-info, narinfo), or undefined when absent. */
  getText(rel: string, opts?: { signal?: AbortSignal }): Promise<string | undefined>;
}

/**
 * Checks a path taken from a narinfo's URL field before it is joined to the cache root: a
 * hostile cache must not make us read `../../etc/shadow` or another host.
 */
export function isSafeRelativeUrl(rel: string): boolean {
  if (rel === '' || rel.startsWith('/') || rel.includes('\\') || rel.includes('\0') || /^[a-z][a-z0-9+.-]*:/i.test(rel)) return false;
  return rel.split('/').every((seg) => seg !== '..' && seg !== '.' && seg !== '');
}
