/**
 * The sandbox against real Nix 2.8: what a builder sees (sandbox-env.txt), escape attempts,
 * the network only for fixed-output derivations, passAsFile, failures, timeouts, cancellation.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { buildDerivation } from '../../src/build/build-derivation.js';
import { parseDerivation } from '../../src/nix/derivation.js';
import { formatHash } from '../../src/nix/hash.js';
import { baseName, parseStorePath, type StorePath } from '../../src/nix/store-path.js';
import { FIXTURES } from '../helpers/fixtures.js';
import { busyboxPath, freshEnv, instantiate, salt, type Env } from '../realise/helpers.js';
import { nixRealise } from './nix-oracle.js';
import { rejection } from '../helpers/rejection.js';
import { probeSections as sections } from './probe-sections.js';

const NIX = join(import.meta.dirname, 'nix');



describe('sandbox', () => {
  let env: Env;
  let server: Server;
  let port = 0;
  let connections = 0;
  beforeAll(async () => {
    env = await freshEnv({ maxJobs: 2, failureTtlMs: 0 });
    // Raw TCP, not HTTP: static busybox's wget segfaults on this machine (glibc NSS), its nc works.
    server = createServer((sock) => {
      connections++;
      sock.on('error', () => undefined);
      sock.end('hello from the host\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    server.close();
    await env.cleanup();
  });

  async function build(attr: string, extra: string[] = []): Promise<{ drv: StorePath; outs: Map<string, StorePath> }> {
    const [drv] = instantiate(join(NIX, 'sandbox.nix'), ['-A', attr, '--argstr', 'salt', salt(), ...extra]);
    await env.known.add(drv!);
    const infos = await env.realiser.realiseDrv(drv!);
    return { drv: drv!, outs: new Map([...infos].map(([k, v]) => [k, v.path])) };
  }
  const contents = (p: StorePath | undefined): Promise<string> => readFile(env.store.realPath(p!), 'utf8');

  it("shows the builder exactly what real Nix's sandbox shows", async () => {
    const [drv] = instantiate(join(FIXTURES, 'nix', 'probe.nix'), ['--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const out = (await env.realiser.realiseDrv(drv!)).get('out')!.path;
    const ours = sections(await contents(out));
    const nix = sections(await readFile(join(FIXTURES, 'sandbox-env.txt'), 'utf8'));
    const volatile = (l: string): boolean => l.startsWith('out=') || l.startsWith('salt=');
    expect(ours.get('env')!.filter((l) => !volatile(l))).toEqual(nix.get('env')!.filter((l) => !volatile(l)));
    expect(ours.get('env')).toContain(`out=${out}`);
    for (const s of ['id', '/etc', '/etc/passwd', '/etc/group', 'hostname', 'pwd']) expect(ours.get(s), s).toEqual(nix.get(s));
    expect(ours.get('/nix/store')).toEqual([baseName(busyboxPath()), baseName(out)].sort());
    // bwrap's devtmpfs has one extra entry, /dev/core (→ /proc/kcore, unreadable in the sandbox)
    expect(ours.get('/dev')!.filter((d) => d !== 'core')).toEqual(nix.get('/dev'));
    const rootNames = (ls: string[]): string[] => ls.filter((l) => !l.startsWith('total')).map((l) => `${l.slice(0, 10)} ${l.split(/\s+/).pop()!}`);
    // same top-level entries with the same modes (owners differ: Nix shows its nobody/nixbld mapping)
    const entries = (s: string): string[] => rootNames(s === 'ours' ? ours.get('ls -la /')! : nix.get('ls -la /')!).filter((l) => !/ \.\.?$/.test(l));
    expect(entries('ours')).toEqual(entries('nix'));
  });

  it('blocks every escape attempt, and nothing written inside reaches the host or the store', async () => {
    connections = 0;
    const { drv, outs } = await build('escape', ['--argstr', 'port', String(port)]);
    const lines = (await contents(outs.get('out'))).trim().split('\n');
    expect(lines.at(-1)).toBe('done');
    expect(lines.filter((l) => !l.endsWith(': blocked') && l !== 'done')).toEqual([]);
    expect(lines.length).toBeGreaterThanOrEqual(13);
    expect(connections).toBe(0);
    expect(existsSync('/tmp/lazystore-escape-marker')).toBe(false);
    const inputFile = (await env.known.load(drv)).inputSrcs.find((s) => s.endsWith('-sandbox-input.txt'))!;
    expect(await readFile(env.store.realPath(parseStorePath(inputFile)), 'utf8')).toBe('precious\n');
    expect(existsSync(join(busyboxPath(), 'planted'))).toBe(false);
    expect(existsSync(join(env.store.realPath(busyboxPath()), 'planted'))).toBe(false);
    const planted = parseStorePath('/nix/store/00000000000000000000000000000000-planted');
    expect(await env.store.isValid(planted)).toBe(false);
    expect(existsSync(env.store.realPath(planted))).toBe(false);
    expect(existsSync('/nix/store/00000000000000000000000000000000-planted')).toBe(false);
  });

  it('gives a fixed-output derivation the network (positive control for the probes above)', async () => {
    connections = 0;
    const { outs } = await build('fodNet', ['--argstr', 'port', String(port)]);
    expect(await contents(outs.get('out'))).toBe('hello from the host\n');
    expect(connections).toBeGreaterThan(0);
  });

  it('passAsFile: same output as real Nix', async () => {
    const { drv, outs } = await build('passAsFile');
    const want = nixRealise(drv);
    const info = (await env.store.queryPathInfo(outs.get('out')!))!;
    const o = want.get(info.path)!;
    expect(o).toBeDefined();
    expect(formatHash(info.narHash, 'nix32')).toBe(o.narHash);
    expect(info.narSize).toBe(o.narSize);
  });

  it('non-UTF-8 bytes in the environment reach the builder unchanged (same output as real Nix)', async () => {
    const [drv] = instantiate(join(NIX, 'bytes.nix'), ['-A', 'bytes', '--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const info = (await env.realiser.realiseDrv(drv!)).get('out')!;
    expect(await readFile(env.store.realPath(info.path))).toEqual(Buffer.from('latin1 \xe9\xff\xfe and utf8 \xc3\xa9 and tab\t', 'latin1'));
    const want = nixRealise(drv!).get(info.path)!;
    expect(formatHash(info.narHash, 'nix32')).toBe(want.narHash);
  });

  it('structured attributes are refused with BUILD_UNSUPPORTED, before anything runs', async () => {
    const [drv] = instantiate(join(NIX, 'bytes.nix'), ['-A', 'structured', '--argstr', 'salt', salt()]);
    expect((await rejection(env.known.add(drv!))).code).toBe('KNOWN_UNSUPPORTED');
    const parsed = parseDerivation(await readFile(drv!));
    const out = parseStorePath(parsed.outputs.get('out')!.path);
    const e = await rejection(buildDerivation(env.store, { drvPath: drv!, drv: parsed, outputs: new Map([['out', out]]), inputPaths: [busyboxPath()], cores: 1 }));
    expect(e.code).toBe('BUILD_UNSUPPORTED');
    expect(e.message).toContain('__json');
    expect(existsSync(env.store.logPath(drv!))).toBe(false);
  });

  it('a failing builder: BUILD_FAILED with the drv and its log, which holds stdout and stderr; nothing registered', async () => {
    const [drv] = instantiate(join(NIX, 'sandbox.nix'), ['-A', 'fail', '--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const e = await rejection(env.realiser.realiseDrv(drv!));
    expect(e.code).toBe('BUILD_FAILED');
    expect(e.message).toBe(`builder for '${drv}' failed with exit code 3`);
    expect(e.details.drvPath).toBe(drv);
    expect(e.details.logPath).toBe(env.store.logPath(drv!));
    expect(await readFile(env.store.logPath(drv!), 'utf8')).toBe('about to fail\non stderr\n');
    const out = (await env.known.load(drv!)).outputs.get('out')!.path;
    expect(await env.store.isValid(parseStorePath(out))).toBe(false);
  });

  it('a builder that makes no output fails', async () => {
    const [drv] = instantiate(join(NIX, 'sandbox.nix'), ['-A', 'noOutput', '--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const e = await rejection(env.realiser.realiseDrv(drv!));
    expect(e.code).toBe('BUILD_NO_OUTPUT');
    expect(await readFile(env.store.logPath(drv!), 'utf8')).toBe('I make nothing\n');
  });

  it("a fixed-output derivation with a wrong hash fails with real Nix's message; nothing registered", async () => {
    const [drv] = instantiate(join(NIX, 'bad-fod.nix'), ['--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const e = await rejection(env.realiser.realiseDrv(drv!));
    expect(e.code).toBe('BUILD_HASH_MISMATCH');
    expect(e.message).toBe(
      `hash mismatch in fixed-output derivation '${drv}':\n` +
        '  specified: sha256-pcVEqOyg5v6scTX7xCcEYjRWF4KF5GZxXkdR5/ipGkQ=\n' +
        '     got:    sha256-nX42Fhm0FEE5pQN5CU60Un/ZRwLV6yMBW5/gkOwBGz8=',
    );
    // real Nix says the same (its error printer indents continuation lines)
    let nixErr = '';
    try {
      nixRealise(drv!);
    } catch (err) {
      nixErr = String((err as { stderr?: unknown }).stderr ?? '');
    }
    expect(nixErr).toMatch(/specified: sha256-pcVEqOyg5v6scTX7xCcEYjRWF4KF5GZxXkdR5\/ipGkQ=/);
    expect(nixErr).toMatch(/got: +sha256-nX42Fhm0FEE5pQN5CU60Un\/ZRwLV6yMBW5\/gkOwBGz8=/);
    const out = (await env.known.load(drv!)).outputs.get('out')!.path;
    expect(await env.store.isValid(parseStorePath(out))).toBe(false);
  });

  it('the nondeterministic control builds', async () => {
    const { outs } = await build('nondet');
    expect((await contents(outs.get('out'))).trim()).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('--timeout kills the build', async () => {
    const [drv] = instantiate(join(NIX, 'sandbox.nix'), ['-A', 'sleeper', '--argstr', 'salt', salt()]);
    const local = await freshEnv({ timeoutMs: 300 });
    try {
      await local.known.add(drv!);
      const e = await rejection(local.realiser.realiseDrv(drv!));
      expect(e.code).toBe('BUILD_TIMEOUT');
      expect(e.message).toBe(`building of '${drv}' timed out after 0 seconds`);
      expect(await readFile(local.store.logPath(drv!), 'utf8')).toBe('started\n');
    } finally {
      await local.cleanup();
    }
  });

  it('--max-silent-time kills a build that prints nothing', async () => {
    const [drv] = instantiate(join(NIX, 'sandbox.nix'), ['-A', 'silent', '--argstr', 'salt', salt()]);
    const local = await freshEnv({ maxSilentMs: 400 });
    try {
      await local.known.add(drv!);
      const e = await rejection(local.realiser.realiseDrv(drv!));
      expect(e.code).toBe('BUILD_SILENT');
    } finally {
      await local.cleanup();
    }
  });

  it('an AbortSignal kills the whole sandbox process group', async () => {
    const [drv] = instantiate(join(NIX, 'sandbox.nix'), ['-A', 'sleeper', '--argstr', 'salt', salt()]);
    await env.known.add(drv!);
    const ac = new AbortController();
    const off = env.realiser.onProgress((e) => {
      if (e.type === 'started' && e.drvPath === drv) setTimeout(() => ac.abort(), 200);
    });
    const e = await rejection(env.realiser.realiseDrv(drv!, { signal: ac.signal }));
    off();
    expect(isLazyError(e, 'ABORTED')).toBe(true);
    // the job lost its only waiter, so the build itself is cancelled: no sandbox left running
    await new Promise((r) => setTimeout(r, 500));
    expect(env.realiser.inflightCount).toBe(0);
    expect(await sandboxProcesses(drv!)).toEqual([]);
  });
});

/** pids of processes whose command line mentions `drv`'s name (the builder and bwrap). */
async function sandboxProcesses(drv: string): Promise<number[]> {
  const { readdir } = await import('node:fs/promises');
  const name = baseName(parseStorePath(drv)).slice(33, -4);
  const pids: number[] = [];
  for (const d of await readdir('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const environ = await readFile(`/proc/${d}/environ`, 'latin1').catch(() => '');
    if (environ.includes(`name=${name}\0`)) pids.push(Number(d));
  }
  return pids;
}
