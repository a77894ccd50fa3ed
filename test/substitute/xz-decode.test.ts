/**
 * The in-process xz decoder against every NAR real Nix compressed in the fixture cache (the
 * NAR hash must be the manifest's), against `xz` itself on varied data and presets, and
 * against corrupt input (it must throw, never hang or overrun).
 */
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import fc from 'fast-check';
import { FIXTURES } from '../helpers/fixtures.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { formatHash } from '../../src/nix/hash.js';
import { xzDecompressSync, XzUnsupported } from '../../src/substitute/xz-decode.js';

async function xz(data: Buffer, args: string[] = []): Promise<Buffer> {
  const r = await execa('xz', ['-c', ...args], { input: data, encoding: 'buffer' });
  return Buffer.from(r.stdout);
}

describe('xzDecompressSync', () => {
  it('decodes every NAR of the fixture cache to its NarHash', async () => {
    const dir = join(FIXTURES, 'cache');
    const infos = (await readdir(dir)).filter((f) => f.endsWith('.narinfo'));
    expect(infos.length).toBeGreaterThan(1000);
    for (const f of infos) {
      const info = parseNarInfo(await readFile(join(dir, f), 'utf8'));
      const nar = xzDecompressSync(await readFile(join(dir, info.url)), info.narSize);
      expect(nar.length, f).toBe(info.narSize);
      expect(formatHash({ algo: 'sha256', digest: createHash('sha256').update(nar).digest() }), f).toBe(formatHash(info.narHash));
    }
  });

  it.each([
    ['random', () => randomBytes(300_000), []],
    ['repetitive', () => Buffer.alloc(500_000, 'abcabcabd'), []],
    ['text, -9e', () => Buffer.from(Array.from({ length: 20000 }, (_, i) => `line ${i % 977} of ${i * 7}\n`).join('')), ['-9e']],
    ['mixed, -0', () => Buffer.concat([randomBytes(70_000), Buffer.alloc(90_000, 7), randomBytes(5)]), ['-0']],
    ['lc=0 lp=2 pb=0', () => Buffer.alloc(100_000, 'nix-archive-1\0\0\0'), ['--lzma2=preset=6,lc=0,lp=2,pb=0']],
    ['empty', () => Buffer.alloc(0), []],
    ['crc32 check, two streams', () => Buffer.from('two streams'), ['-C', 'crc32']],
  ] as const)('matches xz on %s data', async (name, make, args) => {
    const data = make();
    let packed = await xz(data, [...args]);
    let want = data;
    if (name.includes('two streams')) {
      packed = Buffer.concat([packed, Buffer.alloc(8), packed]);
      want = Buffer.concat([data, data]);
    }
    expect(xzDecompressSync(packed, want.length).equals(want)).toBe(true);
  });

  it('reports filters it does not decode as unsupported (the native tool takes over)', async () => {
    const packed = await xz(randomBytes(1000), ['--x86', '--lzma2']);
    expect(() => xzDecompressSync(packed, 1000)).toThrow(XzUnsupported);
  });

  it('refuses output beyond maxSize', async () => {
    const packed = await xz(Buffer.alloc(10_000, 1));
    expect(() => xzDecompressSync(packed, 9_999)).toThrow(expect.objectContaining({ code: 'SUBST_DECOMPRESS' }));
  });

  it('throws (never hangs) on truncated and mutated input', async () => {
    const data = Buffer.from(Array.from({ length: 3000 }, (_, i) => `entry ${i} ${i * i}\n`).join(''));
    const packed = await xz(data);
    for (let cut = 0; cut < packed.length; cut += 7) {
      expect(() => xzDecompressSync(packed.subarray(0, cut), data.length)).toThrow();
    }
    fc.assert(
      fc.property(fc.integer({ min: 12, max: packed.length - 13 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
        const m = Buffer.from(packed);
        m[at] = m[at]! ^ x;
        try {
          const out = xzDecompressSync(m, data.length);
          // The check fields are skipped: a flip there still decodes, and the NAR hash catches the rest.
          return out.length <= data.length;
        } catch (e) {
          return e instanceof XzUnsupported || (e as { code?: string }).code === 'SUBST_DECOMPRESS';
        }
      }),
      { numRuns: 2000 },
    );
  });
});
