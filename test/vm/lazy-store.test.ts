/**
 * A VM whose /nix/store is a lazystore mount: qemu's 9p server exports the host's FUSE mount
 * and the guest runs programs from store paths that nothing has built. The first guest read
 * makes the host daemon build the path (after importing busybox, its only input source, from
 * the .drv directory), and the guest sees the result. Real Nix's manifest is the oracle for
 * the built bytes (NarHash).
 */
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drvFile, fixtureDrv, manifest } from '../helpers/fixtures.js';
import { runGuest } from '../../src/vm/run-guest.js';
import { startLazyMount, type LazyMount } from './mount-process.js';

const single = fixtureDrv('single');
const chainA = fixtureDrv('chain.A');
const chainC = fixtureDrv('chain.C');
const out = (d: typeof single) => d.outputs.out?.path as string;
const hashOf = (p: string) => basename(p).slice(0, 32);

let work: string;
let state: string;
let mount: LazyMount | undefined;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vm-lazy-test-'));
  state = join(work, 'state');
  // A Nix-store-like directory: the .drv files and busybox, their only input source.
  const drvs = join(work, 'drvs');
  await mkdir(drvs);
  for (const label of ['single', 'chain.A', 'chain.B', 'chain.C']) {
    const d = fixtureDrv(label);
    await copyFile(drvFile(d), join(drvs, basename(d.drvPath)));
  }
  const busybox = manifest().busybox.storePath;
  await cp(busybox, join(drvs, basename(busybox)), { recursive: true, preserveTimestamps: true });
  mount = await startLazyMount(['--state', state, '--drvs', drvs]);
});

afterAll(async () => {
  await mount?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const isValid = (p: string) =>
  stat(join(state, 'info', `${hashOf(p)}.narinfo`)).then(
    () => true,
    () => false,
  );

async function narHash(p: string): Promise<string | undefined> {
  const text = await readFile(join(state, 'info', `${hashOf(p)}.narinfo`), 'utf8');
  return /^NarHash: (.*)$/m.exec(text)?.[1];
}

describe('a qemu guest with the lazy mount as its /nix/store', () => {
  it('runs programs from store paths that are built on the host when the guest reads them', async () => {
    const m = mount as LazyMount;
    const bb = `${manifest().busybox.storePath}/bin/busybox`;
    for (const p of [out(single), out(chainC), out(chainA)]) expect(await isValid(p)).toBe(false);

    const r = await runGuest({
      shares: [{ tag: 'store', hostPath: m.mountpoint, mountAt: '/nix/store' }],
      // busybox from the lazy store itself runs the unbuilt program; then a chain of three
      // derivations is built by one read, and the guest follows C's pointer to A.
      command: [
        `${bb} sh ${out(single)}/bin/hello`,
        `${out(single)}/bin/hello-abs`,
        `${bb} cat ${out(single)}/share/doc/README ${out(single)}/share/self-ref`,
        `a=$(${bb} cat ${out(chainC)}/ref-to-a | ${bb} sed 's/^A is at //')`,
        `${bb} cat "$a"`,
        `[ "$a" = ${out(chainA)} ] && echo chain-ok`,
      ].join('\n'),
      timeoutMs: 180_000,
    });
    expect(r.output).toBe(
      [
        'hi',
        'hi',
        'hello from fixture-single',
        `my own path: ${out(single)}`,
        'I am A',
        'chain-ok',
        '',
      ].join('\n'),
    );
    expect(r.exitCode).toBe(0);

    // the host built them (logs, registered paths) and the bytes are real Nix's
    for (const d of [single, chainC, chainA]) {
      expect(await isValid(out(d))).toBe(true);
      expect(await narHash(out(d))).toBe(d.outputs.out?.narHash);
      expect(m.log()).toContain(`built ${d.drvPath}`);
    }
    expect(await isValid(manifest().busybox.storePath)).toBe(true);
    console.log(`vm+lazy mount: command started after ${Math.round(r.bootMs)} ms, total ${Math.round(r.totalMs)} ms`);
  });
});
