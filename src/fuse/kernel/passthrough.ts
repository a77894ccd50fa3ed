/**
 * FUSE passthrough (Linux 6.9+): an open file of the mount is backed by the unpacked file in
 * the state directory, so the kernel serves its reads, mmaps and page cache from that file
 * without a request to us. Registering a backing file is an ioctl on /dev/fuse, which Node
 * cannot make: the small addon in native/fuse_backing.c does (built by `npm install` when a C
 * compiler is there). Without it, or when the kernel refuses (no CAP_SYS_ADMIN, a backing
 * filesystem stacked too deep), reads come to the daemon as usual.
 */
import { loadAddon } from '../../native/addons.js';

interface Addon {
  backingOpen(devFd: number, fileFd: number): number;
  backingClose(devFd: number, id: number): void;
}

/** The addon, or null when it was not built here. */
export function passthroughAddon(): Addon | null {
  return loadAddon<Addon>('fuse_backing');
}

export class Passthrough {
  private disabled: string | undefined;
  /** Backing ids by the daemon's fd of the file: kept while the fd is, shared by every open. */
  private readonly ids = new Map<number, number>();

  constructor(private readonly devFd: number, private readonly addon: Addon, private readonly log: (line: string) => void) {}

  /**
   * A backing id for `fileFd` to put in the OPEN reply, or undefined to serve reads ourselves.
   * The id must outlive the reply: the opener looks it up after our write returns, in its own
   * time (dropping it at once failed every other open with EIO). It is dropped with the fd.
   */
  register(fileFd: number): number | undefined {
    if (this.disabled) return undefined;
    const known = this.ids.get(fileFd);
    if (known !== undefined) return known;
    try {
      const id = this.addon.backingOpen(this.devFd, fileFd);
      this.ids.set(fileFd, id);
      return id;
    } catch (e) {
      const err = e as Error & { code?: string };
      // EPERM (no CAP_SYS_ADMIN) is for good; ELOOP/EINVAL is about this one file's filesystem
      if (err.code === '1') {
        this.disabled = err.message;
        this.log(`passthrough off, reads go through the daemon: ${err.message}`);
      }
      return undefined;
    }
  }

  /** Before the daemon closes `fileFd`: the kernel's open files keep their own reference. */
  forget(fileFd: number): void {
    const id = this.ids.get(fileFd);
    if (id === undefined) return;
    this.ids.delete(fileFd);
    try {
      this.addon.backingClose(this.devFd, id);
    } catch {
      // the connection is gone: nothing to release
    }
  }
}
