#!/usr/bin/env node
/** `lazystore <command> …`: dispatch to src/cli/commands/<command>.ts, print errors as one line. */
import { isLazyError } from '../errors.js';
import type { Command } from './command.js';

/** Every command, loaded on demand so `lazystore nar hash` does not load FUSE. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  mount: async () => (await import('./commands/mount.js')).command,
  shell: async () => (await import('./commands/shell.js')).command,
  status: async () => (await import('./commands/status.js')).command,
  copy: async () => (await import('./commands/copy.js')).command,
  serve: async () => (await import('./commands/serve.js')).command,
  'path-info': async () => (await import('./commands/path-info.js')).command,
  verify: async () => (await import('./commands/verify.js')).command,
  delete: async () => (await import('./commands/delete.js')).command,
  drv: async () => (await import('./commands/drv.js')).command,
  build: async () => (await import('./commands/build.js')).command,
  log: async () => (await import('./commands/log.js')).command,
  known: async () => (await import('./commands/known.js')).command,
  nar: async () => (await import('./commands/nar.js')).command,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const lines = ['usage: lazystore <command> [options]', '', 'commands:'];
    for (const [n, load] of Object.entries(COMMANDS)) lines.push(`  ${n.padEnd(10)} ${(await load()).summary}`);
    lines.push('', "Run 'lazystore <command> --help' for a command's options.");
    process.stdout.write(lines.join('\n') + '\n');
    return name === undefined ? 1 : 0;
  }
  if (name === '--version') {
    process.stdout.write('lazystore 0.1.0\n');
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) throw new CliUsageError(`unknown command '${name}' (see 'lazystore --help')`);
  const command = await load();
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest; // `shell -- cmd --help` runs cmd
  if (own.includes('--help') || own.includes('-h')) {
    process.stdout.write(command.usage.trimEnd() + '\n');
    return 0;
  }
  return command.run(rest);
}

class CliUsageError extends Error {}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (isLazyError(e) || e instanceof CliUsageError) {
      process.stderr.write(`lazystore: ${e.message}\n`);
    } else if (e instanceof TypeError && (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`lazystore: ${e.message}\n`);
    } else {
      process.stderr.write(`lazystore: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
    process.exitCode = 1;
  },
);
