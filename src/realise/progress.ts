/** Progress of a Realiser, for the CLI's status line and the mount's logs. */
import type { StorePath } from '../nix/store-path.js';

export type WorkKind = 'build' | 'substitute';

export interface ProgressCounts {
  /** Finished successfully since the realiser was created. */
  done: number;
  /** In the sandbox / downloading now. */
  running: number;
  /** Builder exited, outputs being checked and registered. */
  finishing: number;
  /** Wanted, not yet running (waiting for inputs or for a slot). */
  queued: number;
  failed: number;
}

export type ProgressEvent =
  | { type: 'queued' | 'started' | 'finished'; kind: WorkKind; drvPath?: StorePath; path?: StorePath; counts: ProgressCounts }
  | { type: 'failed'; kind: WorkKind; drvPath?: StorePath; path?: StorePath; error: unknown; logPath?: string; counts: ProgressCounts }
  /** A wanted build or substitution that will not run because an input failed or it was cancelled. */
  | { type: 'dropped'; kind: WorkKind; drvPath?: StorePath; path?: StorePath; counts: ProgressCounts };

export type ProgressListener = (e: ProgressEvent) => void;

/** `[12/501 built, 4 running] building dag500-3-17` */
export function formatProgress(e: ProgressEvent, label: string): string {
  const c = e.counts;
  const total = c.done + c.running + c.finishing + c.queued + c.failed;
  const verb = e.type === 'started' ? (e.kind === 'build' ? 'building' : 'fetching') : e.type;
  return `[${c.done}/${total} built, ${c.running} running${c.failed ? `, ${c.failed} failed` : ''}] ${verb} ${label}`;
}
