/**
 * A VM whose /nix/store is a lazystore mount: qemu's 9p server exports the host's FUSE mount
 * and the guest runs programs from store paths that nothing has built. The first guest read
 * makes the host daemon build the path (after importing busybox, its only input source, from
 * the .drv directory), and the guest sees the result. Real Nix's manifest is the oracle for
 * the built bytes (NarHash).
 */
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drvFile, FIXTURES, fixtureDrv, manifest } from '../helpers/fixtures.js';
import { runGuest } from '../../src/vm/run-guest.js';
import { startLazyMount, type LazyMount } from './mount-process.js';

const single = fixtureDrv('single');
const chainA = fixtureDrv('chain.A');
const multi = fixtureDrv('multi');
const chainC = fixtureDrv('chain.C');
const out = (d: typeof single) => d.outputs.out?.path as string;
const hashOf = (p: string) => basename(p).slice(0, 32);

let work: string;
let state: string;
let mount: LazyMount | undefined;

interface Instantiated {
  drvPath: string;
  out: string;
}
let failing: Instantiated;
let slow: Instantiated;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'vm-lazy-test-'));
  // as root, builds run as an unprivileged build uid that must traverse to the state dir
  await chmod(work, 0o755);
  state = join(work, 'state');
  // A Nix chroot store holding a derivation whose build fails, one that takes 6 s (and
  // busybox, their source), plus the fixtures' .drv files: lazystore learns derivations and
  // imports sources from it.
  const chroot = join(work, 'chroot');
  const drvs = join(chroot, 'nix', 'store');
  const mk = `(import ${FIXTURES}/nix/lib.nix { salt = "${work}"; }).mk`;
  const expr =
    `{ fails = ${mk} { name = "vm-fails"; script = "echo failing on purpose; exit 3"; }; ` +
    `slow = ${mk} { name = "vm-slow"; script = "sleep 6; mkdir $out; echo slow > $out/x"; }; }`;
  const env = { ...process.env, NIX_REMOTE: '', NIX_CONFIG: '' };
  const nix = (cmd: string, args: string[]) =>
    execFileSync(cmd, ['--store', chroot, ...args], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const [failDrv, slowDrv] = nix('nix-instantiate', ['-E', expr]).split('\n') as [string, string];
  failing = { drvPath: failDrv, out: nix('nix-store', ['--query', '--outputs', failDrv]) };
  slow = { drvPath: slowDrv, out: nix('nix-store', ['--query', '--outputs', slowDrv]) };
  for (const label of ['single', 'multi', 'chain.A', 'chain.B', 'chain.C']) {
    const d = fixtureDrv(label);
    await copyFile(drvFile(d), join(drvs, basename(d.drvPath)));
  }
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
        // errors pass through 9p: a failed build is EIO, an unknown path ENOENT
        `${bb} cat ${failing.out}/anything; echo "rc=$?"`,
        `${bb} cat /nix/store/00000000000000000000000000000000-unknown/x; echo "rc=$?"`,
      ].join('\n'),
      timeoutMs: 180_000,
    });
    const lines = r.output.split('\n');
    expect(lines.slice(0, 6)).toEqual([
      'hi',
      'hi',
      'hello from fixture-single',
      `my own path: ${out(single)}`,
      'I am A',
      'chain-ok',
    ]);
    expect(lines.slice(6)).toEqual([
      expect.stringMatching(/^cat: .*anything.*Input\/output error$/),
      'rc=1',
      expect.stringMatching(/^cat: .*unknown\/x.*No such file or directory$/),
      'rc=1',
      '',
    ]);
    expect(r.exitCode).toBe(0);
    expect(m.log()).toMatch(new RegExp(`failed .*${basename(failing.drvPath).replace('.', '\\.')}|failed ${failing.out}`));

    // the host built them (logs, registered paths) and the bytes are real Nix's
    for (const d of [single, chainC, chainA]) {
      expect(await isValid(out(d))).toBe(true);
      expect(await narHash(out(d))).toBe(d.outputs.out?.narHash);
      expect(m.log()).toContain(`built ${d.drvPath}`);
    }
    expect(await isValid(manifest().busybox.storePath)).toBe(true);
    console.log(`vm+lazy mount: command started after ${Math.round(r.bootMs)} ms, total ${Math.round(r.totalMs)} ms`);
  });

  it('keeps serving other paths to the guest while one read waits for a slow build', async () => {
    const m = mount as LazyMount;
    const bb = `${manifest().busybox.storePath}/bin/busybox`;
    // The slow read starts first; if 9p or the mount serialised requests, or the slow build
    // held up lookups of other new names in /nix/store, "fast" would print after "slow" (the
    // build sleeps 6 s; fixture-multi, not looked up before, builds in well under a second).
    const r = await runGuest({
      shares: [{ tag: 'store', hostPath: m.mountpoint, mountAt: '/nix/store' }],
      command: [
        `( ${bb} cat ${slow.out}/x ) &`,
        `${bb} sleep 1`,
        `${bb} cat ${out(multi)}/lib/libfixture.txt && echo fast`,
        'wait',
      ].join('\n'),
      timeoutMs: 180_000,
    });
    expect(r.output).toBe('library payload\nfast\nslow\n');
    expect(m.log()).toContain(`built ${slow.drvPath}`);
    expect(m.log()).toContain(`built ${multi.drvPath}`);
  });
});
