import { LazyError } from '../../src/errors.js';

/** The LazyError a promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<LazyError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LazyError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** The LazyError code `f` throws, undefined when it returns, a marker string for any other throw. */
export function thrownCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof LazyError ? e.code : `not a LazyError: ${String(e)}`;
  }
  return undefined;
}
