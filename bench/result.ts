import { fileURLToPath } from 'node:url';

/**
 * The lazystore command as users run it: bin/lazystore, the launcher package.json installs
 * (from dist/bench/ when compiled, from bench/ under a TypeScript runner).
 */
export const LAZYSTORE = fileURLToPath(new URL(import.meta.url.includes('/dist/bench/') ? '../../bin/lazystore' : '../bin/lazystore', import.meta.url));

/** One benchmark figure, measured with its peer in the same run. */
export interface BenchResult {
  name: string;
  ours: number;
  peer: number;
  peerName: string;
  unit: string;
  lowerIsBetter: boolean;
  notes?: string;
}
