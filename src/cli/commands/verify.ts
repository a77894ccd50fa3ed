/** `lazystore verify`: `nix-store --verify` for the embedded store. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { LocalStore } from '../../store/local-store.js';
import { defaultStateDir } from '../../store/state-dir.js';
import { verifyStore } from '../../store/verify-store.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'check that every valid path is intact (like nix-store --verify)',
  usage: `usage: lazystore verify [--check-contents] [--state DIR]

Checks every valid path: its contents exist and its references are valid. Each problem is
printed on stderr; the exit code is 1 if there was any. Opening the store first removes what
crashed writers left behind (reported on stderr).

  --check-contents  also re-hash each path's NAR and compare it with the recorded NarHash,
                    and check the unpacked tree is canonical (mtime 1, modes 0444/0555)
  --state DIR       state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
                    else $XDG_DATA_HOME/lazystore)
`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...STORE_OPTIONS, 'check-contents': { type: 'boolean' } },
    });
    if (positionals.length > 0) throw new LazyError('CLI_USAGE', `verify takes no arguments, got '${positionals[0]}'`);
    const store = await LocalStore.open(values.state ?? defaultStateDir());
    const r = store.recovery;
    if (r.removedTemp.length + r.removedInvalid.length > 0) {
      process.stderr.write(`removed ${r.removedTemp.length} scratch entries and ${r.removedInvalid.length} unregistered paths left by crashed writers\n`);
    }
    process.stderr.write(values['check-contents'] ? 'checking path existence and contents...\n' : 'checking path existence...\n');
    const result = await verifyStore(store, {
      checkContents: values['check-contents'] === true,
      onProblem: (p) => process.stderr.write(`error: ${p.message}\n`),
    });
    process.stderr.write(`checked ${result.checked} paths, ${result.problems.length} problems\n`);
    return result.problems.length > 0 ? 1 : 0;
  },
};
