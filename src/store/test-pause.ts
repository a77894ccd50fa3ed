/**
 * Crash-test hook: when `LAZYSTORE_TEST_PAUSE_AT` names this point, the process prints
 * `lazystore: paused at <point>` on stderr and waits forever, so a test can SIGKILL it there.
 * Unset (always, outside tests) it costs one environment lookup.
 */
export async function testPause(point: string): Promise<void> {
  const at = process.env.LAZYSTORE_TEST_PAUSE_AT;
  if (at === undefined || !at.split(',').includes(point)) return;
  process.stderr.write(`lazystore: paused at ${point}\n`);
  await new Promise<never>(() => {
    setInterval(() => undefined, 1 << 30);
  });
}
