/**
 * Reference scanning as Nix does it: find which candidate 32-char hash parts occur anywhere in
 * a byte stream (Nix feeds it the whole NAR serialisation: contents, symlink targets and file
 * names). Matches may span the chunks given to `update`.
 *
 * The search is Nix's: look at a 32-byte window from its last byte backwards; the first byte
 * outside the nix32 alphabet lets the window jump past it, so binary data costs about one
 * check per 32 bytes. A full window is looked up in the candidate set.
 *
 * Self-contained (no imports, nothing outside the class) because the dump worker receives its
 * source text (see src/store/nar-worker-main.ts).
 */
export class RefScanner {
  static readonly HASH_LEN = 32;
  /** 1 for bytes of the nix32 alphabet `0123456789abcdfghijklmnpqrsvwxyz`. */
  static readonly VALID: Uint8Array = (() => {
    const t = new Uint8Array(256);
    for (const c of '0123456789abcdfghijklmnpqrsvwxyz') t[c.charCodeAt(0)] = 1;
    return t;
  })();

  private readonly pending: Set<string>;
  private readonly seen = new Set<string>();
  /** Last ≤31 bytes seen, copied: the caller may reuse its chunk buffers. */
  private tail: Buffer = Buffer.alloc(0);

  constructor(candidates: Iterable<string>) {
    this.pending = new Set(candidates);
  }

  update(chunk: Uint8Array): this {
    if (chunk.length === 0 || this.pending.size === 0) return this;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const keep = RefScanner.HASH_LEN - 1;
    if (this.tail.length > 0) {
      // Windows that start in the tail and end in this chunk.
      const joined = Buffer.concat([this.tail, buf.subarray(0, Math.min(keep, buf.length))]);
      this.search(joined);
      if (buf.length < keep) {
        this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - keep)));
        return this;
      }
    }
    this.search(buf);
    this.tail = Buffer.from(buf.subarray(Math.max(0, buf.length - keep)));
    return this;
  }

  /** The candidates seen so far. */
  found(): Set<string> {
    return new Set(this.seen);
  }

  private search(buf: Buffer): void {
    const valid = RefScanner.VALID;
    const len = RefScanner.HASH_LEN;
    const end = buf.length;
    let i = 0;
    outer: while (i + len <= end) {
      for (let j = len - 1; j >= 0; j--) {
        if (valid[buf[i + j]!] === 0) {
          i += j + 1;
          continue outer;
        }
      }
      const s = buf.toString('latin1', i, i + len);
      if (this.pending.has(s)) {
        this.pending.delete(s);
        this.seen.add(s);
        if (this.pending.size === 0) return;
      }
      i++;
    }
  }
}
