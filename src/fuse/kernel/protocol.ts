/**
 * The FUSE kernel protocol (linux/fuse.h, 7.40 features): opcodes, flags and the few structs
 * a read-only filesystem sends, encoded straight into Buffers. Little-endian, as the kernel
 * and every machine this runs on. Field layouts are the uapi header's; sizes are asserted in
 * test/fuse/kernel-protocol.test.ts.
 */
import type { FuseStat } from '../attrs.js';

export const KERNEL_MAJOR = 7;
/** The minor version we speak: 7.40 added passthrough (open_out.backing_id, init_out.max_stack_depth). */
export const KERNEL_MINOR = 40;
/** The oldest kernel protocol we serve: 7.31 (Linux 5.4) has readdir caching and no-opendir. */
export const KERNEL_MINOR_MIN = 31;

export const ROOT_ID = 1;

export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44, RENAME2: 45,
  COPY_FILE_RANGE: 47, TMPFILE: 51,
} as const;

/** Ops that would change the store: answered EROFS (the mount is also `ro`, so few arrive). */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  OP.SETATTR, OP.SYMLINK, OP.MKNOD, OP.MKDIR, OP.UNLINK, OP.RMDIR, OP.RENAME, OP.LINK, OP.WRITE,
  OP.SETXATTR, OP.REMOVEXATTR, OP.CREATE, OP.FALLOCATE, OP.RENAME2, OP.COPY_FILE_RANGE, OP.TMPFILE,
]);

/** INIT flags (bits 32+ travel in flags2, announced by INIT_EXT). */
export const INIT = {
  ASYNC_READ: 1n << 0n,
  DO_READDIRPLUS: 1n << 13n,
  PARALLEL_DIROPS: 1n << 18n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  NO_OPENDIR_SUPPORT: 1n << 24n,
  INIT_EXT: 1n << 30n,
  PASSTHROUGH: 1n << 37n,
} as const;

export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_PASSTHROUGH = 1 << 7;

export const IN_HEADER = 40;
export const OUT_HEADER = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT = 40 + ATTR_SIZE;
export const ATTR_OUT = 16 + ATTR_SIZE;
export const OPEN_OUT = 16;
export const STATFS_OUT = 80;
export const INIT_OUT = 64;
const DIRENT_BASE = 24;

export interface Request {
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  /** The op's own bytes, after the header. */
  body: Buffer;
}

export function parseRequest(buf: Buffer): Request {
  const len = buf.readUInt32LE(0);
  return {
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: u64(buf, 16),
    uid: buf.readUInt32LE(24),
    body: buf.subarray(IN_HEADER, len),
  };
}

/** A u64 that is a node id, count or offset we made: always below 2^53. */
export function u64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 0x1_0000_0000;
}

function putU64(buf: Buffer, at: number, n: number): void {
  buf.writeUInt32LE(n >>> 0, at);
  buf.writeUInt32LE(Math.floor(n / 0x1_0000_0000), at + 4);
}

/** The NUL-terminated name at the start of `body` (LOOKUP, GETXATTR after its fixed part). */
export function cString(body: Buffer, from = 0): string {
  const end = body.indexOf(0, from);
  return body.toString('utf8', from, end < 0 ? body.length : end);
}

export function outHeader(len: number, error: number, unique: bigint): Buffer {
  const b = Buffer.allocUnsafe(OUT_HEADER);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
  return b;
}

/** A reply: header plus body, in one buffer (one write per reply, as the kernel requires). */
export function reply(unique: bigint, body?: Buffer): Buffer {
  const len = OUT_HEADER + (body?.length ?? 0);
  const b = Buffer.allocUnsafe(len);
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(0, 4);
  b.writeBigUInt64LE(unique, 8);
  body?.copy(b, OUT_HEADER);
  return b;
}

export function errorReply(unique: bigint, negErrno: number): Buffer {
  return outHeader(OUT_HEADER, negErrno, unique);
}

function putAttr(b: Buffer, at: number, st: FuseStat): void {
  putU64(b, at, st.ino);
  putU64(b, at + 8, st.size);
  putU64(b, at + 16, st.blocks);
  const secs = (ms: number) => Math.floor(ms / 1000);
  putU64(b, at + 24, secs(st.atime));
  putU64(b, at + 32, secs(st.mtime));
  putU64(b, at + 40, secs(st.ctime));
  b.writeUInt32LE(0, at + 48);
  b.writeUInt32LE(0, at + 52);
  b.writeUInt32LE(0, at + 56);
  b.writeUInt32LE(st.mode, at + 60);
  b.writeUInt32LE(st.nlink, at + 64);
  b.writeUInt32LE(st.uid, at + 68);
  b.writeUInt32LE(st.gid, at + 72);
  b.writeUInt32LE(st.rdev, at + 76);
  b.writeUInt32LE(st.blksize, at + 80);
  b.writeUInt32LE(0, at + 84);
}

/** fuse_entry_out at `at` (nodeid 0 with a timeout is a cached negative entry). */
export function putEntry(b: Buffer, at: number, nodeid: number, st: FuseStat | undefined, entrySecs: number, attrSecs: number): void {
  putU64(b, at, nodeid);
  putU64(b, at + 8, 0); // generation: node ids are never reused
  putU64(b, at + 16, entrySecs);
  putU64(b, at + 24, attrSecs);
  b.writeUInt32LE(0, at + 32);
  b.writeUInt32LE(0, at + 36);
  if (st) putAttr(b, at + 40, st);
  else b.fill(0, at + 40, at + ENTRY_OUT);
}

export function entryOut(nodeid: number, st: FuseStat | undefined, entrySecs: number, attrSecs: number): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_OUT);
  putEntry(b, 0, nodeid, st, entrySecs, attrSecs);
  return b;
}

export function attrOut(st: FuseStat, attrSecs: number): Buffer {
  const b = Buffer.alloc(ATTR_OUT);
  putU64(b, 0, attrSecs);
  putAttr(b, 16, st);
  return b;
}

export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.alloc(OPEN_OUT);
  putU64(b, 0, fh);
  b.writeUInt32LE(openFlags, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export interface KStatfs {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export function statfsOut(s: KStatfs): Buffer {
  const b = Buffer.alloc(STATFS_OUT);
  putU64(b, 0, s.blocks);
  putU64(b, 8, s.bfree);
  putU64(b, 16, s.bavail);
  putU64(b, 24, s.files);
  putU64(b, 32, s.ffree);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

/** fuse_getxattr_out: the size a value or name list needs (a size-0 GETXATTR/LISTXATTR asks for it). */
export function xattrSizeOut(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(size, 0);
  return b;
}

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: bigint;
}

export function parseInit(body: Buffer): InitIn {
  const flags = BigInt(body.readUInt32LE(12));
  const ext = (flags & INIT.INIT_EXT) !== 0n && body.length >= 20 ? BigInt(body.readUInt32LE(16)) << 32n : 0n;
  return { major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags: flags | ext };
}

export interface InitOut {
  minor: number;
  maxReadahead: number;
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  maxPages: number;
  maxStackDepth: number;
}

export function initOut(o: InitOut): Buffer {
  const b = Buffer.alloc(INIT_OUT);
  b.writeUInt32LE(KERNEL_MAJOR, 0);
  b.writeUInt32LE(o.minor, 4);
  b.writeUInt32LE(o.maxReadahead, 8);
  b.writeUInt32LE(Number(o.flags & 0xffff_ffffn), 12);
  b.writeUInt16LE(o.maxBackground, 16);
  b.writeUInt16LE(o.congestionThreshold, 18);
  b.writeUInt32LE(o.maxWrite, 20);
  b.writeUInt32LE(1, 24); // time_gran: 1 ns (every time is a whole second anyway)
  b.writeUInt16LE(o.maxPages, 28);
  b.writeUInt16LE(0, 30); // map_alignment
  b.writeUInt32LE(Number(o.flags >> 32n), 32);
  b.writeUInt32LE(o.maxStackDepth, 36);
  return b;
}

/** DT_* type of a mode, for dirents. */
export function direntType(mode: number): number {
  return (mode & 0o170000) >> 12;
}

/** Bytes of one fuse_dirent (plus: preceded by a fuse_entry_out) for a name of `nameLen` bytes. */
export function direntSize(nameLen: number, plus: boolean): number {
  return (plus ? ENTRY_OUT : 0) + ((DIRENT_BASE + nameLen + 7) & ~7);
}

/** Writes one dirent at `at`; returns the bytes used. `off` is the offset of the entry after it. */
export function putDirent(b: Buffer, at: number, name: Buffer, ino: number, off: number, type: number): number {
  putU64(b, at, ino);
  putU64(b, at + 8, off);
  b.writeUInt32LE(name.length, at + 16);
  b.writeUInt32LE(type, at + 20);
  name.copy(b, at + DIRENT_BASE);
  const size = (DIRENT_BASE + name.length + 7) & ~7;
  b.fill(0, at + DIRENT_BASE + name.length, at + size);
  return size;
}

/** READ, READDIR and READDIRPLUS: fuse_read_in's fh, offset and size. */
export function parseReadIn(body: Buffer): { fh: number; offset: number; size: number } {
  return { fh: u64(body, 0), offset: u64(body, 8), size: body.readUInt32LE(16) };
}
