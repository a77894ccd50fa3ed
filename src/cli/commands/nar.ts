/** `lazystore nar dump|hash|restore|ls`: NAR archives of file trees, like nix-store --dump/--restore. */
import { createReadStream, fstatSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { formatHash } from '../../nix/hash.js';
import { listNar, narListingJson, walkNarListing } from '../../nix/nar-listing.js';
import { dumpPath } from '../../store/nar-dump.js';
import { restoreNar } from '../../store/nar-restore.js';
import { scanPath } from '../../store/scan-path.js';
import type { Command } from '../command.js';

export const command: Command = {
  summary: 'write, hash, unpack and list NAR archives (like nix-store --dump/--restore)',
  usage: `usage: lazystore nar dump PATH        write the NAR of PATH to stdout (as nix-store --dump)
       lazystore nar hash PATH        print 'sha256:<nix32> <narSize>' of PATH's NAR
       lazystore nar restore DIR      unpack a NAR from stdin into DIR (which must not exist);
                                      modes 0444/0555, mtime 1, as in the Nix store
       lazystore nar ls [--json]      list a NAR from stdin: kind, size, offset of the
                                      contents in the NAR, path ('x' = executable file);
                                      --json prints what 'nix nar ls --json -R' prints

A malformed NAR fails with what is wrong and its byte offset.
`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
    const [sub, ...args] = positionals;
    const one = (what: string): string => {
      if (args.length !== 1) throw new LazyError('CLI_USAGE', `nar ${sub} needs exactly one ${what} (see 'lazystore nar --help')`);
      return args[0]!;
    };
    switch (sub) {
      case 'dump': {
        const path = one('PATH');
        await pipeline(Readable.from(dumpPath(path)), process.stdout, { end: false }).catch(quietEpipe);
        return 0;
      }
      case 'hash': {
        const r = await scanPath(one('PATH'));
        process.stdout.write(`${formatHash(r.narHash)} ${r.narSize}\n`);
        return 0;
      }
      case 'restore': {
        const dir = one('DIR');
        try {
          await restoreNar(stdin(), dir);
        } catch (e) {
          // Leave nothing half-unpacked, unless DIR was there before (then it is not ours).
          if (!(e instanceof LazyError && e.code === 'STORE_RESTORE_EXISTS')) await rm(dir, { recursive: true, force: true });
          throw e;
        }
        return 0;
      }
      case 'ls': {
        if (args.length !== 0) throw new LazyError('CLI_USAGE', 'nar ls reads the NAR from stdin and takes no arguments');
        const { root } = await listNar(stdin());
        if (values.json === true) {
          process.stdout.write(JSON.stringify(narListingJson(root)) + '\n');
          return 0;
        }
        const lines: Buffer[] = [];
        for (const [path, node] of walkNarListing(root)) {
          const p = Buffer.from(`/${path}`, 'latin1');
          if (node.type === 'directory') lines.push(Buffer.from('d'.padEnd(30)), p, Buffer.from('\n'));
          else if (node.type === 'symlink') lines.push(Buffer.from('l'.padEnd(30)), p, Buffer.from(' -> '), Buffer.from(node.target, 'latin1'), Buffer.from('\n'));
          else {
            const head = `${node.executable ? 'x' : '-'} ${String(node.size).padStart(12)} @${String(node.narOffset).padEnd(14)}`;
            lines.push(Buffer.from(head), p, Buffer.from('\n'));
          }
        }
        await pipeline(Readable.from(lines), process.stdout, { end: false }).catch(quietEpipe);
        return 0;
      }
      default:
        throw new LazyError('CLI_USAGE', `unknown nar subcommand '${sub ?? ''}' (dump, hash, restore, ls)`);
    }
  },
};

/** stdin; a file is read in 256 KiB chunks (faster than process.stdin's 64 KiB). */
function stdin(): AsyncIterable<Buffer> {
  return fstatSync(0).isFile() ? createReadStream('', { fd: 0, highWaterMark: 256 << 10 }) : process.stdin;
}

/** A reader that went away (`| head`) is not an error of ours. */
function quietEpipe(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
}
