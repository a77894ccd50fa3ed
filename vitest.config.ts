import { defineConfig } from 'vitest/config';

// Tests drive real processes (nix, bwrap, FUSE mounts): generous timeouts, and files run in
// forked processes so a test that mounts cannot wedge the runner's own process.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
