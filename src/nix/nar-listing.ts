/**
 * The listing of a NAR: its tree with each regular file's size, executable flag and the NAR
 * offset of its contents — what binary caches publish as `<hash>.ls` and what random access
 * into a NAR needs. Built by streaming the NAR once; memory grows with the number of entries,
 * not with the contents.
 *
 * Names and targets are byte strings (latin1) like everything from parseNar;
 * `narListingJson` gives Nix's JSON (`nix nar ls --json -R`), UTF-8 decoded.
 */
import { parseNar } from './nar-reader.js';

export type NarListingNode =
  | { type: 'regular'; size: number; executable?: true; narOffset: number }
  | { type: 'symlink'; target: string }
  | { type: 'directory'; entries: Map<string, NarListingNode> };

export async function listNar(
  source: AsyncIterable<Uint8Array>,
  opts: { signal?: AbortSignal } = {},
): Promise<{ narSize: number; root: NarListingNode }> {
  let root: NarListingNode | undefined;
  const dirs = new Map<string, Map<string, NarListingNode>>();
  const place = (path: string, node: NarListingNode): void => {
    if (path === '') {
      root = node;
      return;
    }
    const slash = path.lastIndexOf('/');
    dirs.get(slash < 0 ? '' : path.slice(0, slash))!.set(path.slice(slash + 1), node);
  };
  const { narSize } = await parseNar(
    source,
    {
      directory(path) {
        const entries = new Map<string, NarListingNode>();
        dirs.set(path, entries);
        place(path, { type: 'directory', entries });
      },
      symlink: (path, target) => place(path, { type: 'symlink', target }),
      file(path, executable, size, _contents, narOffset) {
        place(path, executable ? { type: 'regular', size, executable: true, narOffset } : { type: 'regular', size, narOffset });
      },
    },
    opts,
  );
  return { narSize, root: root! };
}

/** Every entry in NAR order as `[path, node]` (directories before their entries). */
export function* walkNarListing(node: NarListingNode, path = ''): Generator<[string, NarListingNode]> {
  yield [path, node];
  if (node.type === 'directory') {
    for (const [name, child] of node.entries) yield* walkNarListing(child, path === '' ? name : `${path}/${name}`);
  }
}

const utf8 = (byteString: string): string => Buffer.from(byteString, 'latin1').toString('utf8');

/** The listing as the JSON object Nix writes (`nix nar ls --json -R`, the `root` of a `.ls` file). */
export function narListingJson(node: NarListingNode): unknown {
  switch (node.type) {
    case 'regular':
      return node.executable
        ? { type: 'regular', size: node.size, executable: true, narOffset: node.narOffset }
        : { type: 'regular', size: node.size, narOffset: node.narOffset };
    case 'symlink':
      return { type: 'symlink', target: utf8(node.target) };
    case 'directory': {
      const entries: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const [name, child] of node.entries) entries[utf8(name)] = narListingJson(child);
      return { type: 'directory', entries };
    }
  }
}
