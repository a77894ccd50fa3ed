/** Shared helpers for the NAR tests: a recording sink, chunkers, arbitrary trees. */
import fc from 'fast-check';
import type { NarSink, SyncNarSink } from '../../src/nix/nar-reader.js';
import type { NarTree } from '../../src/nix/nar-writer.js';

export type NarEvent =
  | { kind: 'directory'; path: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'file'; path: string; executable: boolean; size: number; contents: string; narOffset: number };

/** A sink that records every event, reading contents as latin1 byte strings. */
export function recordingSink(): { sink: NarSink; events: NarEvent[] } {
  const events: NarEvent[] = [];
  const sink: NarSink = {
    directory: (path) => void events.push({ kind: 'directory', path }),
    symlink: (path, target) => void events.push({ kind: 'symlink', path, target }),
    async file(path, executable, size, contents, narOffset) {
      const parts: Buffer[] = [];
      for await (const c of contents) parts.push(Buffer.from(c));
      events.push({ kind: 'file', path, executable, size, contents: Buffer.concat(parts).toString('latin1'), narOffset });
    },
  };
  return { sink, events };
}

/** The same record for parseNarSync. */
export function recordingSyncSink(): { sink: SyncNarSink; events: NarEvent[] } {
  const events: NarEvent[] = [];
  const sink: SyncNarSink = {
    directory: (path) => void events.push({ kind: 'directory', path }),
    symlink: (path, target) => void events.push({ kind: 'symlink', path, target }),
    fileData: (path, executable, contents, narOffset) =>
      void events.push({ kind: 'file', path, executable, size: contents.length, contents: contents.toString('latin1'), narOffset }),
  };
  return { sink, events };
}

export type NarEventNoOffset = NarEvent extends infer E ? (E extends NarEvent ? Omit<E, 'narOffset'> : never) : never;

export function withoutOffsets(events: NarEvent[]): NarEventNoOffset[] {
  return events.map((e) => {
    if (e.kind !== 'file') return e;
    const { narOffset: _, ...rest } = e;
    return rest;
  });
}

/** The events a correct parser reports for `tree` (entries in bytewise order), offsets omitted. */
export function expectedEvents(tree: NarTree, path = ''): NarEventNoOffset[] {
  switch (tree.type) {
    case 'regular': {
      const c = typeof tree.contents === 'string' ? tree.contents : Buffer.from(tree.contents).toString('latin1');
      return [{ kind: 'file', path, executable: tree.executable === true, size: c.length, contents: c }];
    }
    case 'symlink':
      return [{ kind: 'symlink', path, target: tree.target }];
    case 'directory': {
      const names = Object.keys(tree.entries).sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
      return [{ kind: 'directory', path }, ...names.flatMap((n) => expectedEvents(tree.entries[n]!, path === '' ? n : `${path}/${n}`))];
    }
  }
}

/** Splits `buf` at the given cut points (sorted, deduplicated, within bounds). */
export async function* chunked(buf: Buffer, cuts: number[] = []): AsyncGenerator<Buffer> {
  let prev = 0;
  for (const c of [...new Set(cuts)].filter((x) => x > 0 && x < buf.length).sort((a, b) => a - b)) {
    yield buf.subarray(prev, c);
    prev = c;
  }
  yield buf.subarray(prev);
}

export async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

/**
 * Names that exercise bytewise order and non-UTF-8 bytes (as latin1 byte strings): capitals
 * sort before lowercase, `-`/`.` before letters, bytes ≥ 0x80 after ASCII; never `.`/`..`.
 */
const nameArb = fc
  .oneof(
    fc.constantFrom('a', 'B', 'a.b', '-x', 'Z', 'zz', '\u00e9', '\u00ff\u0080', ' sp', '\u00c3\u00a9', 'é.txt', '~', '...', 'a\\b', 'x\ny'),
    fc.string({ minLength: 1, maxLength: 12 }).map((s) => Buffer.from(s, 'utf8').toString('latin1')),
  )
  .filter((n) => n !== '.' && n !== '..' && !n.includes('/') && !n.includes('\0') && Buffer.byteLength(n, 'latin1') <= 255);

const contentsArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.constantFrom(new Uint8Array(0), new Uint8Array(8), new Uint8Array(9).fill(0x61)),
  fc.integer({ min: 0, max: 70_000 }).map((n) => new Uint8Array(n).map((_, i) => (i * 7919) & 0xff)),
);

export const narTreeArb: fc.Arbitrary<NarTree> = fc.letrec<{ node: NarTree; dir: NarTree }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ type: fc.constant('regular' as const), executable: fc.boolean(), contents: contentsArb }),
    fc.record({
      type: fc.constant('symlink' as const),
      target: fc.oneof(fc.constantFrom('a', '../x', '/nix/store/abc', 'dangling/deep/path'), nameArb),
    }),
    tie('dir'),
  ),
  dir: fc.record({
    type: fc.constant('directory' as const),
    entries: fc.dictionary(nameArb, tie('node'), { maxKeys: 5 }),
  }),
})).node;
