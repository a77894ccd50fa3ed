/**
 * Unpacks a NAR stream to `destPath` (which must not exist; its parent must), canonical as Nix
 * leaves store paths: files 0444 (0555 when executable), directories 0555, mtime 1 everywhere.
 * Returns the NAR's size and sha256, computed from the same bytes.
 *
 * Safety: entry names are validated by the parser (no `/`, `.`, `..`, NUL), and every entry is
 * created new — files with O_CREAT|O_EXCL|O_NOFOLLOW, directories with mkdir, symlinks with
 * symlink — so nothing is ever written through a symlink or over an existing file.
 *
 * Speed: files are created with their final mode and get their mtime through the open fd, so a
 * small file costs open, write, futimes, close; up to `FILE_WRITES` small files are written at
 * once while parsing continues (the libuv pool does the syscalls in parallel). Directories are
 * created writable and made 0555 + mtime 1 once all their entries exist.
 *
 * On failure the partial tree is left for the caller to remove (the store restores into tmp/).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { LazyError, throwIfAborted } from '../errors.js';
import type { Hash } from '../nix/hash.js';
import { parseNar, type NarSink } from '../nix/nar-reader.js';

/** Small files written concurrently: 4 libuv threads stay busy with ~4 ops queued each. */
const FILE_WRITES = 16;
/** Files up to this size are buffered (copied) and written in the background. */
const SMALL_FILE = 256 << 10;
const CREATE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

function ioError(e: unknown, what: string): LazyError {
  if (e instanceof LazyError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err.code === 'EEXIST' ? 'STORE_RESTORE_EXISTS' : 'STORE_IO';
  return new LazyError(code, `${what}: ${err.message}`, { cause: e, details: { errno: err.code } });
}

const call = <T>(f: (cb: (err: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> =>
  new Promise((resolve, reject) => f((err, v) => (err ? reject(err) : resolve(v))));

/** Creates a file with its final mode and contents, mtime 1, through one fd. */
async function createFile(p: Buffer, mode: number, parts: AsyncIterable<Buffer> | Buffer): Promise<void> {
  const fd = await call<number>((cb) => fs.open(p, CREATE, mode, cb));
  try {
    if (Buffer.isBuffer(parts)) await writeAll(fd, parts);
    else for await (const c of parts) await writeAll(fd, c);
    if ((mode & umaskBits) !== 0) await call<void>((cb) => fs.fchmod(fd, mode, cb));
    await call<void>((cb) => fs.futimes(fd, 1, 1, cb));
  } finally {
    await call<void>((cb) => fs.close(fd, cb));
  }
}

async function writeAll(fd: number, b: Buffer): Promise<void> {
  let off = 0;
  while (off < b.length) off += await call<number>((cb) => fs.write(fd, b, off, b.length - off, null, cb));
}

/** Bits of 0555 the umask would strip from new files (then they are set with fchmod). */
const umaskBits = (() => {
  try {
    return process.umask() & 0o555;
  } catch {
    return 0o555; // inside a worker thread the umask is unknown: always fchmod
  }
})();

export async function restoreNar(
  source: AsyncIterable<Uint8Array>,
  destPath: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ narSize: number; narHash: Hash }> {
  const { signal } = opts;
  throwIfAborted(signal);
  const hash = createHash('sha256');
  async function* hashed(): AsyncGenerator<Uint8Array> {
    for await (const c of source) {
      hash.update(c);
      yield c;
    }
  }
  const root = Buffer.from(destPath);
  const slash = Buffer.from('/');
  const full = (p: string): Buffer => (p === '' ? root : Buffer.concat([root, slash, Buffer.from(p, 'latin1')]));
  const dirs: Buffer[] = [];
  const running = new Set<Promise<void>>();
  let failed: LazyError | undefined;

  /** Runs `task` in the background, at most FILE_WRITES at once; the first failure stops the parse. */
  const spawn = async (task: () => Promise<void>, what: string): Promise<void> => {
    while (running.size >= FILE_WRITES) await Promise.race(running);
    if (failed) throw failed;
    const p: Promise<void> = task().then(
      () => void running.delete(p),
      (e: unknown) => {
        running.delete(p);
        failed ??= ioError(e, what);
      },
    );
    running.add(p);
  };

  const sink: NarSink = {
    async directory(path) {
      if (failed) throw failed;
      const p = full(path);
      await call<void>((cb) => fs.mkdir(p, 0o755, (e) => cb(e, undefined))).catch((e: unknown) => {
        throw ioError(e, `creating directory '${p.toString()}'`);
      });
      dirs.push(p);
    },
    async symlink(path, target) {
      const p = full(path);
      await spawn(async () => {
        await call<void>((cb) => fs.symlink(Buffer.from(target, 'latin1'), p, (e) => cb(e, undefined)));
        await call<void>((cb) => fs.lutimes(p, 1, 1, cb));
      }, `creating symlink '${p.toString()}'`);
    },
    async file(path, executable, size, contents) {
      const p = full(path);
      const mode = executable ? 0o555 : 0o444;
      if (size > SMALL_FILE) {
        if (failed) throw failed;
        await createFile(p, mode, contents).catch((e: unknown) => {
          throw ioError(e, `writing '${p.toString()}'`);
        });
        return;
      }
      const data = Buffer.allocUnsafe(size);
      let n = 0;
      for await (const c of contents) n += c.copy(data, n);
      await spawn(() => createFile(p, mode, data), `writing '${p.toString()}'`);
    },
  };

  let narSize: number;
  try {
    ({ narSize } = await parseNar(hashed(), sink, { signal }));
  } finally {
    await Promise.allSettled(running);
  }
  if (failed) throw failed;
  // Entries exist now: seal the directories (order is free: chmod and utimes leave the parent's mtime alone).
  for (const d of dirs) {
    await spawn(async () => {
      await call<void>((cb) => fs.chmod(d, 0o555, cb));
      await call<void>((cb) => fs.utimes(d, 1, 1, cb));
    }, `finishing directory '${d.toString()}'`);
  }
  await Promise.allSettled(running);
  if (failed) throw failed;
  return { narSize, narHash: { algo: 'sha256', digest: hash.digest() } };
}
