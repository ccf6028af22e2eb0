/**
 * Progress of long operations (backup, restore), shared by workflows, the
 * activities that report it and the CLI that shows it. No Node imports: this
 * file is bundled into workflow code.
 *
 * Activities heartbeat their progress to Temporal (for timeouts, retries and
 * the UI) and, at most every few seconds, signal it to their workflow, which
 * keeps the latest value and answers the `progress` query from it. Only
 * counts, sizes and rates travel this way, never file names.
 */
export const PROGRESS_QUERY = 'progress';
export const PROGRESS_SIGNAL = 'lifeline.progress';

export type Phase =
  | 'starting'
  | 'waiting-for-checkpoint'
  | 'scanning'
  | 'uploading'
  | 'confirming'
  | 'committing'
  | 'restoring'
  | 'waiting-to-retry'
  | 'completed'
  | 'failed';

export interface Progress {
  phase: Phase;
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  /** recent read/write rate */
  bytesPerSecond: number;
  /** null while unknown (no rate yet) */
  etaSeconds: number | null;
  /** set while storage requests are being retried (or why the operation waits) */
  retrying?: string;
  /** backup: the attempt (a backup starts over when the asset changed under it) */
  attempt?: number;
  /** backup: batches done and planned */
  batchesDone?: number;
  batches?: number;
}

/** What an activity signals to its workflow. */
export interface ProgressUpdate {
  /** the operation the update belongs to (backup id, restore id): stale updates are ignored */
  opId: string;
  /** batch index (backups) or 0 */
  step: number;
  phase?: Phase;
  /** done within this step */
  filesDone: number;
  bytesDone: number;
  bytesPerSecond: number;
  retrying?: string;
  /** totals when the activity is the one that learns them (restore) */
  filesTotal?: number;
  bytesTotal?: number;
}

export function etaSeconds(bytesTotal: number, bytesDone: number, bytesPerSecond: number): number | null {
  if (bytesPerSecond <= 0) return bytesDone >= bytesTotal && bytesTotal > 0 ? 0 : null;
  return Math.max(0, Math.round((bytesTotal - bytesDone) / bytesPerSecond));
}
