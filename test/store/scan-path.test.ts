import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { scanPath } from '../../src/store/scan-path.js';
import { formatHash } from '../../src/nix/hash.js';
import { parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { isLazyError } from '../../src/errors.js';
import { allOutputs, manifest } from '../helpers/fixtures.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lazystore-scan-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('scanPath', () => {
  it('finds exactly the references real Nix registered for every fixture output', async () => {
    const outs = allOutputs();
    const candidates = [...outs.keys(), manifest().busybox.storePath].map((p) => parseStorePath(p));
    for (const [path, o] of outs) {
      const r = await scanPath(path, { refCandidates: candidates });
      expect({ path, narHash: formatHash(r.narHash), narSize: r.narSize, references: [...r.references].sort() }).toEqual({
        path,
        narHash: o.narHash,
        narSize: o.narSize,
        references: [...o.references].sort(),
      });
    }
  });

  it('finds hash parts in file names and symlink targets, not only contents', async () => {
    const [a, b, c, d] = [...allOutputs().keys()].slice(0, 4).map((p) => parseStorePath(p)) as [StorePath, StorePath, StorePath, StorePath];
    const root = join(tmp, 'refs');
    mkdirSync(root);
    writeFileSync(join(root, `named-${a.slice(11, 43)}`), 'no refs inside');
    symlinkSync(`${b}/bin/sh`, join(root, 'link'));
    writeFileSync(join(root, 'text'), `prefix${c}suffix`);
    const r = await scanPath(root, { refCandidates: [a, b, c, d] });
    expect([...r.references].sort()).toEqual([a, b, c].sort());
    const none = await scanPath(root);
    expect(none.references.size).toBe(0);
    expect(formatHash(none.narHash)).toBe(formatHash(r.narHash));
  });

  it('runs scans in parallel and reports errors with codes', async () => {
    const outs = [...allOutputs().keys()].slice(0, 40);
    const rs = await Promise.all(outs.map((p) => scanPath(p)));
    expect(rs.map((r) => r.narSize)).toEqual(outs.map((p) => allOutputs().get(p)!.narSize));
    const e = await scanPath(join(tmp, 'nope')).catch((x: unknown) => x);
    expect(isLazyError(e, 'STORE_IO')).toBe(true);
  });
});
