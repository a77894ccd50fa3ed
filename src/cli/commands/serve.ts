/** `lazystore serve`: the store as an HTTP binary cache that `nix copy --from http://…` reads. */
import { parseArgs } from 'node:util';
import { LocalStore } from '../../store/local-store.js';
import { defaultStateDir } from '../../store/state-dir.js';
import { loadSecretKey } from '../../substitute/keys.js';
import { serveStore } from '../../substitute/serve.js';
import type { Command } from '../command.js';
import { STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'serve the store as an HTTP binary cache',
  usage: `usage: lazystore serve [--listen HOST:PORT] [--sign KEYFILE] [--priority N] [--state DIR]

Serves nix-cache-info, <hash>.narinfo, nar/<hash>-<narhash>.nar (uncompressed, streamed from
the unpacked path) and log/<drv> until interrupted. Prints the URL on stdout once listening.

  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; port 0 picks a free one)
  --sign KEYFILE      sign narinfos on the fly with this secret key
  --priority N        Priority advertised in nix-cache-info (default 40)
  --state DIR         state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
                      else $XDG_DATA_HOME/lazystore)
`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: { ...STORE_OPTIONS, listen: { type: 'string' }, sign: { type: 'string' }, priority: { type: 'string' } },
    });
    const store = await LocalStore.open(values.state ?? defaultStateDir());
    const signingKey = values.sign === undefined ? undefined : await loadSecretKey(values.sign);
    const priority = values.priority === undefined ? undefined : Number(values.priority);
    const server = await serveStore(store, values.listen ?? '127.0.0.1:8080', {
      signingKey,
      priority,
      onError: (e, url) => process.stderr.write(`lazystore serve: ${url}: ${e instanceof Error ? e.message : String(e)}\n`),
    });
    process.stdout.write(`${server.url}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    await server.close();
    return 0;
  },
};
