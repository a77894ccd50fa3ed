/**
 * Crash-test hooks at named points of the store's write path:
 * - `LAZYSTORE_TEST_PAUSE_AT=<point>[,<point>…]`: at such a point the process prints
 *   `lazystore: paused at <point>` on stderr and waits forever, so a test can SIGKILL it there;
 * - `LAZYSTORE_TEST_TRACE=1`: every point prints `lazystore: at <point>` on stderr and goes on.
 * Unset (always, outside tests) a point costs two environment lookups.
 */
export async function testPause(point: string): Promise<void> {
  if (process.env.LAZYSTORE_TEST_TRACE === '1') process.stderr.write(`lazystore: at ${point}\n`);
  const at = process.env.LAZYSTORE_TEST_PAUSE_AT;
  if (at === undefined || !at.split(',').includes(point)) return;
  process.stderr.write(`lazystore: paused at ${point}\n`);
  await new Promise<never>(() => {
    setInterval(() => undefined, 1 << 30);
  });
}
