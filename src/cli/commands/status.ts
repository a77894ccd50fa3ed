/** `lazystore status`: what each running mount of the state directory is doing. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { queryAllControls } from '../../fuse/control-socket.js';
import type { ViewStatus } from '../../fuse/store-view.js';
import { defaultStateDir } from '../../store/state-dir.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

interface DaemonStatus extends ViewStatus {
  mountpoint: string;
  counts?: { done: number; running: number; queued: number; failed: number };
  maxJobs?: number;
  recentBuildFailures: { drvPath?: string; message: string; logPath?: string }[];
}

export const command: Command = {
  summary: 'show running mounts: builds running and queued, recent failures',
  usage: `usage: lazystore status [--state DIR] [--json]

Asks every lazystore mount serving the state directory (through its control socket,
<state>/run/<pid>.sock) what it is doing. Exit code 1 when no mount is running.

  --state DIR   state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root)
  --json        print the raw replies as JSON`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, options: { ...STORE_OPTIONS, json: { type: 'boolean' } }, allowPositionals: true });
    if (positionals.length > 0) throw new LazyError('CLI_USAGE', `status takes no arguments, got '${positionals[0]}'`);
    const stateDir = values.state ?? defaultStateDir();
    const replies = await queryAllControls(stateDir, { op: 'status' });
    if (values.json) {
      process.stdout.write(JSON.stringify(replies, null, 2) + '\n');
      return replies.length ? 0 : 1;
    }
    if (replies.length === 0) {
      process.stdout.write(`no lazystore mount is running on ${stateDir}\n`);
      return 1;
    }
    const out: string[] = [];
    for (const { pid, result } of replies) {
      const s = result as DaemonStatus;
      const c = s.counts;
      out.push(`mount ${s.mountpoint} (pid ${pid})`);
      if (c) out.push(`  builds: ${c.running} running, ${c.queued} queued, ${c.done} done, ${c.failed} failed (max ${s.maxJobs ?? '?'} at once)`);
      for (const r of s.realising) out.push(`  waiting for ${r.path} (${(r.sinceMs / 1000).toFixed(1)} s)`);
      for (const f of s.failures) out.push(`  failed ${f.path} at ${f.at}: ${f.message}`);
      for (const f of s.recentBuildFailures) out.push(`  build failed ${f.drvPath ?? '?'}: ${f.message}${f.logPath ? ` (log: ${f.logPath})` : ''}`);
    }
    process.stdout.write(out.join('\n') + '\n');
    return 0;
  },
};
