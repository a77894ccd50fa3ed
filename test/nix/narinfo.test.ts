import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatHash } from '../../src/nix/hash.js';
import { countValidSigs, formatNarInfo, narInfoFingerprint, parseNarInfo, type NarInfo } from '../../src/nix/narinfo.js';
import { parsePublicKey } from '../../src/nix/signing.js';
import { FIXTURES, allOutputs, manifest } from '../helpers/fixtures.js';
import { thrownCode } from '../helpers/rejection.js';

const CORPUS = join(import.meta.dirname, '..', 'corpus', 'narinfo');

function narinfos(cache: string): [string, string][] {
  const dir = join(FIXTURES, cache);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.narinfo'))
    .map((f) => [f, readFileSync(join(dir, f), 'utf8')]);
}

const codeOf = thrownCode;

describe('narinfo files written by real Nix', () => {
  it.each(['cache', 'cache-none-signed'])('%s: every file parses and re-serialises byte-identically', (cache) => {
    const files = narinfos(cache);
    expect(files.length).toBeGreaterThan(1000);
    for (const [name, text] of files) {
      const info = parseNarInfo(text, name);
      expect(name).toBe(`${info.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`);
      expect(formatNarInfo(info)).toBe(text);
    }
  });

  it('agrees with the manifest (NarHash, NarSize, References)', () => {
    const outs = allOutputs();
    let checked = 0;
    for (const [name, text] of narinfos('cache')) {
      const info = parseNarInfo(text, name);
      const o = outs.get(info.storePath);
      if (!o) continue;
      expect(formatHash(info.narHash)).toBe(o.narHash);
      expect(info.narSize).toBe(o.narSize);
      expect(info.references.map((r) => `/nix/store/${r}`).sort()).toEqual([...o.references].sort());
      expect(info.ca ?? null).toBe(o.ca);
      checked++;
    }
    expect(checked).toBe(outs.size);
    expect(manifest().derivations.length).toBeGreaterThan(500);
  });

  it('signatures of cache-none-signed verify against keys/public.key; tampered ones do not', () => {
    const key = parsePublicKey(readFileSync(join(FIXTURES, 'keys', 'public.key'), 'utf8'));
    const other = parsePublicKey(`${key.name}:${Buffer.alloc(32, 7).toString('base64')}`);
    for (const [name, text] of narinfos('cache-none-signed')) {
      const info = parseNarInfo(text, name);
      expect(info.sigs).toHaveLength(1);
      expect(countValidSigs(info, [key])).toBe(1);
      expect(countValidSigs(info, [other])).toBe(0);
      expect(countValidSigs(info, [])).toBe(0);
      const tampered: NarInfo[] = [
        { ...info, narSize: info.narSize + 1 },
        { ...info, narHash: { algo: 'sha256', digest: Buffer.alloc(32) } },
        { ...info, storePath: info.storePath.replace(/-[^/]*$/, '-evil') as NarInfo['storePath'] },
        { ...info, references: [...info.references, '71fc7s32zl20dc955bhghy5dvalm7ndz-busybox'].filter((r, i, a) => a.indexOf(r) === i) },
        { ...info, sigs: [info.sigs[0]!.replace(/^[^:]*:./, (m) => m.slice(0, -1) + (m.endsWith('A') ? 'B' : 'A'))] },
      ];
      for (const t of tampered) {
        if (narInfoFingerprint(t) === narInfoFingerprint(info) && t.sigs === info.sigs) continue; // busybox already referenced
        expect(countValidSigs(t, [key])).toBe(0);
      }
    }
  });

  it('the unsigned cache has no signatures', () => {
    for (const [name, text] of narinfos('cache')) expect(parseNarInfo(text, name).sigs).toEqual([]);
  });
});

describe('narinfo details', () => {
  const minimal = 'StorePath: /nix/store/01y1yanwyrbkv4r2nlldndpcjnvfmyf6-x\nURL: nar/a.nar\nNarHash: sha256:01vqin5zdmmh6nq5aniz3nmsp9v3anwid6gn5rkjzv8g6h46g1xx\nNarSize: 296\n';
  it('defaults Compression to bzip2 and a missing References line to none, like Nix 2.8', () => {
    const info = parseNarInfo(minimal);
    expect(info.compression).toBe('bzip2');
    expect(info.references).toEqual([]);
    expect(formatNarInfo(info)).toContain('References: \n');
  });
  it('keeps unknown keys, repeated Sig lines, and reads unknown-deriver as none', () => {
    const text = minimal + 'Deriver: unknown-deriver\nSig: a:b\nSig: c:d\nX-Custom: hello: world\n';
    const info = parseNarInfo(text);
    expect(info.deriver).toBeUndefined();
    expect(info.sigs).toEqual(['a:b', 'c:d']);
    expect(info.extra).toEqual([['X-Custom', 'hello: world']]);
    expect(parseNarInfo(formatNarInfo(info))).toEqual(info);
  });
  it('fingerprint sorts references and makes them absolute', () => {
    const info = parseNarInfo(minimal + 'References: zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-b 00000000000000000000000000000000-a\n');
    expect(narInfoFingerprint(info)).toBe(
      '1;/nix/store/01y1yanwyrbkv4r2nlldndpcjnvfmyf6-x;sha256:01vqin5zdmmh6nq5aniz3nmsp9v3anwid6gn5rkjzv8g6h46g1xx;296;' +
        '/nix/store/00000000000000000000000000000000-a,/nix/store/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-b',
    );
  });
});

describe('malformed narinfo corpus', () => {
  const files = readdirSync(CORPUS).filter((f) => f.endsWith('.narinfo'));
  it('has cases', () => expect(files.length).toBeGreaterThanOrEqual(20));
  it.each(files)('%s', (f) => {
    const expected = f.slice(0, f.indexOf('.'));
    expect(codeOf(() => parseNarInfo(readFileSync(join(CORPUS, f), 'utf8'), f))).toBe(expected);
  });
});
