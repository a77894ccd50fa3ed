/**
 * The environment a builder sees, exactly as Nix 2.8's sandbox sets it up
 * (measured: /tmp/nix-reference/sandbox-env.txt):
 *   PATH=/path-not-set, HOME=/homeless-shelter, NIX_STORE, NIX_BUILD_CORES   (the drv may override)
 *   every drv env entry (passAsFile names become `<name>Path` pointing at /build/.attr-<hash>)
 *   NIX_BUILD_TOP=TMPDIR=TEMPDIR=TMP=TEMP=PWD=/build, NIX_LOG_FD=2, TERM=xterm-256color (may not)
 * Values are byte strings (latin1 char codes = bytes), like the ATerm parser returns them.
 */
import { createHash } from 'node:crypto';
import { LazyError } from '../errors.js';
import { encodeNix32 } from '../nix/nixbase32.js';

export const SANDBOX_BUILD_DIR = '/build';
export const SANDBOX_STORE_DIR = '/nix/store';

/** A file the builder finds in /build before it starts (passAsFile). */
export interface BuildDirFile {
  /** Base name inside /build. */
  name: string;
  contents: Buffer;
}

export interface BuilderEnv {
  env: Map<string, string>;
  files: BuildDirFile[];
}

/** Nix's file name for a passAsFile attribute: `.attr-` + nix32(sha256(name)). */
export function passAsFileName(attr: string): string {
  return '.attr-' + encodeNix32(createHash('sha256').update(Buffer.from(attr, 'latin1')).digest());
}

export function builderEnv(drvEnv: ReadonlyMap<string, string>, opts: { cores: number; drvPath?: string }): BuilderEnv {
  if (drvEnv.has('__json')) {
    throw new LazyError('BUILD_UNSUPPORTED', `derivation ${opts.drvPath ?? ''} uses structured attributes (__json), which lazystore does not support yet`, {
      details: { drvPath: opts.drvPath },
    });
  }
  const env = new Map<string, string>([
    ['PATH', '/path-not-set'],
    ['HOME', '/homeless-shelter'],
    ['NIX_STORE', SANDBOX_STORE_DIR],
    ['NIX_BUILD_CORES', String(opts.cores)],
  ]);
  const files: BuildDirFile[] = [];
  const passAsFile = new Set((drvEnv.get('passAsFile') ?? '').split(/[ \t\n\r]+/).filter((s) => s !== ''));
  for (const [k, v] of drvEnv) {
    if (passAsFile.has(k)) {
      const name = passAsFileName(k);
      files.push({ name, contents: Buffer.from(v, 'latin1') });
      env.set(k + 'Path', `${SANDBOX_BUILD_DIR}/${name}`);
    } else {
      env.set(k, v);
    }
  }
  for (const k of ['NIX_BUILD_TOP', 'TMPDIR', 'TEMPDIR', 'TMP', 'TEMP', 'PWD']) env.set(k, SANDBOX_BUILD_DIR);
  env.set('NIX_LOG_FD', '2');
  env.set('TERM', 'xterm-256color');
  return { env, files };
}
