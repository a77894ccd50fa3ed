/** `lazystore known`: the derivations lazystore may build. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { splitStorePath } from '../../nix/store-path.js';
import { KnownDerivations } from '../../realise/known-derivations.js';
import { LocalStore } from '../../store/local-store.js';
import { defaultStateDir } from '../../store/state-dir.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'record derivations lazystore may build (known add|refresh|lookup)',
  usage: `usage: lazystore known add [--state DIR] FILE.drv|DIR…
       lazystore known refresh [--state DIR]
       lazystore known lookup [--state DIR] OUTPUT-PATH…

add      records each .drv (a file, or every .drv in DIR) with its input derivations, which
         must be known already or sit in the same directory, and indexes its output paths.
         Input sources found beside the .drv (a Nix store such as /nix/store) are imported
         (content-addressed ones verified). Directories are remembered for 'refresh'.
refresh  picks up new .drv files in the remembered directories.
lookup   prints '<drv>!<output>' for each output path, or fails if none is known.

  --state DIR   state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
                else $XDG_DATA_HOME/lazystore)
`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...STORE_OPTIONS } });
    const [sub, ...args] = positionals;
    const stateDir = values.state ?? defaultStateDir();
    const open = async (): Promise<KnownDerivations> => KnownDerivations.open(stateDir, await LocalStore.open(stateDir));
    switch (sub) {
      case 'add': {
        if (args.length === 0) throw new LazyError('CLI_USAGE', 'known add needs a .drv file or a directory');
        const known = await open();
        let n = 0;
        for (const a of args) n += await known.add(a);
        process.stderr.write(`added ${n} derivation${n === 1 ? '' : 's'}\n`);
        return 0;
      }
      case 'refresh': {
        const n = await (await open()).refresh();
        process.stderr.write(`added ${n} derivation${n === 1 ? '' : 's'}\n`);
        return 0;
      }
      case 'lookup': {
        const known = await open();
        let missing = 0;
        for (const a of args) {
          const ref = await known.lookupOutput(splitStorePath(a).storePath);
          if (ref) process.stdout.write(`${ref.drvPath}!${ref.outputName}\n`);
          else {
            process.stderr.write(`lazystore: no known derivation produces '${a}'\n`);
            missing++;
          }
        }
        return missing ? 1 : 0;
      }
      default:
        throw new LazyError('CLI_USAGE', `unknown subcommand '${sub ?? ''}' (known add|refresh|lookup)`);
    }
  },
};
