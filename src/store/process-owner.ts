/**
 * Who owns a scratch entry: `<pid>.<start time>` of a process, so crash recovery can tell a
 * live owner from a dead one even after the pid is reused (the start time, in clock ticks since
 * boot from /proc/<pid>/stat, differs for the new process).
 */
import { readFileSync } from 'node:fs';

const TOKEN = /^(\d+)\.(\d+)(?=[.-]|$)/;

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the command name, which is in parentheses and may itself contain spaces or ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19]; // field 22 of the whole line: starttime
  } catch {
    return undefined;
  }
}

let own: string | undefined;

/** This process's owner token. */
export function ownerToken(): string {
  own ??= `${process.pid}.${startTimeOf(process.pid) ?? '0'}`;
  return own;
}

/** The owner token a scratch entry's name starts with, or undefined if it has none. */
export function ownerOf(entryName: string): { pid: number; startTime: string } | undefined {
  const m = TOKEN.exec(entryName);
  if (!m) return undefined;
  return { pid: Number(m[1]), startTime: m[2]! };
}

/** True when the process that made `entryName` still runs (false when unknown format → caller decides). */
export function ownerAlive(owner: { pid: number; startTime: string }): boolean {
  if (owner.pid === process.pid) return ownerToken() === `${owner.pid}.${owner.startTime}`;
  const start = startTimeOf(owner.pid);
  if (start !== undefined) return start === owner.startTime;
  // No /proc entry: the process is gone (or /proc is not mounted: then ask the kernel).
  try {
    process.kill(owner.pid, 0);
    return startTimeOf(1) === undefined; // /proc absent: a live pid is the best we know
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
