/** `lazystore nar …` through the built CLI, against nix-store --dump, nix-hash and nix nar ls. */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifest } from '../helpers/fixtures.js';
import { ensureBuiltCli } from '../helpers/built-cli.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const CORPUS = join(ROOT, 'test', 'corpus', 'nar');
const work = mkdtempSync(join(tmpdir(), 'lazystore-nar-cli-'));
const busybox = manifest().busybox;

function lazystore(args: string[], input?: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync('node', [MAIN, ...args], { maxBuffer: 256 << 20, ...(input ? { input } : {}) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}
const nixDump = (p: string): Buffer => execFileSync('nix-store', ['--dump', p], { maxBuffer: 1 << 30 });

beforeAll(() => {
  expect(ensureBuiltCli('dist/src/cli/commands/nar.js', ['src/cli/commands/nar.ts', 'src/cli/main.ts', 'src/nix/nar-reader.ts', 'src/nix/nar-listing.ts', 'src/store/nar-restore.ts', 'src/store/nar-worker-main.ts', 'src/store/nar-worker-pool.ts'])).toBe(true);
});
afterAll(() => {
  spawnSync('chmod', ['-R', 'u+w', work]);
  rmSync(work, { recursive: true, force: true });
});

describe('lazystore nar', () => {
  it('dump writes what nix-store --dump writes', () => {
    const r = lazystore(['nar', 'dump', busybox.storePath]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.equals(nixDump(busybox.storePath))).toBe(true);
  });

  it('hash prints the NAR hash and size real Nix registered', () => {
    const o = manifest().derivations[0]!.outputs.out!;
    const r = lazystore(['nar', 'hash', o.path]);
    expect(r.stdout.toString()).toBe(`${o.narHash} ${o.narSize}\n`);
  });

  it('restore unpacks a NAR from stdin that nix-hash hashes back to the same NAR hash', () => {
    const dest = join(work, 'bb');
    const r = lazystore(['nar', 'restore', dest], nixDump(busybox.storePath));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(`sha256:${execFileSync('nix-hash', ['--type', 'sha256', '--base32', dest]).toString().trim()}`).toBe(busybox.narHash);
    expect(statSync(join(dest, 'bin', 'busybox')).mode & 0o7777).toBe(0o555);
  });

  it('restore fails with one line naming the problem and its byte offset, and leaves no partial tree', () => {
    const dest = join(work, 'bad');
    const r = lazystore(['nar', 'restore', dest], readFileSync(join(CORPUS, 'NAR_UNSORTED.descending.nar')));
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^lazystore: entry 'a' after 'b' at NAR byte \d+\n$/);
    expect(existsSync(dest)).toBe(false);
    const existing = join(work, 'existing');
    mkdirSync(existing);
    writeFileSync(join(existing, 'keep'), 'x');
    const r2 = lazystore(['nar', 'restore', existing], nixDump(busybox.storePath));
    expect(r2.status).toBe(1);
    expect(r2.stderr.split('\n')).toHaveLength(2);
    expect(readFileSync(join(existing, 'keep'), 'utf8')).toBe('x');
  });

  it('ls --json prints what nix nar ls --json -R prints; ls shows offsets', () => {
    const nar = nixDump(busybox.storePath);
    const file = join(work, 'bb.nar');
    writeFileSync(file, nar);
    const theirs = execFileSync('nix', ['--extra-experimental-features', 'nix-command', 'nar', 'ls', '--json', '-R', file, '/']);
    const ours = lazystore(['nar', 'ls', '--json'], nar);
    expect(JSON.parse(ours.stdout.toString())).toEqual(JSON.parse(theirs.toString()));
    const text = lazystore(['nar', 'ls'], nar).stdout.toString();
    expect(text).toMatch(/^x +1982256 @400 +\/bin\/busybox$/m);
  });

  it('bad usage and missing paths exit 1 with one line', () => {
    for (const args of [['nar'], ['nar', 'frob'], ['nar', 'dump'], ['nar', 'dump', join(work, 'missing')], ['nar', 'hash', join(work, 'missing')]]) {
      const r = lazystore(args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr, args.join(' ')).toMatch(/^lazystore: [^\n]+\n$/);
    }
  });
});
