/**
 * Our encoders against the kernel's own uapi header: a C program compiled here prints the
 * sizes, field offsets, flags and opcodes of <linux/fuse.h>, and every struct we write or read
 * is checked field by field at those offsets. (The header on Debian 12 is 7.38; the two
 * passthrough fields of 7.40 sit in what it calls padding/unused, checked by position.)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { FuseStat } from '../../src/fuse/attrs.js';
import {
  attrOut, ATTR_OUT, direntSize, ENTRY_OUT, entryOut, IN_HEADER, INIT, initOut, INIT_OUT, OP, openOut, OPEN_OUT,
  OUT_HEADER, parseInit, parseReadIn, parseRequest, putDirent, statfsOut, STATFS_OUT,
} from '../../src/fuse/kernel/protocol.js';

const C = String.raw`
#include <stdio.h>
#include <stddef.h>
#include <linux/fuse.h>
#define F(s, f) printf("\"%s.%s\":%zu,", #s, #f, offsetof(struct s, f))
#define S(s) printf("\"sizeof %s\":%zu,", #s, sizeof(struct s))
#define K(k) printf("\"%s\":%llu,", #k, (unsigned long long)(k))
int main(void) {
  printf("{");
  S(fuse_in_header); F(fuse_in_header, len); F(fuse_in_header, opcode); F(fuse_in_header, unique); F(fuse_in_header, nodeid); F(fuse_in_header, uid);
  S(fuse_out_header); F(fuse_out_header, error); F(fuse_out_header, unique);
  S(fuse_attr); F(fuse_attr, ino); F(fuse_attr, size); F(fuse_attr, blocks); F(fuse_attr, mtime); F(fuse_attr, mode); F(fuse_attr, nlink); F(fuse_attr, uid); F(fuse_attr, blksize);
  S(fuse_entry_out); F(fuse_entry_out, nodeid); F(fuse_entry_out, entry_valid); F(fuse_entry_out, attr_valid); F(fuse_entry_out, attr);
  S(fuse_attr_out); F(fuse_attr_out, attr_valid); F(fuse_attr_out, attr);
  S(fuse_open_out); F(fuse_open_out, fh); F(fuse_open_out, open_flags); F(fuse_open_out, padding);
  S(fuse_kstatfs); F(fuse_kstatfs, blocks); F(fuse_kstatfs, files); F(fuse_kstatfs, bsize); F(fuse_kstatfs, namelen); F(fuse_kstatfs, frsize);
  S(fuse_statfs_out);
  S(fuse_init_in); F(fuse_init_in, flags); F(fuse_init_in, flags2);
  S(fuse_init_out); F(fuse_init_out, minor); F(fuse_init_out, max_readahead); F(fuse_init_out, flags); F(fuse_init_out, max_background); F(fuse_init_out, max_write); F(fuse_init_out, max_pages); F(fuse_init_out, flags2); F(fuse_init_out, unused);
  S(fuse_read_in); F(fuse_read_in, fh); F(fuse_read_in, offset); F(fuse_read_in, size);
  S(fuse_dirent); F(fuse_dirent, ino); F(fuse_dirent, off); F(fuse_dirent, namelen); F(fuse_dirent, type); F(fuse_dirent, name);
  S(fuse_direntplus); F(fuse_direntplus, dirent);
  S(fuse_getxattr_out); S(fuse_forget_one); S(fuse_batch_forget_in);
  K(FUSE_ASYNC_READ); K(FUSE_DO_READDIRPLUS); K(FUSE_PARALLEL_DIROPS); K(FUSE_MAX_PAGES); K(FUSE_CACHE_SYMLINKS);
  K(FUSE_NO_OPENDIR_SUPPORT); K(FUSE_INIT_EXT); K(FOPEN_KEEP_CACHE);
  K(FUSE_LOOKUP); K(FUSE_GETATTR); K(FUSE_READLINK); K(FUSE_OPEN); K(FUSE_READ); K(FUSE_RELEASE); K(FUSE_STATFS);
  K(FUSE_GETXATTR); K(FUSE_LISTXATTR); K(FUSE_INIT); K(FUSE_OPENDIR); K(FUSE_READDIR); K(FUSE_READDIRPLUS);
  K(FUSE_FORGET); K(FUSE_BATCH_FORGET); K(FUSE_INTERRUPT); K(FUSE_ACCESS); K(FUSE_WRITE); K(FUSE_CREATE);
  printf("\"end\":0}\n");
  return 0;
}`;

let h: Record<string, number>;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'lazystore-fuse-h-'));
  writeFileSync(join(dir, 'probe.c'), C);
  execFileSync('cc', ['-o', join(dir, 'probe'), join(dir, 'probe.c')]);
  h = JSON.parse(execFileSync(join(dir, 'probe'), { encoding: 'utf8' })) as Record<string, number>;
});

const st: FuseStat = {
  mode: 0o100555, uid: 0, gid: 0, size: 5_000_000_000, nlink: 1, ino: 0xdeadbeef, blksize: 4096, blocks: 77,
  atime: 1000, mtime: 1000, ctime: 1000, dev: 0, rdev: 0,
};

const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));

function expectAttr(b: Buffer, at: number): void {
  expect(u64(b, at + h['fuse_attr.ino']!)).toBe(st.ino);
  expect(u64(b, at + h['fuse_attr.size']!)).toBe(st.size);
  expect(u64(b, at + h['fuse_attr.blocks']!)).toBe(st.blocks);
  expect(u64(b, at + h['fuse_attr.mtime']!)).toBe(1);
  expect(b.readUInt32LE(at + h['fuse_attr.mode']!)).toBe(st.mode);
  expect(b.readUInt32LE(at + h['fuse_attr.nlink']!)).toBe(1);
  expect(b.readUInt32LE(at + h['fuse_attr.blksize']!)).toBe(4096);
}

describe('FUSE kernel protocol encoding, checked against <linux/fuse.h>', () => {
  it('has the header sizes and opcodes', () => {
    expect(IN_HEADER).toBe(h['sizeof fuse_in_header']);
    expect(OUT_HEADER).toBe(h['sizeof fuse_out_header']);
    for (const [name, n] of Object.entries(OP)) if (h[`FUSE_${name}`] !== undefined) expect(n, name).toBe(h[`FUSE_${name}`]);
    expect(INIT.ASYNC_READ).toBe(BigInt(h.FUSE_ASYNC_READ!));
    expect(INIT.DO_READDIRPLUS).toBe(BigInt(h.FUSE_DO_READDIRPLUS!));
    expect(INIT.PARALLEL_DIROPS).toBe(BigInt(h.FUSE_PARALLEL_DIROPS!));
    expect(INIT.MAX_PAGES).toBe(BigInt(h.FUSE_MAX_PAGES!));
    expect(INIT.CACHE_SYMLINKS).toBe(BigInt(h.FUSE_CACHE_SYMLINKS!));
    expect(INIT.NO_OPENDIR_SUPPORT).toBe(BigInt(h.FUSE_NO_OPENDIR_SUPPORT!));
    expect(INIT.INIT_EXT).toBe(BigInt(h.FUSE_INIT_EXT!));
  });

  it('parses a request header and a read_in', () => {
    const b = Buffer.alloc(IN_HEADER + h['sizeof fuse_read_in']!);
    b.writeUInt32LE(b.length, h['fuse_in_header.len']!);
    b.writeUInt32LE(OP.READ, h['fuse_in_header.opcode']!);
    b.writeBigUInt64LE(123456789012345n, h['fuse_in_header.unique']!);
    b.writeBigUInt64LE(2n ** 40n + 3n, h['fuse_in_header.nodeid']!);
    b.writeUInt32LE(1000, h['fuse_in_header.uid']!);
    b.writeBigUInt64LE(9n, IN_HEADER + h['fuse_read_in.fh']!);
    b.writeBigUInt64LE(2n ** 33n, IN_HEADER + h['fuse_read_in.offset']!);
    b.writeUInt32LE(1 << 20, IN_HEADER + h['fuse_read_in.size']!);
    const r = parseRequest(b);
    expect(r).toMatchObject({ opcode: OP.READ, unique: 123456789012345n, nodeid: 2 ** 40 + 3, uid: 1000 });
    expect(parseReadIn(r.body)).toEqual({ fh: 9, offset: 2 ** 33, size: 1 << 20 });
  });

  it('writes entry_out, attr_out and open_out at the header offsets', () => {
    expect(ENTRY_OUT).toBe(h['sizeof fuse_entry_out']);
    const e = entryOut(42, st, 3600, 7);
    expect(u64(e, h['fuse_entry_out.nodeid']!)).toBe(42);
    expect(u64(e, h['fuse_entry_out.entry_valid']!)).toBe(3600);
    expect(u64(e, h['fuse_entry_out.attr_valid']!)).toBe(7);
    expectAttr(e, h['fuse_entry_out.attr']!);
    expect(ATTR_OUT).toBe(h['sizeof fuse_attr_out']);
    const a = attrOut(st, 3600);
    expect(u64(a, h['fuse_attr_out.attr_valid']!)).toBe(3600);
    expectAttr(a, h['fuse_attr_out.attr']!);
    expect(OPEN_OUT).toBe(h['sizeof fuse_open_out']);
    const o = openOut(17, 1 << 7, 5);
    expect(u64(o, h['fuse_open_out.fh']!)).toBe(17);
    expect(o.readUInt32LE(h['fuse_open_out.open_flags']!)).toBe(1 << 7);
    expect(o.readInt32LE(h['fuse_open_out.padding']!)).toBe(5); // backing_id since 7.40
  });

  it('writes statfs_out and init_out at the header offsets', () => {
    expect(STATFS_OUT).toBe(h['sizeof fuse_statfs_out']);
    const s = statfsOut({ blocks: 2 ** 35, bfree: 0, bavail: 0, files: 99, ffree: 0, bsize: 4096, namelen: 255, frsize: 4096 });
    expect(u64(s, h['fuse_kstatfs.blocks']!)).toBe(2 ** 35);
    expect(u64(s, h['fuse_kstatfs.files']!)).toBe(99);
    expect(s.readUInt32LE(h['fuse_kstatfs.bsize']!)).toBe(4096);
    expect(s.readUInt32LE(h['fuse_kstatfs.namelen']!)).toBe(255);
    expect(INIT_OUT).toBe(h['sizeof fuse_init_out']);
    const flags = INIT.ASYNC_READ | INIT.INIT_EXT | INIT.PASSTHROUGH;
    const i = initOut({ minor: 40, maxReadahead: 131072, flags, maxBackground: 64, congestionThreshold: 48, maxWrite: 4096, maxPages: 256, maxStackDepth: 1 });
    expect(i.readUInt32LE(h['fuse_init_out.minor']!)).toBe(40);
    expect(i.readUInt32LE(h['fuse_init_out.max_readahead']!)).toBe(131072);
    expect(BigInt(i.readUInt32LE(h['fuse_init_out.flags']!))).toBe(INIT.ASYNC_READ | INIT.INIT_EXT);
    expect(i.readUInt16LE(h['fuse_init_out.max_background']!)).toBe(64);
    expect(i.readUInt32LE(h['fuse_init_out.max_write']!)).toBe(4096);
    expect(i.readUInt16LE(h['fuse_init_out.max_pages']!)).toBe(256);
    expect(BigInt(i.readUInt32LE(h['fuse_init_out.flags2']!)) << 32n).toBe(INIT.PASSTHROUGH);
    expect(i.readUInt32LE(h['fuse_init_out.unused']!)).toBe(1); // max_stack_depth since 7.40
    const inBody = Buffer.alloc(h['sizeof fuse_init_in']!);
    inBody.writeUInt32LE(7, 0);
    inBody.writeUInt32LE(45, 4);
    inBody.writeUInt32LE(Number(INIT.INIT_EXT | INIT.ASYNC_READ), h['fuse_init_in.flags']!);
    inBody.writeUInt32LE(Number(INIT.PASSTHROUGH >> 32n), h['fuse_init_in.flags2']!);
    expect(parseInit(inBody)).toMatchObject({ major: 7, minor: 45, flags: INIT.INIT_EXT | INIT.ASYNC_READ | INIT.PASSTHROUGH });
  });

  it('writes dirents padded to 8 bytes, direntplus after an entry_out', () => {
    expect(h['fuse_direntplus.dirent']).toBe(ENTRY_OUT);
    const name = Buffer.from('hello');
    const b = Buffer.alloc(64, 0xff);
    const used = putDirent(b, 0, name, 77, 3, 8);
    expect(used).toBe(direntSize(name.length, false));
    expect(used % 8).toBe(0);
    expect(u64(b, h['fuse_dirent.ino']!)).toBe(77);
    expect(u64(b, h['fuse_dirent.off']!)).toBe(3);
    expect(b.readUInt32LE(h['fuse_dirent.namelen']!)).toBe(5);
    expect(b.readUInt32LE(h['fuse_dirent.type']!)).toBe(8);
    expect(b.toString('utf8', h['fuse_dirent.name']!, h['fuse_dirent.name']! + 5)).toBe('hello');
    expect(b.subarray(h['fuse_dirent.name']! + 5, used).every((x) => x === 0)).toBe(true);
    expect(direntSize(5, true)).toBe(ENTRY_OUT + used);
  });
});
