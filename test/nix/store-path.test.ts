import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { hashOf, parseHash } from '../../src/nix/hash.js';
import {
  baseName,
  hashPart,
  makeFixedOutputPath,
  makeTextPath,
  nameOf,
  parseStoreBaseName,
  parseStorePath,
  splitStorePath,
} from '../../src/nix/store-path.js';
import { manifest } from '../helpers/fixtures.js';

/** A throwaway chroot store so real Nix can compute paths without touching the host store. */
const work = mkdtempSync(join(tmpdir(), 'lazystore-store-path-'));
const nixStore = join(work, 'store');
afterAll(() => {
  execFileSync('chmod', ['-R', 'u+w', work]);
  rmSync(work, { recursive: true, force: true });
});

function nix(cmd: string, args: string[]): string {
  return execFileSync(cmd, ['--store', nixStore, ...args], { encoding: 'utf8', cwd: work }).trim();
}

describe('parseStorePath', () => {
  it('accepts every path in the fixture manifest and splits it', () => {
    for (const d of manifest().derivations) {
      const p = parseStorePath(d.drvPath);
      expect(baseName(p)).toBe(d.drvPath.slice('/nix/store/'.length));
      expect(`/nix/store/${hashPart(p)}-${nameOf(p)}`).toBe(d.drvPath);
      for (const o of Object.values(d.outputs)) expect(parseStorePath(o.path)).toBe(o.path);
    }
  });
  it('splits a path inside a store path', () => {
    const p = manifest().busybox.storePath;
    expect(splitStorePath(`${p}/bin/sh`)).toEqual({ storePath: p, rest: 'bin/sh' });
    expect(splitStorePath(p)).toEqual({ storePath: p, rest: '' });
  });
  it('accepts a leading dot and every allowed character, like Nix 2.8', () => {
    expect(parseStoreBaseName('00000000000000000000000000000000-.foo+-._?=AZaz09')).toBe(
      '/nix/store/00000000000000000000000000000000-.foo+-._?=AZaz09',
    );
    expect(parseStoreBaseName('00000000000000000000000000000000-' + 'a'.repeat(211))).toBeTruthy();
  });
});

describe('computed paths agree with real Nix', () => {
  it('fixed-output paths of the fixture FODs', () => {
    const fods = manifest().derivations.filter((d) => d.fixedOutput);
    expect(fods.length).toBeGreaterThanOrEqual(2);
    for (const d of fods) {
      const out = d.outputs.out!;
      const ca = out.ca!;
      const recursive = ca.startsWith('fixed:r:');
      const hash = parseHash(ca.slice(recursive ? 'fixed:r:'.length : 'fixed:'.length));
      expect(makeFixedOutputPath(d.name, { method: recursive ? 'recursive' : 'flat', hash })).toBe(out.path);
    }
  });
  it('flat and recursive sha1, recursive sha256 (nix-store --add-fixed / --add)', () => {
    const content = 'hello lazystore\n';
    writeFileSync(join(work, 'f'), content);
    const sha1 = hashOf('sha1', content);
    expect(makeFixedOutputPath('f', { method: 'flat', hash: sha1 })).toBe(nix('nix-store', ['--add-fixed', 'sha1', 'f']));
    const narHash = parseHash(execFileSync('nix-hash', ['--type', 'sha256', join(work, 'f')], { encoding: 'utf8' }).trim(), 'sha256');
    const narSha1 = parseHash(execFileSync('nix-hash', ['--type', 'sha1', join(work, 'f')], { encoding: 'utf8' }).trim(), 'sha1');
    expect(makeFixedOutputPath('f', { method: 'recursive', hash: narHash })).toBe(nix('nix-store', ['--add', 'f']));
    expect(makeFixedOutputPath('f', { method: 'recursive', hash: narSha1 })).toBe(
      nix('nix-store', ['--add-fixed', '--recursive', 'sha1', 'f']),
    );
  });
  it('text paths with and without references (builtins.toFile)', () => {
    const foo = makeTextPath('foo', hashOf('sha256', 'bar'));
    expect(foo).toBe(JSON.parse(nix('nix', ['eval', '--expr', 'builtins.toFile "foo" "bar"'])));
    const foo2 = makeTextPath('foo2', hashOf('sha256', foo), [foo]);
    expect(foo2).toBe(nix('nix', ['eval', '--raw', '--expr', 'builtins.toFile "foo2" "${builtins.toFile "foo" "bar"}"']));
  });
});

describe('rejects bad store paths with a code', () => {
  const cases: [string, string][] = [
    ['/nix/stor/00000000000000000000000000000000-x', 'PATH_NOT_IN_STORE'],
    ['/nix/store/00000000000000000000000000000000-x/y', 'PATH_NOT_IN_STORE'],
    ['/nix/store/0000000000000000000000000000000-x', 'PATH_BAD_HASH'],
    ['/nix/store/0000000000000000000000000000000e-x', 'PATH_BAD_HASH'],
    ['/nix/store/00000000000000000000000000000000_x', 'PATH_BAD_HASH'],
    ['/nix/store/00000000000000000000000000000000-', 'PATH_BAD_NAME'],
    ['/nix/store/00000000000000000000000000000000-a b', 'PATH_BAD_NAME'],
    ['/nix/store/00000000000000000000000000000000-a/', 'PATH_NOT_IN_STORE'],
    ['/nix/store/00000000000000000000000000000000-é', 'PATH_BAD_NAME'],
    ['/nix/store/00000000000000000000000000000000-' + 'a'.repeat(212), 'PATH_NAME_TOO_LONG'],
  ];
  it.each(cases)('%s → %s', (p, code) => {
    let err: unknown;
    try {
      parseStorePath(p);
    } catch (e) {
      err = e;
    }
    expect(isLazyError(err, code)).toBe(true);
  });
});
