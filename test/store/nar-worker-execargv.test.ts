/**
 * The NAR worker's source is CommonJS evaluated from a string; a worker that inherited the
 * parent's `--input-type=module` would run it as ESM ("require is not defined"). A real child
 * process started that way dumps and restores a tree through the workers.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpPath } from '../../src/store/nar-dump.js';
import { buildPrivateDist, removePrivateDist } from './store-child.js';

let dist: string;
let dir: string;
beforeAll(() => {
  dist = buildPrivateDist();
  dir = mkdtempSync(join(tmpdir(), 'lazystore-execargv-'));
}, 120_000);
afterAll(() => {
  removePrivateDist(dist);
  rmSync(dir, { recursive: true, force: true });
});

describe('NAR workers in a process started with node --input-type=module -e', () => {
  it('dump and restore run (the worker does not inherit --input-type)', async () => {
    const src = join(dir, 'src');
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'a'), 'hello\n');
    writeFileSync(join(src, 'sub', 'big'), Buffer.alloc(3 << 20, 1));
    const script = `
      const { dumpPath } = await import(${JSON.stringify(join(dist, 'src/store/nar-dump.js'))});
      const { restoreNar } = await import(${JSON.stringify(join(dist, 'src/store/nar-restore.js'))});
      const r = await restoreNar(dumpPath(${JSON.stringify(src)}), ${JSON.stringify(join(dir, 'out'))});
      process.stdout.write(JSON.stringify({ narSize: r.narSize, hash: Buffer.from(r.narHash.digest).toString('hex') }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    const got = JSON.parse(out) as { narSize: number; hash: string };
    const { createHash } = await import('node:crypto');
    const h = createHash('sha256');
    let size = 0;
    for await (const c of dumpPath(src)) {
      h.update(c);
      size += c.length;
    }
    expect(got).toEqual({ narSize: size, hash: h.digest('hex') });
  }, 90_000);
});
