/**
 * Crash-test hooks at named points of the store's write path:
 * - `LAZYSTORE_TEST_PAUSE_AT=<point>[,<point>…]`: at such a point the process prints
 *   `lazystore: paused at <point>` on stderr and waits forever, so a test can SIGKILL it there;
 * - `LAZYSTORE_TEST_TRACE=1`: every point prints `lazystore: at <point>` on stderr and goes on.
 * Both are read once, at start (tests set them for the child processes they kill). Unset
 * (always, outside tests) a point is one comparison and no promise.
 */
const TRACE = process.env.LAZYSTORE_TEST_TRACE === '1';
const PAUSE_AT = process.env.LAZYSTORE_TEST_PAUSE_AT?.split(',');

export function testPause(point: string): Promise<never> | undefined {
  if (TRACE) process.stderr.write(`lazystore: at ${point}\n`);
  if (PAUSE_AT === undefined || !PAUSE_AT.includes(point)) return undefined;
  process.stderr.write(`lazystore: paused at ${point}\n`);
  return new Promise<never>(() => {
    setInterval(() => undefined, 1 << 30);
  });
}
