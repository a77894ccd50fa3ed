/**
 * The VM harness on its own: a real qemu guest (TCG) boots Debian's kernel with a busybox
 * initramfs, mounts a plain host directory over virtio 9p at /nix/store and runs commands.
 */
import { mkdtemp, mkdir, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLazyError } from '../../src/errors.js';
import { findGuestKernel, moduleLoadOrder, moduleName, NINE_P_MODULES } from '../../src/vm/guest-kernel.js';
import { parseConsole, runGuest } from '../../src/vm/run-guest.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vm-guest-test-'));
  await mkdir(join(dir, 'aaaa-tool', 'bin'), { recursive: true });
  await writeFile(join(dir, 'aaaa-tool', 'bin', 'greet'), '#!/bin/sh\necho "greetings, $1"\nexit 3\n');
  await chmod(join(dir, 'aaaa-tool', 'bin', 'greet'), 0o555);
  await writeFile(join(dir, 'aaaa-tool', 'data'), 'line one\nno newline at end');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('guest kernel', () => {
  it('finds an installed kernel with 9p and orders its modules dependencies first', async () => {
    const k = await findGuestKernel();
    const order = (await moduleLoadOrder(k, NINE_P_MODULES)).map(moduleName);
    for (const m of ['virtio', 'virtio_ring', 'virtio_pci', '9pnet', '9pnet_virtio', '9p']) expect(order).toContain(m);
    expect(order.indexOf('virtio_ring')).toBeLessThan(order.indexOf('virtio'));
    expect(order.indexOf('9pnet')).toBeLessThan(order.indexOf('9pnet_virtio'));
    expect(order.indexOf('9pnet_virtio')).toBeLessThan(order.indexOf('9p'));
    expect(new Set(order).size).toBe(order.length);
  });

  it('rejects a module the kernel does not have', async () => {
    const k = await findGuestKernel();
    await expect(moduleLoadOrder(k, ['no_such_module_xyz'])).rejects.toMatchObject({ code: 'VM_NO_MODULE' });
  });
});

describe('console parsing', () => {
  const facts = { bootMs: 1, totalMs: 2, timedOut: false, timeoutMs: 10, exit: 0, stderr: '' };
  it('cuts the output between the markers, keeping a missing final newline missing', () => {
    const r = parseConsole('noise\nM-BEGIN uptime=1.50\nabc\nno newlineM-END rc=7\n[ 2.0] reboot\n', 'M', facts);
    expect(r.output).toBe('abc\nno newline');
    expect(r.exitCode).toBe(7);
    expect(r.guestBootSeconds).toBe(1.5);
    expect(parseConsole('M-BEGIN uptime=1\nx\nM-END rc=0\n', 'M', facts).output).toBe('x\n');
  });
  it('reports a guest that never finished', () => {
    const run = (timedOut: boolean) => () => parseConsole('M-BEGIN uptime=1\nhalf', 'M', { ...facts, timedOut });
    expect(run(true)).toThrow(expect.objectContaining({ code: 'VM_TIMEOUT' }));
    expect(run(false)).toThrow(expect.objectContaining({ code: 'VM_QEMU_FAILED' }));
    expect(() => parseConsole('M-FAIL mount 9p store', 'M', facts)).toThrow(
      expect.objectContaining({ code: 'VM_GUEST_SETUP_FAILED' }),
    );
  });
});

describe('qemu guest with a host directory at /nix/store', () => {
  it('runs a program from the share and returns its output and exit code', async () => {
    const r = await runGuest({
      shares: [{ tag: 'store', hostPath: dir, mountAt: '/nix/store' }],
      command: [
        'ls /nix/store',
        'cat /nix/store/aaaa-tool/data',
        'echo',
        'stat -c "%a %n" /nix/store/aaaa-tool/bin/greet',
        'touch /nix/store/new-file 2>/dev/null || echo read-only',
        '/nix/store/aaaa-tool/bin/greet guest',
      ].join('\n'),
      timeoutMs: 90_000,
    });
    expect(r.output).toBe(
      'aaaa-tool\nline one\nno newline at end\n555 /nix/store/aaaa-tool/bin/greet\nread-only\ngreetings, guest\n',
    );
    expect(r.exitCode).toBe(3);
    expect(r.bootMs).toBeGreaterThan(0);
    expect(r.guestBootSeconds).toBeGreaterThan(0);
    console.log(`vm boot-to-command ${Math.round(r.bootMs)} ms (guest uptime ${r.guestBootSeconds} s), total ${Math.round(r.totalMs)} ms`);
  });

  it('kills a guest that runs past its timeout', async () => {
    const err: unknown = await runGuest({ command: 'sleep 600', timeoutMs: 6_000 }).catch((e: unknown) => e);
    expect(isLazyError(err, 'VM_TIMEOUT')).toBe(true);
  });

  it('kills the guest when the signal aborts', async () => {
    const ac = new AbortController();
    const started = runGuest({ command: 'sleep 600', signal: ac.signal, timeoutMs: 90_000 });
    setTimeout(() => ac.abort(), 1_000);
    await expect(started).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
