/**
 * fuse-native, loaded from ESM with the types this project uses (the package ships none).
 * Only src/fuse imports this.
 */
import { createRequire } from 'node:module';

export type Cb<T = void> = T extends void ? (err: number) => void : (err: number, value?: T) => void;

export interface FuseOps {
  init?(cb: (err: number) => void): void;
  getattr(path: string, cb: (err: number, stat?: object) => void): void;
  readlink?(path: string, cb: (err: number, target?: string) => void): void;
  readdir?(path: string, cb: (err: number, names?: string[]) => void): void;
  open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
  release?(path: string, fd: number, cb: (err: number) => void): void;
  releasedir?(path: string, fd: number, cb: (err: number) => void): void;
  statfs?(path: string, cb: (err: number, stat?: object) => void): void;
  getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void;
  listxattr?(path: string, cb: (err: number, names?: string[]) => void): void;
  access?(path: string, mode: number, cb: (err: number) => void): void;
  [write: string]: unknown;
}

export interface FuseOptions {
  timeout?: false | number;
  kernelCache?: boolean;
  attrTimeout?: number;
  entryTimeout?: number;
  autoUnmount?: boolean;
  force?: boolean;
  allowOther?: boolean;
  fsname?: string;
  debug?: boolean;
  mkdir?: boolean;
}

export interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}

export interface FuseClass {
  new (mnt: string, ops: FuseOps, opts: FuseOptions): FuseInstance;
  unmount(mnt: string, cb: (err: Error | null) => void): void;
}

export const Fuse = createRequire(import.meta.url)('fuse-native') as FuseClass;
