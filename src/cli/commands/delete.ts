/** `lazystore delete`: remove valid paths that nothing else references. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { parseStorePath, type StorePath } from '../../nix/store-path.js';
import { LocalStore } from '../../store/local-store.js';
import { defaultStateDir } from '../../store/state-dir.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'delete store paths that no other valid path references',
  usage: `usage: lazystore delete [--state DIR] PATH…

Deletes each PATH from the store, referrers before what they reference, so a set that
references itself can go at once. Refuses (exit 1) a path still referenced by a valid path
outside the set; paths deleted before the refusal stay deleted.

  --state DIR  state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
               else $XDG_DATA_HOME/lazystore)
`,
  async run(argv) {
    const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { ...STORE_OPTIONS } });
    if (positionals.length === 0) throw new LazyError('CLI_USAGE', "delete needs at least one store path (see 'lazystore delete --help')");
    const paths = positionals.map((a) => parseStorePath(a));
    const store = await LocalStore.open(values.state ?? defaultStateDir());
    for (const p of paths) {
      if (!(await store.isValid(p))) throw new LazyError('STORE_PATH_INVALID', `path '${p}' is not valid`, { details: { path: p } });
    }
    const wanted = new Set<StorePath>(paths);
    const order = (await store.closure(paths)).filter((p) => wanted.has(p)).reverse();
    for (const p of order) {
      await store.delete(p);
      process.stderr.write(`deleted '${p}'\n`);
    }
    return 0;
  },
};
