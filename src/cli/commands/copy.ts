/** `lazystore copy`: substitute a closure from a binary cache, or export one to a file:// cache. */
import { parseArgs } from 'node:util';
import { LazyError } from '../../errors.js';
import { splitStorePath, type StorePath } from '../../nix/store-path.js';
import type { PublicKey } from '../../nix/signing.js';
import { LocalStore } from '../../store/local-store.js';
import { defaultStateDir } from '../../store/state-dir.js';
import { openBinaryCache } from '../../substitute/binary-cache.js';
import { parseExportCompression } from '../../substitute/compress.js';
import { copyClosure } from '../../substitute/copy-closure.js';
import { exportCache } from '../../substitute/export-cache.js';
import { loadPublicKeys, loadSecretKey } from '../../substitute/keys.js';
import { Substituters } from '../../substitute/substituters.js';
import type { Command } from '../command.js';
import { REALISE_OPTIONS, STORE_OPTIONS } from '../options.js';

export const command: Command = {
  summary: 'copy store paths with their closure from or to a binary cache (like nix copy)',
  usage: `usage: lazystore copy --from URL [--trusted-key KEY]… [--no-check-sigs] [--jobs N] [--state DIR] PATH…
       lazystore copy --to file://DIR [--compression none|xz|zstd|bzip2] [--sign KEYFILE] [--jobs N] [--state DIR] PATH…

--from substitutes each PATH and everything it references from the binary cache at URL
(file:///dir or http(s)://host/…) into the store, references first, verifying signatures,
NAR sizes and hashes. --to writes each PATH's closure (valid in the store) as a flat-file
binary cache that 'nix copy --from file://DIR' accepts.

  --from URL            binary cache to substitute from (an absolute path means file://)
  --trusted-key KEY     public key name:base64 (or a file holding keys) whose signatures are
                        trusted; repeatable
  --no-check-sigs       accept unsigned paths (content-addressed paths never need one)
  --to file://DIR       binary cache directory to write (created if needed)
  --compression C       NAR compression for --to (default xz)
  --sign KEYFILE        sign narinfos with this secret key (nix-store --generate-binary-cache-key)
  --jobs N              paths transferred at once (default 8 for --from, 2 for --to)
  --state DIR           state directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root,
                        else $XDG_DATA_HOME/lazystore)
  -v, --verbose         print each path as it is copied
`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...STORE_OPTIONS,
        'trusted-key': REALISE_OPTIONS['trusted-key'],
        'no-check-sigs': REALISE_OPTIONS['no-check-sigs'],
        from: { type: 'string' },
        to: { type: 'string' },
        compression: { type: 'string' },
        sign: { type: 'string' },
        jobs: { type: 'string' },
        verbose: { type: 'boolean', short: 'v' },
      },
    });
    if ((values.from === undefined) === (values.to === undefined)) {
      throw new LazyError('CLI_USAGE', "copy needs exactly one of --from URL and --to file://DIR (see 'lazystore copy --help')");
    }
    if (positionals.length === 0) throw new LazyError('CLI_USAGE', 'copy needs at least one store path');
    const paths: StorePath[] = positionals.map((a) => splitStorePath(a).storePath);
    const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
    if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) throw new LazyError('CLI_USAGE', `--jobs wants a positive integer, not '${values.jobs}'`);
    const store = await LocalStore.open(values.state ?? defaultStateDir());
    const log = (s: string): void => {
      if (values.verbose) process.stderr.write(s + '\n');
    };

    if (values.to !== undefined) {
      if (values['trusted-key'] || values['no-check-sigs']) throw new LazyError('CLI_USAGE', '--trusted-key and --no-check-sigs go with --from');
      const url = new URL(values.to.includes('://') ? values.to : `file://${values.to}`);
      if (url.protocol !== 'file:') throw new LazyError('CLI_USAGE', `copy --to writes file:// caches only, not ${values.to}`);
      const compression = parseExportCompression(values.compression ?? 'xz');
      for (const p of paths) {
        if (!(await store.isValid(p))) throw new LazyError('STORE_PATH_INVALID', `path '${p}' is not valid`, { details: { path: p } });
      }
      const result = await exportCache(store, paths, {
        dir: decodeURIComponent(url.pathname),
        compression,
        signingKey: values.sign === undefined ? undefined : await loadSecretKey(values.sign),
        jobs,
        onProgress: (e) => log(`${e.state === 'written' ? 'copied' : 'present'} ${e.path}`),
      });
      process.stderr.write(`copied ${result.written.length} paths to ${values.to} (${result.skipped.length} already there)\n`);
      return 0;
    }

    if (values.compression !== undefined || values.sign !== undefined) throw new LazyError('CLI_USAGE', '--compression and --sign go with --to');
    const trustedKeys: PublicKey[] = [];
    for (const k of values['trusted-key'] ?? []) trustedKeys.push(...(await loadPublicKeys(k)));
    const cache = await openBinaryCache(values.from!.startsWith('/') ? `file://${values.from}` : values.from!);
    const subs = new Substituters([cache], { trustedKeys, requireSigs: !values['no-check-sigs'] });
    const result = await copyClosure(store, subs, paths, {
      jobs,
      onProgress: (e) => log(`${e.state === 'imported' ? 'copied' : 'present'} ${e.path}`),
    });
    process.stderr.write(`copied ${result.imported.length} paths from ${cache.url} (${result.alreadyValid.length} already valid)\n`);
    return 0;
  },
};
