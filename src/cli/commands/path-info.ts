/** `lazystore path-info`: what `nix path-info` prints, for the embedded store. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { splitStorePath, type StorePath } from '../../nix/store-path.js';
import { LocalStore } from '../../store/local-store.js';
import { pathInfoToJson } from '../../store/path-info.js';
import { defaultStateDir } from '../../store/state-dir.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'show metadata of valid store paths (like nix path-info)',
  usage: `usage: lazystore path-info [--json] [-r|--recursive] [--state DIR] (PATH… | --all)

Prints each PATH (a store path, or a file inside one) if it is valid in the store, in
reference order (references first). Fails if any PATH is not valid.

  --json           print a JSON array like 'nix path-info --json' (path, narHash, narSize,
                   references, ca, deriver, signatures), sorted by path
  -r, --recursive  include everything the paths reference, transitively
  --all            every valid path in the store
  --state DIR      state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
                   else $XDG_DATA_HOME/lazystore)
`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...STORE_OPTIONS, json: { type: 'boolean' }, recursive: { type: 'boolean', short: 'r' }, all: { type: 'boolean' } },
    });
    if (values.all && positionals.length > 0) throw new LazyError('CLI_USAGE', 'path-info takes either --all or store paths, not both');
    if (!values.all && positionals.length === 0) {
      throw new LazyError('CLI_USAGE', "path-info needs at least one store path or --all (see 'lazystore path-info --help')");
    }
    const store = await LocalStore.open(values.state ?? defaultStateDir());
    const paths = values.all ? await store.listValid() : positionals.map((a) => splitStorePath(a).storePath);
    for (const p of paths) {
      if (!(await store.isValid(p))) throw new LazyError('STORE_PATH_INVALID', `path '${p}' is not valid`, { details: { path: p } });
    }
    const wanted = new Set<StorePath>(paths);
    const order = (await store.closure(paths)).filter((p) => values.recursive || wanted.has(p));
    if (values.json) {
      const infos = [];
      for (const p of [...order].sort()) infos.push(pathInfoToJson((await store.queryPathInfo(p))!));
      process.stdout.write(JSON.stringify(infos) + '\n');
    } else {
      process.stdout.write(order.map((p) => p + '\n').join(''));
    }
    return 0;
  },
};
