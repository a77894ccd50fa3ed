/**
 * NAR encoding, as Nix writes it: `str("nix-archive-1")` then one node, where every string is
 * a u64-LE length, the bytes, and zero padding to a multiple of 8.
 *
 *   regular:   ( type regular [executable ""] contents <u64 size> <bytes> <pad> )
 *   symlink:   ( type symlink target <str> )
 *   directory: ( type directory [entry ( name <str> node <node> )]… )   entries sorted bytewise
 *
 * `NarWriter` hands out the tokens around file contents, so callers stream the contents
 * themselves. It is self-contained (no imports, nothing outside the class) because the dump
 * worker receives its source text (see src/store/nar-worker-main.ts).
 */
export class NarWriter {
  /** `nix-archive-1`, written once before the root node. */
  static readonly MAGIC = 'nix-archive-1';

  /** u64-LE length + bytes + zero padding to 8. */
  static str(s: Uint8Array | string): Buffer {
    const bytes = typeof s === 'string' ? Buffer.from(s, 'latin1') : s;
    const padded = (bytes.length + 7) & ~7;
    const out = Buffer.alloc(8 + padded);
    out.writeUInt32LE(bytes.length >>> 0, 0);
    out.writeUInt32LE(Math.floor(bytes.length / 0x100000000), 4);
    out.set(bytes, 8);
    return out;
  }

  private static tokens(...ts: string[]): Buffer {
    return Buffer.concat(ts.map((t) => NarWriter.str(t)));
  }

  // Fixed token runs, built once: a dump writes a few of them per file.
  static readonly HEADER = NarWriter.tokens(NarWriter.MAGIC);
  static readonly REGULAR = NarWriter.tokens('(', 'type', 'regular', 'contents');
  static readonly EXECUTABLE = NarWriter.tokens('(', 'type', 'regular', 'executable', '', 'contents');
  static readonly SYMLINK = NarWriter.tokens('(', 'type', 'symlink', 'target');
  static readonly DIRECTORY = NarWriter.tokens('(', 'type', 'directory');
  static readonly ENTRY = NarWriter.tokens('entry', '(', 'name');
  static readonly NODE = NarWriter.tokens('node');
  static readonly CLOSE = NarWriter.tokens(')');
  static readonly ZEROS = Buffer.alloc(8);

  static header(): Buffer {
    return NarWriter.HEADER;
  }

  /** Everything before a regular file's contents, ending with the u64 content size. */
  static regular(executable: boolean, size: number): Buffer {
    const head = executable ? NarWriter.EXECUTABLE : NarWriter.REGULAR;
    const out = Buffer.alloc(head.length + 8);
    head.copy(out, 0);
    out.writeUInt32LE(size >>> 0, head.length);
    out.writeUInt32LE(Math.floor(size / 0x100000000), head.length + 4);
    return out;
  }

  /** Zero padding after `size` content bytes, then the `)` closing the regular node. */
  static regularEnd(size: number): Buffer {
    const pad = (8 - (size & 7)) & 7;
    return Buffer.concat([NarWriter.ZEROS.subarray(0, pad), NarWriter.CLOSE]);
  }

  static symlink(target: Uint8Array | string): Buffer {
    return Buffer.concat([NarWriter.SYMLINK, NarWriter.str(target), NarWriter.CLOSE]);
  }

  static directoryStart(): Buffer {
    return NarWriter.DIRECTORY;
  }

  /** Opens a directory entry; the entry's node follows, then `entryEnd()`. */
  static entry(name: Uint8Array | string): Buffer {
    return Buffer.concat([NarWriter.ENTRY, NarWriter.str(name), NarWriter.NODE]);
  }

  static entryEnd(): Buffer {
    return NarWriter.CLOSE;
  }

  static directoryEnd(): Buffer {
    return NarWriter.CLOSE;
  }
}

/** An in-memory tree, for tests and small NARs. Names and targets are byte strings (latin1). */
export type NarTree =
  | { type: 'regular'; executable?: boolean; contents: Uint8Array | string }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Record<string, NarTree> };

/** Whole NAR of an in-memory tree; entries are sorted bytewise as Nix requires. */
export function encodeNar(tree: NarTree): Buffer {
  const parts: Buffer[] = [NarWriter.header()];
  const walk = (node: NarTree): void => {
    switch (node.type) {
      case 'regular': {
        const c = typeof node.contents === 'string' ? Buffer.from(node.contents, 'latin1') : node.contents;
        parts.push(NarWriter.regular(node.executable === true, c.length), Buffer.from(c), NarWriter.regularEnd(c.length));
        return;
      }
      case 'symlink':
        parts.push(NarWriter.symlink(node.target));
        return;
      case 'directory': {
        parts.push(NarWriter.directoryStart());
        const names = Object.keys(node.entries).map((n) => Buffer.from(n, 'latin1'));
        names.sort(Buffer.compare);
        for (const n of names) {
          parts.push(NarWriter.entry(n));
          walk(node.entries[n.toString('latin1')]!);
          parts.push(NarWriter.entryEnd());
        }
        parts.push(NarWriter.directoryEnd());
      }
    }
  };
  walk(tree);
  return Buffer.concat(parts);
}
