/**
 * The commands as users run them (compiled CLI, real processes): `copy --from` a Nix-written
 * cache, `copy --to` a cache that real Nix reads, `serve` read by real Nix; bad input is one
 * line on stderr and exit 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { FIXTURES, allOutputs, fixtureDrv } from '../helpers/fixtures.js';
import { freshNixStore, nixCopyFrom, nixNarHashes, nixVerify } from './nix-peer.js';

const ROOT = resolve(import.meta.dirname, '../..');
/** The bundled CLI that bin/lazystore runs. */
const MAIN = join(ROOT, 'dist/bundle/run.cjs');
let tmp: string;

/** Builds dist/ when a source of these commands is newer than its compiled file. */
async function ensureBuilt(): Promise<void> {
  const pairs = ['cli/commands/copy', 'cli/commands/serve', 'substitute/serve', 'substitute/export-cache', 'substitute/copy-closure', 'substitute/substituters'];
  for (const p of pairs) {
    const js = await stat(join(ROOT, 'dist/src', `${p}.js`)).catch(() => undefined);
    const ts = await stat(join(ROOT, 'src', `${p}.ts`));
    if (!js || js.mtimeMs < ts.mtimeMs) {
      await execa('npm', ['run', 'build'], { cwd: ROOT, reject: false });
      return;
    }
  }
}

const lazystore = (args: string[], opts: { reject?: boolean } = {}) => execa('node', [MAIN, ...args], { reject: opts.reject ?? true });

beforeAll(async () => {
  await ensureBuilt();
  tmp = await mkdtemp(join(tmpdir(), 'lazystore-cli-'));
}, 180_000);
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const C = () => fixtureDrv('chain.C').outputs.out!.path;
const S = () => fixtureDrv('single').outputs.out!.path;

describe('lazystore copy and serve', () => {
  it('copy --from (signed, key trusted), copy --to, then real nix copy reads our cache', async () => {
    const state = join(tmp, 'state1');
    const pub = (await readFile(join(FIXTURES, 'keys', 'public.key'), 'utf8')).trim();
    const r = await lazystore(['copy', '--state', state, '--from', `file://${FIXTURES}/cache-none-signed`, '--trusted-key', pub, C(), S()]);
    expect(r.stderr).toMatch(/copied 3 paths/);
    const info = JSON.parse((await lazystore(['path-info', '--state', state, '--json', C()])).stdout) as { narHash: string }[];
    expect(info[0]!.narHash).toBeDefined();

    const dir = join(tmp, 'out-cache');
    await lazystore(['copy', '--state', state, '--to', `file://${dir}`, '--compression', 'zstd', '--sign', join(FIXTURES, 'keys', 'secret.key'), C(), S()]);
    const nixStore = await freshNixStore(tmp);
    await nixCopyFrom(`file://${dir}`, nixStore, [C(), S()], { publicKey: pub });
    await nixVerify(nixStore);
    const hashes = await nixNarHashes(nixStore, [C(), S()]);
    expect(hashes.get(C())).toBe(allOutputs().get(C())!.narHash);
  });

  it('refuses an unsigned cache without --no-check-sigs, naming the path', async () => {
    const state = join(tmp, 'state2');
    const r = await lazystore(['copy', '--state', state, '--from', `file://${FIXTURES}/cache`, S()], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(S());
    expect(r.stderr).toMatch(/not trusted/);
    await lazystore(['copy', '--state', state, '--from', `file://${FIXTURES}/cache`, '--no-check-sigs', S()]);
  });

  it('serve: real nix copy --from http:// reads the store', async () => {
    const state = join(tmp, 'state3');
    await lazystore(['copy', '--state', state, '--from', `file://${FIXTURES}/cache`, '--no-check-sigs', C()]);
    const proc = execa('node', [MAIN, 'serve', '--state', state, '--listen', '127.0.0.1:0'], { reject: false });
    try {
      const url = await new Promise<string>((resolveUrl, reject) => {
        proc.stdout!.once('data', (d: Buffer) => resolveUrl(d.toString().trim()));
        proc.once('exit', () => reject(new Error('serve exited')));
      });
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const nixStore = await freshNixStore(tmp);
      await nixCopyFrom(url, nixStore, [C()]);
      await nixVerify(nixStore);
      expect((await nixNarHashes(nixStore, [C()])).get(C())).toBe(allOutputs().get(C())!.narHash);
    } finally {
      proc.kill('SIGTERM');
      const r = await proc;
      expect(r.exitCode).toBe(0);
    }
  });

  it.each([
    [['copy', S()], /exactly one of --from/],
    [['copy', '--from', 'ftp://x', S()], /unsupported binary cache URL/],
    [['copy', '--to', 'http://x', S()], /file:\/\/ caches only/],
    [['copy', '--to', '/tmp/x', '--compression', 'lz4', S()], /unsupported compression/],
    [['serve', '--listen', 'nope:port'], /bad listen address/],
  ])('bad input %j: one line, exit 1', async (args, msg) => {
    const r = await lazystore([...args, '--state', join(tmp, 'state4')], { reject: false });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(msg);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
