/**
 * The one error class of lazystore. Callers branch on `code`, never on the message.
 *
 * Codes are SCREAMING_SNAKE and prefixed by the layer that raises them:
 *   NIX32_ HASH_ PATH_ NAR_ NARINFO_ SIG_ DRV_   — src/nix (pure formats)
 *   STORE_                                        — src/store
 *   SUBST_                                        — src/substitute
 *   BUILD_                                        — src/build
 *   REALISE_ KNOWN_                               — src/realise
 *   FUSE_ MOUNT_                                  — src/fuse
 *   CLI_                                          — src/cli
 *   VM_                                           — src/vm (test guests under qemu)
 * The FUSE boundary maps codes to errno in exactly one place (src/fuse/errno.ts).
 */
export class LazyError extends Error {
  override readonly name = 'LazyError';
  readonly code: string;
  /** Structured details for callers and logs (paths, offsets, expected/actual values). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** True when `e` is a LazyError, optionally with the given code (or code prefix ending in `_`). */
export function isLazyError(e: unknown, code?: string): e is LazyError {
  if (!(e instanceof LazyError)) return false;
  if (code === undefined) return true;
  return code.endsWith('_') ? e.code.startsWith(code) : e.code === code;
}

/** The abort reason as a LazyError('ABORTED'), for `signal.throwIfAborted()`-style checks. */
export function abortError(signal: AbortSignal | undefined): LazyError {
  const reason: unknown = signal?.reason;
  if (reason instanceof LazyError) return reason;
  return new LazyError('ABORTED', 'operation was cancelled', { cause: reason });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}
