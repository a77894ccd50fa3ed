/**
 * A StoreView served over the FUSE kernel protocol directly (no libfuse): node ids, per-request
 * replies, and the kernel features libfuse 2 cannot ask for — readdir kept in the kernel's
 * cache (OPENDIR answers ENOSYS, so directories open without a request and their listing is
 * cached), READDIRPLUS (a listing carries every entry's attributes), 1 MiB reads, cached
 * symlinks, parallel lookups in one directory, and passthrough of valid files' reads to the
 * unpacked file (see passthrough.ts). The op semantics are the view's; this file only speaks
 * the protocol. Measured in docs/MOUNT.md.
 */
import { LazyError } from '../../errors.js';
import { ERRNO, toErrno } from '../errno.js';
import type { FuseStat } from '../attrs.js';
import { inodeNumber } from '../inode-number.js';
import { storeStatfs } from '../store-statfs.js';
import type { StoreView } from '../store-view.js';
import { mountDevice, MAX_WRITE, type FuseDevice } from './device.js';
import { childPath, Nodes, type Node } from './nodes.js';
import { Passthrough, passthroughAddon } from './passthrough.js';
import {
  attrOut, cString, direntSize, direntType, ENTRY_OUT, entryOut, errorReply, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH,
  INIT, initOut, KERNEL_MINOR, KERNEL_MINOR_MIN, OP, openOut, OUT_HEADER, outHeader, parseInit, parseReadIn,
  parseRequest, putDirent, putEntry, reply, statfsOut, u64, WRITE_OPS, xattrSizeOut, type Request,
} from './protocol.js';

const ENOSYS = 38;
const EPROTO = 71;
/** Requests of up to 1 MiB (256 pages) for reads we serve ourselves. */
const MAX_PAGES = 256;
/**
 * Readahead for reads we serve: the kernel's default 128 KiB makes 128 KiB requests; 1 MiB
 * (one max-size request) read a 1 GiB file at 1.8 GB/s instead of 1.1 (no passthrough).
 */
const READAHEAD_KIB = 1024;

export interface KernelSessionOptions {
  view: StoreView;
  mountpoint: string;
  stateDir: string;
  allowOther?: boolean;
  /** Seconds the kernel keeps entries and attributes (the store is immutable). */
  cacheSeconds: number;
  /** Seconds the kernel remembers that a name does not exist. */
  negativeSeconds: number;
  /** Ask for FUSE passthrough (when the addon is built and the kernel offers it). */
  passthrough: boolean;
  log: (line: string) => void;
}

interface Listing {
  name: Buffer;
  /** Attributes for READDIRPLUS, or undefined for '.', '..' and root entries (type only). */
  st?: FuseStat;
  path?: string;
  ino: number;
  type: number;
}

export class KernelSession {
  private readonly nodes = new Nodes();
  /** Listings of directories inside valid paths: immutable, kept while the kernel holds the node. */
  private readonly listings = new WeakMap<Node, Listing[]>();
  private device!: FuseDevice;
  private passthrough: Passthrough | undefined;
  private readonly initialised: Promise<void>;
  private initDone!: (err?: Error) => void;

  private constructor(private readonly opts: KernelSessionOptions) {
    this.initialised = new Promise((resolve, reject) => (this.initDone = (err) => (err ? reject(err) : resolve())));
  }

  /** Mounts and waits for the kernel's INIT to be answered. */
  static async mount(opts: KernelSessionOptions): Promise<KernelSession> {
    const s = new KernelSession(opts);
    const queued: Buffer[] = [];
    let ready = false;
    s.device = await mountDevice({
      mountpoint: opts.mountpoint,
      allowOther: opts.allowOther,
      onRequest: (b) => (ready ? s.dispatch(b) : queued.push(b)),
    });
    ready = true;
    for (const b of queued.splice(0)) s.dispatch(b);
    const timeout = setTimeout(() => s.initDone(new LazyError('MOUNT_FAILED', `the kernel sent no INIT for ${opts.mountpoint}`)), 10_000);
    try {
      await s.initialised;
      await s.device.setReadahead(READAHEAD_KIB);
    } catch (e) {
      await s.device.unmount().catch(() => {});
      throw e;
    } finally {
      clearTimeout(timeout);
    }
    return s;
  }

  get ended(): Promise<void> {
    return this.device.ended;
  }

  unmount(): Promise<void> {
    return this.device.unmount();
  }

  private dispatch(buf: Buffer): void {
    const req = parseRequest(buf);
    switch (req.opcode) {
      case OP.INIT: return this.init(req);
      case OP.FORGET: return this.nodes.forget(req.nodeid, u64(req.body, 0));
      case OP.BATCH_FORGET: {
        const count = req.body.readUInt32LE(0);
        for (let i = 0; i < count; i++) this.nodes.forget(u64(req.body, 8 + 16 * i), u64(req.body, 16 + 16 * i));
        return;
      }
      case OP.INTERRUPT: return; // the wait ends with the realisation, bounded by its timeout
      case OP.LOOKUP: return this.lookup(req);
      case OP.GETATTR: return this.answer(req, 'getattr', async (path) => attrOut(await this.opts.view.getattr(path), this.opts.cacheSeconds));
      case OP.READLINK: return this.answer(req, 'readlink', async (path) => Buffer.from(await this.opts.view.readlink(path)));
      case OP.OPEN: return this.answer(req, 'open', (path) => this.open(path, req.body.readUInt32LE(0)));
      case OP.READ: return this.read(req);
      case OP.RELEASE: return this.answer(req, 'release', async () => (await this.opts.view.handles.release(u64(req.body, 0)), undefined));
      // No OPENDIR: directories then open without a request, and their listings stay in the
      // kernel's cache (FOPEN_CACHE_DIR is the kernel's default for no-opendir). Nothing needs
      // it: a root lookup has waited for its path, and a failed path never looks up.
      case OP.OPENDIR: return this.device.write(errorReply(req.unique, -ENOSYS));
      case OP.RELEASEDIR: return this.device.write(reply(req.unique));
      case OP.READDIR: return this.answer(req, 'readdir', (_p, node) => this.readdir(node, req, false));
      case OP.READDIRPLUS: return this.answer(req, 'readdir', (_p, node) => this.readdir(node, req, true));
      case OP.STATFS: return this.answer(req, 'statfs', () => this.statfs());
      case OP.GETXATTR: return this.answer(req, 'getxattr', async (path) => sized(await this.opts.view.getxattr(path, cString(req.body, 8)), req.body.readUInt32LE(0)));
      case OP.LISTXATTR: return this.answer(req, 'listxattr', async (path) => sized(Buffer.from((await this.opts.view.listxattr(path)).map((n) => `${n}\0`).join('')), req.body.readUInt32LE(0)));
      case OP.ACCESS: return this.answer(req, 'access', async () => {
        this.opts.view.access(req.body.readUInt32LE(0));
        return undefined;
      });
      case OP.DESTROY: return this.device.write(reply(req.unique));
      default:
        return this.device.write(errorReply(req.unique, WRITE_OPS.has(req.opcode) ? -ERRNO.EROFS : -ENOSYS));
    }
  }

  /** Runs `op` for the request's node and writes its reply (or the errno its failure maps to). */
  private answer(req: Request, name: string, op: (path: string, node: Node) => Promise<Buffer | undefined>): void {
    const node = this.nodes.get(req.nodeid);
    if (!node) return this.device.write(errorReply(req.unique, -ERRNO.ESTALE));
    op(node.path, node).then(
      (body) => this.device.write(reply(req.unique, body)),
      (e: unknown) => this.device.write(errorReply(req.unique, toErrno(e, name, node.path, this.opts.log))),
    );
  }

  private init(req: Request): void {
    const kernel = parseInit(req.body);
    if (kernel.major !== 7 || kernel.minor < KERNEL_MINOR_MIN) {
      this.device.write(errorReply(req.unique, -EPROTO));
      this.initDone(new LazyError('MOUNT_FAILED', `the kernel speaks FUSE ${kernel.major}.${kernel.minor}; lazystore needs 7.${KERNEL_MINOR_MIN} or later`));
      return;
    }
    const addon = this.opts.passthrough ? passthroughAddon() : null;
    let want = INIT.ASYNC_READ | INIT.DO_READDIRPLUS | INIT.PARALLEL_DIROPS | INIT.MAX_PAGES | INIT.CACHE_SYMLINKS | INIT.INIT_EXT;
    if (addon) want |= INIT.PASSTHROUGH;
    const flags = want & kernel.flags;
    if ((flags & INIT.PASSTHROUGH) !== 0n && addon) {
      const passthrough = new Passthrough(this.device.fd, addon, this.opts.log);
      this.passthrough = passthrough;
      this.opts.view.handles.beforeClose = (fd) => passthrough.forget(fd);
    }
    this.device.write(reply(req.unique, initOut({
      minor: Math.min(kernel.minor, KERNEL_MINOR),
      maxReadahead: kernel.maxReadahead,
      flags,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: MAX_WRITE,
      maxPages: MAX_PAGES,
      maxStackDepth: this.passthrough ? 1 : 0,
    })));
    this.opts.log(`FUSE ${kernel.major}.${kernel.minor}, reads ${this.passthrough ? 'passed through to the store' : 'served by the daemon'}`);
    this.initDone();
  }

  private lookup(req: Request): void {
    const parent = this.nodes.get(req.nodeid);
    if (!parent) return this.device.write(errorReply(req.unique, -ERRNO.ESTALE));
    const path = childPath(parent.path, cString(req.body));
    this.opts.view.getattr(path).then(
      (st) => this.device.write(reply(req.unique, entryOut(this.nodes.ref(path).id, st, this.opts.cacheSeconds, this.opts.cacheSeconds))),
      (e: unknown) => {
        const errno = toErrno(e, 'lookup', path, this.opts.log);
        // a negative entry the kernel keeps for a moment: the path may become realisable
        if (errno === -ERRNO.ENOENT) this.device.write(reply(req.unique, entryOut(0, undefined, this.opts.negativeSeconds, 0)));
        else this.device.write(errorReply(req.unique, errno));
      },
    );
  }

  private async open(path: string, flags: number): Promise<Buffer> {
    const fh = await this.opts.view.open(path, flags);
    const id = this.passthrough?.register(this.opts.view.handles.fdOf(fh));
    return id === undefined ? openOut(fh, FOPEN_KEEP_CACHE) : openOut(fh, FOPEN_PASSTHROUGH, id);
  }

  private read(req: Request): void {
    const { fh, offset, size } = parseReadIn(req.body);
    const buf = Buffer.allocUnsafe(size);
    this.opts.view.handles.read(fh, buf, size, offset).then(
      (n) => this.device.write(outHeader(OUT_HEADER + n, 0, req.unique), buf.subarray(0, n)),
      (e: unknown) => this.device.write(errorReply(req.unique, toErrno(e, 'read', `fh ${fh}`, this.opts.log))),
    );
  }

  private async readdir(node: Node, req: Request, plus: boolean): Promise<Buffer> {
    const { offset, size } = parseReadIn(req.body);
    const entries = await this.listing(node, offset);
    const out = Buffer.allocUnsafe(size);
    let used = 0;
    for (let i = offset; i < entries.length; i++) {
      const e = entries[i]!;
      const need = direntSize(e.name.length, plus);
      if (used + need > size) break;
      if (plus) {
        // an entry with a node id counts as a lookup; '.', '..' and root entries go without one
        if (e.st && e.path) putEntry(out, used, this.nodes.ref(e.path).id, e.st, this.opts.cacheSeconds, this.opts.cacheSeconds);
        else putEntry(out, used, 0, undefined, 0, 0);
        putDirent(out, used + ENTRY_OUT, e.name, e.ino, i + 1, e.type);
      } else {
        putDirent(out, used, e.name, e.ino, i + 1, e.type);
      }
      used += need;
    }
    return out.subarray(0, used);
  }

  /**
   * Directories inside store paths never change: listed once, kept with the node. The root
   * changes as paths are added: listed afresh at offset 0, and the later pages of that pass
   * come from the same listing (not one `listValid` per page).
   */
  private async listing(node: Node, offset: number): Promise<Listing[]> {
    const cached = this.listings.get(node);
    if (cached && (node.path !== '/' || offset > 0)) return cached;
    const names = (await this.opts.view.readdir(node.path)).filter((n) => n !== '.' && n !== '..');
    const parent = node.path === '/' ? '/' : node.path.slice(0, node.path.lastIndexOf('/')) || '/';
    const dots: Listing[] = [
      { name: Buffer.from('.'), ino: inodeNumber(node.path), type: 4 },
      { name: Buffer.from('..'), ino: inodeNumber(parent), type: 4 },
    ];
    if (node.path === '/') {
      // store paths: listed by name only (attributes come with the lookup)
      const root = [...dots, ...names.map((n) => ({ name: Buffer.from(n), ino: inodeNumber(`/${n}`), type: 0 }))];
      this.listings.set(node, root);
      return root;
    }
    const entries = await Promise.all(
      names.map(async (n): Promise<Listing> => {
        const path = childPath(node.path, n);
        const st = await this.opts.view.getattr(path);
        return { name: Buffer.from(n), st, path, ino: st.ino, type: direntType(st.mode) };
      }),
    );
    const listing = [...dots, ...entries];
    this.listings.set(node, listing);
    return listing;
  }

  private async statfs(): Promise<Buffer> {
    const s = await storeStatfs(this.opts.stateDir);
    return statfsOut({ blocks: s.blocks, bfree: 0, bavail: 0, files: s.files, ffree: 0, bsize: s.bsize, namelen: s.namelen, frsize: s.bsize });
  }
}

/** A GETXATTR/LISTXATTR answer: the size when asked with size 0, ERANGE when it does not fit. */
function sized(value: Buffer, size: number): Buffer {
  if (size === 0) return xattrSizeOut(value.length);
  if (value.length > size) throw new LazyError('FUSE_XATTR_RANGE', `the value (${value.length} bytes) does not fit in ${size} bytes`);
  return value;
}
