/**
 * Inode numbers: a pure function of the path inside the mount, so they are stable for the
 * mount's lifetime and across restarts without a table that grows with every path seen.
 * fuse-native passes 32-bit numbers (`use_ino` makes the kernel report them); FNV-1a over the
 * UTF-8 bytes spreads paths well enough that the ~2^16-path birthday bound matters only for
 * tools that compare inode numbers of files with nlink 1, which nothing in a store relies on.
 */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** 1 for the mount root, else a 32-bit number ≥ 2 derived from `path` (mount-relative, `/`-led). */
export function inodeNumber(path: string): number {
  if (path === '/') return 1;
  let h = FNV_OFFSET;
  const bytes = Buffer.from(path, 'utf8');
  for (const b of bytes) h = Math.imul(h ^ b, FNV_PRIME) >>> 0;
  return h < 2 ? h + 2 : h;
}
