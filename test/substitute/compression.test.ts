/** compress/decompress through the native tools: round trips, corrupt input, early stop, cancel. */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { compress } from '../../src/substitute/compress.js';
import { decompress } from '../../src/substitute/decompress.js';

async function collect(s: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}
async function* chunks(buf: Buffer, size = 7919): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
// Half random (incompressible), half repetitive, 3 MiB: several pipe buffers each way.
const data = Buffer.concat([randomBytes(1.5 * 2 ** 20), Buffer.alloc(1.5 * 2 ** 20, 'nix-archive-1')]);

describe.each(['xz', 'zstd', 'bzip2'] as const)('%s', (c) => {
  it('round-trips through compress and decompress', async () => {
    const packed = await collect(compress(chunks(data), c));
    expect(packed.length).toBeLessThan(data.length);
    expect((await collect(decompress(chunks(packed), c))).equals(data)).toBe(true);
  });

  it('reads what the command-line tool wrote', async () => {
    const { stdout } = await execa(c, ['-c'], { input: data, encoding: 'buffer' });
    expect((await collect(decompress(chunks(Buffer.from(stdout)), c))).equals(data)).toBe(true);
  });

  it('rejects corrupt and truncated input with SUBST_DECOMPRESS', async () => {
    const packed = await collect(compress(chunks(data), c));
    const flipped = Buffer.from(packed);
    const mid = Math.floor(flipped.length / 2);
    flipped[mid] = flipped[mid]! ^ 0xff;
    await expect(collect(decompress(chunks(flipped), c))).rejects.toMatchObject({ code: 'SUBST_DECOMPRESS' });
    await expect(collect(decompress(chunks(packed.subarray(0, packed.length - 100)), c))).rejects.toMatchObject({
      code: 'SUBST_DECOMPRESS',
    });
  });

  it('passes a source error through instead of the tool error', async () => {
    const packed = await collect(compress(chunks(data), c));
    async function* failing(): AsyncGenerator<Buffer> {
      yield packed.subarray(0, 1000);
      throw Object.assign(new Error('link down'), { code: 'ECONNRESET' });
    }
    await expect(collect(decompress(failing(), c))).rejects.toThrow('link down');
  });

  it('stops the tool when the reader stops early or the signal aborts', async () => {
    const packed = await collect(compress(chunks(data), c));
    for await (const _ of decompress(chunks(packed), c)) break;
    const ctl = new AbortController();
    const run = (async () => {
      for await (const _ of decompress(chunks(packed, 1024), c, { signal: ctl.signal })) ctl.abort();
    })();
    await expect(run).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('small xz NARs (decoded in-process when NarSize is small)', () => {
  const small = Buffer.from(Array.from({ length: 4000 }, (_, i) => `path ${i}\n`).join(''));

  it('decodes them to the same bytes', async () => {
    const packed = await collect(compress(chunks(small), 'xz'));
    expect((await collect(decompress(chunks(packed, 100), 'xz', { expectedSize: small.length }))).equals(small)).toBe(true);
  });

  it('falls back to the tool when the size promise is wrong, so the size check sees the real stream', async () => {
    const packed = await collect(compress(chunks(small), 'xz'));
    expect((await collect(decompress(chunks(packed), 'xz', { expectedSize: small.length - 10 }))).equals(small)).toBe(true);
    expect((await collect(decompress(chunks(packed), 'xz', { expectedSize: small.length + 10 }))).equals(small)).toBe(true);
  });

  it('reports corrupt and truncated data as the tool does', async () => {
    const packed = await collect(compress(chunks(small), 'xz'));
    const flipped = Buffer.from(packed);
    flipped[40] = flipped[40]! ^ 0x55;
    await expect(collect(decompress(chunks(flipped), 'xz', { expectedSize: small.length }))).rejects.toMatchObject({ code: 'SUBST_DECOMPRESS' });
    await expect(collect(decompress(chunks(packed.subarray(0, 50)), 'xz', { expectedSize: small.length }))).rejects.toMatchObject({
      code: 'SUBST_DECOMPRESS',
    });
  });

  it('does not buffer an endless stream for a small promise', async () => {
    async function* endless(): AsyncGenerator<Buffer> {
      for (;;) yield Buffer.alloc(65536, 1);
    }
    await expect(collect(decompress(endless(), 'xz', { expectedSize: 1000 }))).rejects.toMatchObject({ code: 'SUBST_DECOMPRESS' });
  });
});

it('refuses unknown compressions', () => {
  expect(() => decompress(chunks(data), 'br')).toThrow(expect.objectContaining({ code: 'SUBST_COMPRESSION_UNSUPPORTED' }));
});
