/**
 * Options shared by the commands that open the store or realise paths, so every command
 * spells them the same way. Use with node:util parseArgs: `options: {...STORE_OPTIONS, ...}`.
 */
export const STORE_OPTIONS = {
  /** State directory (default: $LAZYSTORE_STATE, /var/lib/lazystore as root, else $XDG_DATA_HOME/lazystore). */
  state: { type: 'string' },
} as const;

export const REALISE_OPTIONS = {
  ...STORE_OPTIONS,
  /** Binary cache to substitute from (file://DIR, http(s)://HOST/…); repeatable, in priority order. */
  substituter: { type: 'string', multiple: true },
  /** Public key `name:base64` whose signatures are trusted; repeatable. */
  'trusted-key': { type: 'string', multiple: true },
  /** Accept unsigned paths from substituters (like Nix's --no-check-sigs). */
  'no-check-sigs': { type: 'boolean' },
  /** Directory of .drv files to learn derivations from (e.g. a host /nix/store); repeatable. */
  drvs: { type: 'string', multiple: true },
  /** Most builds at once (default: number of cores). */
  'max-jobs': { type: 'string' },
  /** Most substitutions at once (default 8). */
  'max-substitutions': { type: 'string' },
  /** Kill a build after this many seconds. */
  timeout: { type: 'string' },
  /** Kill a build that prints nothing for this many seconds. */
  'max-silent-time': { type: 'string' },
  /** Kill a build whose log passes this many bytes (default 64 MiB; 0 = no limit). */
  'max-log-size': { type: 'string' },
  /** Most bytes a build may write to /build, /tmp and its outputs (default: no limit). */
  'max-build-size': { type: 'string' },
} as const;
