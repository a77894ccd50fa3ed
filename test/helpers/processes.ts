/** Processes of this machine, as tests watch them. */
import { readdirSync, readFileSync } from 'node:fs';

/** How many processes have `marker` in their command line (from /proc). */
export function processesWith(marker: string): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(marker)) n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}
