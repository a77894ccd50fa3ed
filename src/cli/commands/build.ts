/** `lazystore build`: realise derivations or output paths, print the output paths. */
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LazyError, isLazyError } from '../../errors.js';
import { parseStorePath, splitStorePath, type StorePath } from '../../nix/store-path.js';
import { formatProgress, type ProgressEvent } from '../../realise/progress.js';
import type { Command } from '../command.js';
import { openRealiserFromArgs } from '../open-realiser.js';
import { REALISE_OPTIONS } from '../options.js';

/** Log lines shown under a failure. */
const TAIL_LINES = 25;

export const command: Command = {
  summary: 'build derivations or output paths (substituting what caches have), print the outputs',
  usage: `usage: lazystore build [--max-jobs N] [--substituter URL]… [--state DIR] DRV|OUTPUT-PATH…

Realises each argument like 'nix-store --realise': a .drv (a file, e.g. in /nix/store; it and
its input derivations are added to the known derivations) builds all its outputs; an output
path is substituted from a binary cache or built from the known derivation that makes it.
Inputs are realised first, at most --max-jobs builds at once, each path built once.
Prints the output paths, one per line. On failure: exit 1, with the failing derivation, its
log path and the end of its log.

  --max-jobs N            most builds at once (default: number of cores)
  --max-substitutions N   most downloads at once (default 8)
  --substituter URL       binary cache to substitute from (file:///dir, http(s)://…); repeatable
  --trusted-key KEY       public key name:base64 whose signatures are trusted; repeatable
  --no-check-sigs         accept unsigned paths from substituters
  --drvs DIR              learn the .drv files in DIR (and watch it); repeatable
  --timeout S             kill a build after S seconds
  --max-silent-time S     kill a build that prints nothing for S seconds
  --max-log-size B        kill a build whose log passes B bytes (K/M/G; default 64M, 0 = none)
  --max-build-size B      size of the build's /build, /tmp (tmpfs) and of its outputs (default: no limit)
  --state DIR             state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as
                          root, else $XDG_DATA_HOME/lazystore)
  -q, --quiet             no progress output
`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...REALISE_OPTIONS, quiet: { type: 'boolean', short: 'q' } },
    });
    if (positionals.length === 0) throw new LazyError('CLI_USAGE', "build needs at least one derivation or output path (see 'lazystore build --help')");
    const { realiser } = await openRealiserFromArgs(values);
    const known = realiser.known;
    if (!known) throw new LazyError('CLI_USAGE', 'no known derivations');

    const targets: ({ drv: StorePath } | { path: StorePath })[] = [];
    for (const arg of positionals) {
      if (arg.endsWith('.drv')) {
        const file = resolve(arg);
        const isFile = await stat(file).then((s) => s.isFile(), () => false);
        const drvPath = parseStorePath(isFile ? `/nix/store/${file.slice(file.lastIndexOf('/') + 1)}` : arg);
        if (!(await known.has(drvPath))) {
          if (!isFile) throw new LazyError('CLI_NOT_FOUND', `derivation '${arg}' is not known and not a file`);
          await known.add(file);
        }
        targets.push({ drv: drvPath });
      } else {
        targets.push({ path: splitStorePath(arg).storePath });
      }
    }

    const stop = values.quiet ? () => undefined : showProgress(realiser.onProgress.bind(realiser));
    const results = await Promise.allSettled(
      targets.map(async (t) => ('drv' in t ? [...(await realiser.realiseDrv(t.drv)).values()].map((i) => i.path) : [(await realiser.realise(t.path)).path])),
    );
    stop();
    let failed = 0;
    const reported = new Set<string>();
    for (const r of results) {
      if (r.status === 'fulfilled') {
        for (const p of r.value) process.stdout.write(p + '\n');
        continue;
      }
      failed++;
      await reportFailure(r.reason, reported);
    }
    return failed ? 1 : 0;
  },
};

async function reportFailure(e: unknown, reported: Set<string>): Promise<void> {
  if (!isLazyError(e)) throw e;
  const key = `${e.code}:${e.message}`;
  if (reported.has(key)) return;
  reported.add(key);
  const lines = [`lazystore: ${e.message}`];
  const drvPath = e.details.drvPath as string | undefined;
  const logPath = e.details.logPath as string | undefined;
  if (drvPath) lines.push(`  failed derivation: ${drvPath}`);
  if (logPath) {
    lines.push(`  log: ${logPath}`);
    const log = await readFile(logPath, 'utf8').catch(() => undefined);
    if (log !== undefined && log !== '') {
      const tail = log.replace(/\n$/, '').split('\n').slice(-TAIL_LINES);
      lines.push(`  last ${tail.length} log lines:`, ...tail.map((l) => `  > ${l}`));
    }
  }
  process.stderr.write(lines.join('\n') + '\n');
}

/** On a TTY one status line redrawn in place; otherwise one plain line per started/failed build. */
function showProgress(subscribe: (l: (e: ProgressEvent) => void) => () => void): () => void {
  const tty = process.stderr.isTTY;
  let last = '';
  let current: ProgressEvent | undefined;
  const off = subscribe((e) => {
    if (e.type === 'started') current = e;
    const shown = current ?? e;
    const label = shown.drvPath ? shown.drvPath.slice(44, -4) : (shown.path?.slice(44) ?? '');
    if (tty) {
      if (e.type === 'started' || e.type === 'finished' || e.type === 'failed') {
        last = formatProgress({ ...shown, counts: e.counts } as ProgressEvent, label);
        process.stderr.write(`\r\x1b[K${last.slice(0, (process.stderr.columns || 80) - 1)}`);
      }
    } else if (e.type === 'started') {
      process.stderr.write(e.kind === 'build' ? `building '${e.drvPath ?? ''}'...\n` : `copying path '${e.path ?? ''}'...\n`);
    }
  });
  return () => {
    off();
    if (tty && last) process.stderr.write('\r\x1b[K');
  };
}
