/**
 * Boots a throw-away Linux guest under qemu (software emulation: nested KVM hangs on the
 * machines this runs on), with host directories shared in over virtio 9p, runs one shell
 * command in it, and returns what the command printed. The guest is killed when the command
 * ends, on timeout, or when `signal` aborts. Measured on the 2-core dev machine with
 * Debian's 6.1 kernel: ~4.2 s from spawn to the command starting (the guest kernel's own
 * uptime is ~1.7 s of it; the rest is firmware and kernel decompression under TCG), ~4.3 s
 * to power-off for a trivial command.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { LazyError, throwIfAborted } from '../errors.js';
import { findGuestKernel, moduleLoadOrder, NINE_P_MODULES, type GuestKernel } from './guest-kernel.js';
import { buildInitramfs, type GuestShare } from './initramfs.js';

export interface GuestRunOptions {
  /** Shell script run by busybox sh as root in the guest; stdout and stderr are captured. */
  command: string;
  shares?: readonly GuestShare[];
  /** Default 512. */
  memoryMb?: number;
  /** Whole run, boot included; default 120 s. Then the guest is killed: VM_TIMEOUT. */
  timeoutMs?: number;
  kernel?: GuestKernel;
  /** Sees the raw console as it arrives (for logs while debugging). */
  onConsole?: (text: string) => void;
  signal?: AbortSignal;
}

export interface GuestResult {
  /** What the command printed (stdout and stderr interleaved), with the serial line's \r removed. */
  output: string;
  exitCode: number;
  /** Guest uptime when the command started (seconds, guest clock): kernel boot + module load + mounts. */
  guestBootSeconds: number;
  /** Host milliseconds from spawning qemu to the command starting. */
  bootMs: number;
  /** Host milliseconds from spawning qemu to qemu exiting. */
  totalMs: number;
  /** The whole console, for diagnostics. */
  console: string;
}

/** `,` separates qemu option fields; a literal comma is written twice. */
function qemuEscape(s: string): string {
  return s.replaceAll(',', ',,');
}

export function qemuArgs(kernel: string, initrd: string, shares: readonly GuestShare[], memoryMb: number): string[] {
  const args = [
    '-nodefaults', '-nographic', '-serial', 'stdio', '-no-reboot',
    '-accel', 'tcg', '-m', String(memoryMb),
    '-kernel', kernel, '-initrd', initrd,
    '-append', 'console=ttyS0 panic=-1 quiet',
  ];
  for (const s of shares) {
    args.push('-virtfs', `local,path=${qemuEscape(s.hostPath)},mount_tag=${s.tag},security_model=none,readonly=on`);
  }
  return args;
}

export async function runGuest(opts: GuestRunOptions): Promise<GuestResult> {
  const { signal } = opts;
  throwIfAborted(signal);
  const shares = opts.shares ?? [];
  const kernel = opts.kernel ?? (await findGuestKernel({ signal }));
  const modules = shares.length > 0 ? await moduleLoadOrder(kernel, NINE_P_MODULES, { signal }) : [];
  const marker = `LAZYSTORE-VM-${randomBytes(6).toString('hex')}`;
  const scratch = await mkdtemp(join(tmpdir(), 'lazystore-vm-'));
  try {
    const initrd = join(scratch, 'initrd.cpio');
    await buildInitramfs({ kernel, modules, shares, command: opts.command, marker }, initrd, scratch, { signal });
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let console = '';
    let bootMs = -1;
    const start = performance.now();
    const proc = execa('qemu-system-x86_64', qemuArgs(kernel.kernel, initrd, shares, opts.memoryMb ?? 512), {
      stdin: 'ignore',
      reject: false,
      buffer: false,
      timeout: timeoutMs,
      forceKillAfterDelay: 2_000,
      cancelSignal: signal,
    });
    proc.stdout.setEncoding('latin1');
    proc.stdout.on('data', (chunk: string) => {
      console += chunk;
      opts.onConsole?.(chunk);
      if (bootMs < 0 && console.includes(`${marker}-BEGIN`)) bootMs = performance.now() - start;
    });
    let stderr = '';
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    const r = await proc;
    const totalMs = performance.now() - start;
    throwIfAborted(signal);
    return parseConsole(console.replaceAll('\r', ''), marker, {
      bootMs,
      totalMs,
      timedOut: r.timedOut,
      timeoutMs,
      exit: r.exitCode ?? r.signal ?? 'unknown',
      stderr,
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

interface RunFacts {
  bootMs: number;
  totalMs: number;
  timedOut: boolean;
  timeoutMs: number;
  exit: number | string;
  stderr: string;
}

/** Cuts the command's output out of the console; throws VM_* with the console tail when the run did not finish. */
export function parseConsole(text: string, marker: string, facts: RunFacts): GuestResult {
  const tail = text.slice(-2000);
  const details = { console: tail, qemuStderr: facts.stderr.slice(-2000), exit: facts.exit };
  const fail = new RegExp(`${marker}-FAIL (.*)`).exec(text);
  if (fail) throw new LazyError('VM_GUEST_SETUP_FAILED', `guest set-up failed: ${fail[1] ?? ''}`, { details });
  const begin = new RegExp(`${marker}-BEGIN uptime=([0-9.]+)\n`).exec(text);
  const end = new RegExp(`\n?${marker}-END rc=([0-9]+)\n`).exec(text);
  if (!begin || !end || end.index < begin.index) {
    if (facts.timedOut) {
      throw new LazyError('VM_TIMEOUT', `guest did not finish within ${facts.timeoutMs} ms`, { details });
    }
    throw new LazyError('VM_QEMU_FAILED', `qemu exited (${facts.exit}) before the guest command finished`, { details });
  }
  return {
    output: text.slice(begin.index + begin[0].length, end.index) + (end[0].startsWith('\n') ? '\n' : ''),
    exitCode: Number(end[1]),
    guestBootSeconds: Number(begin[1]),
    bootMs: facts.bootMs,
    totalMs: facts.totalMs,
    console: text,
  };
}
