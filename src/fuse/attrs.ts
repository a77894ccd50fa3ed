/**
 * Attributes as a Nix store presents them: owner root, mtime 1, regular files 0444 or 0555,
 * directories 0555, symlinks 0777; sizes, nlink and block counts from the unpacked file.
 */
import type { Stats } from 'node:fs';
import { inodeNumber } from './inode-number.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;

export type FileKind = 'regular' | 'directory' | 'symlink';

/** The stat shape fuse-native's getattr callback takes (times in milliseconds). */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
  dev: number;
  rdev: number;
}

/** Nix canonicalises every mtime to 1 s after the epoch. */
const MTIME_MS = 1000;

export function kindOfMode(mode: number): FileKind | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'regular';
    case S_IFDIR: return 'directory';
    case S_IFLNK: return 'symlink';
    default: return undefined;
  }
}

function make(path: string, kind: FileKind, executable: boolean, size: number, nlink: number, blocks: number): FuseStat {
  const mode =
    kind === 'directory' ? S_IFDIR | 0o555 : kind === 'symlink' ? S_IFLNK | 0o777 : S_IFREG | (executable ? 0o555 : 0o444);
  return {
    mode, uid: 0, gid: 0, size, nlink, ino: inodeNumber(path), blksize: 4096, blocks,
    atime: MTIME_MS, mtime: MTIME_MS, ctime: MTIME_MS, dev: 0, rdev: 0,
  };
}

/**
 * Attributes of `path` (mount-relative) from an lstat of its unpacked file. Files report nlink
 * 1 whatever the unpacked file's count (builds hard-link inputs for a while): inode numbers are
 * 32-bit hashes, and tar, cp -a and du would take two colliding files with nlink > 1 for links.
 */
export function attrsFromStats(path: string, st: Stats): FuseStat {
  const kind = kindOfMode(st.mode) ?? 'regular';
  return make(path, kind, (st.mode & 0o111) !== 0, kind === 'directory' ? 0 : st.size, kind === 'directory' ? st.nlink : 1, st.blocks);
}

/** Attributes for a path not realised yet: only the kind is guessed, size 0. */
export function guessedAttrs(path: string, kind: FileKind): FuseStat {
  return make(path, kind, kind === 'directory', kind === 'symlink' ? 1 : 0, kind === 'directory' ? 2 : 1, 0);
}

/** Attributes of the mount root (/nix/store itself). */
export function rootAttrs(): FuseStat {
  return { ...make('/', 'directory', true, 0, 2, 0), mode: S_IFDIR | 0o555 };
}

/** What the kernel keeps of a root entry; a difference after realisation means ESTALE once. */
export interface Answered {
  kind: FileKind;
  size: number;
}

export function answeredOf(st: FuseStat): Answered {
  return { kind: kindOfMode(st.mode) ?? 'regular', size: st.size };
}
