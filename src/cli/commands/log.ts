/** `lazystore log`: print the build log of a derivation or of the derivation of an output path. */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { parseStorePath, splitStorePath } from '../../nix/store-path.js';
import { KnownDerivations } from '../../realise/known-derivations.js';
import { LocalStore } from '../../store/local-store.js';
import { defaultStateDir } from '../../store/state-dir.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'print the build log of a derivation or output path',
  usage: `usage: lazystore log [--state DIR] DRV|OUTPUT-PATH

Prints the log kept from the last build of DRV, or of the derivation that produced
OUTPUT-PATH (from its deriver, or the known derivations). Logs are kept for failed builds too.

  --state DIR   state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
                else $XDG_DATA_HOME/lazystore)
`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...STORE_OPTIONS } });
    if (positionals.length !== 1) throw new LazyError('CLI_USAGE', "log needs one derivation or output path (see 'lazystore log --help')");
    const arg = positionals[0]!;
    const stateDir = values.state ?? defaultStateDir();
    const store = await LocalStore.open(stateDir);
    let drvPath: string | undefined;
    if (arg.endsWith('.drv')) drvPath = parseStorePath(arg.startsWith('/') ? arg : `/nix/store/${arg}`);
    else {
      const p = splitStorePath(arg).storePath;
      drvPath = (await store.queryPathInfo(p))?.deriver;
      drvPath ??= (await (await KnownDerivations.open(stateDir, store)).lookupOutput(p))?.drvPath;
      if (drvPath === undefined) throw new LazyError('CLI_NOT_FOUND', `no derivation is known for '${p}'`);
    }
    const log = await readFile(store.logPath(drvPath)).catch(() => undefined);
    if (log === undefined) throw new LazyError('CLI_NOT_FOUND', `build log of '${drvPath}' is not available`);
    process.stdout.write(log);
    return 0;
  },
};
