/**
 * Node ids of the kernel protocol: the kernel names every inode it holds by the id we gave it
 * in a lookup, and tells us (FORGET) when it drops them. Ids are never reused, so the
 * generation is always 0. A node knows its mount-relative path: the store view is path-based.
 */
import { ROOT_ID } from './protocol.js';

export interface Node {
  readonly id: number;
  readonly path: string;
  /** Lookups the kernel has not forgotten yet. */
  lookups: number;
}

export class Nodes {
  private readonly byId = new Map<number, Node>();
  private readonly byPath = new Map<string, Node>();
  private next = ROOT_ID + 1;

  constructor() {
    const root: Node = { id: ROOT_ID, path: '/', lookups: 1 };
    this.byId.set(ROOT_ID, root);
    this.byPath.set('/', root);
  }

  get(id: number): Node | undefined {
    return this.byId.get(id);
  }

  /** The node for `path`, counting one more lookup the kernel will forget later. */
  ref(path: string): Node {
    let node = this.byPath.get(path);
    if (!node) {
      node = { id: this.next++, path, lookups: 0 };
      this.byId.set(node.id, node);
      this.byPath.set(path, node);
    }
    node.lookups++;
    return node;
  }

  forget(id: number, n: number): void {
    const node = this.byId.get(id);
    if (!node || id === ROOT_ID) return;
    node.lookups -= n;
    if (node.lookups > 0) return;
    this.byId.delete(id);
    if (this.byPath.get(node.path) === node) this.byPath.delete(node.path);
  }

  get size(): number {
    return this.byId.size;
  }
}

/** `/` + name for children of the root, else parent/name. */
export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}
