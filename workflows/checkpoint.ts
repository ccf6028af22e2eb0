/**
 * CheckpointBackupWorkflow — one per asset (workflow id
 * `checkpoint-backup-<asset>`), started or signalled with signal-with-start
 * by every checkpoint event. It runs one backup at a time as a child
 * workflow; events that arrive while a backup runs coalesce into exactly one
 * follow-up backup (which sees the newest state). When no event is pending it
 * waits a little for more, then completes; the next event starts it again.
 */
import {
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  executeChild,
  log,
  ParentClosePolicy,
  setHandler,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { backupWorkflow, type BackupTuning, type BackupWorkflowResult } from './backup';

/** What a checkpoint event tells the coordinator (no paths: they are the tenant's plaintext). */
export interface CheckpointSignal {
  step: string;
  node: string;
  /** when the event was received (ISO) */
  receivedAt: string;
}

export interface CheckpointCoordinatorInput {
  asset: string;
  /** wait this long for further events after the last backup before completing (default 60 s) */
  idleSeconds?: number;
  backupOptions?: BackupTuning;
  /** carried across continue-as-new */
  pending?: PendingCheckpoint | null;
  runs?: number;
  failures?: number;
}

export interface PendingCheckpoint {
  /** newest step announced */
  step: string;
  /** events coalesced into this run */
  events: number;
  firstAt: string;
}

export interface CheckpointCoordinatorState {
  asset: string;
  running: boolean;
  /** child workflow id of the running backup */
  current?: string;
  pending: PendingCheckpoint | null;
  /** backups run by this coordinator (across continue-as-new) */
  runs: number;
  failures: number;
  lastSnapshotId?: string;
  lastError?: string;
}

export interface CheckpointCoordinatorResult {
  asset: string;
  runs: number;
  failures: number;
  lastSnapshotId?: string;
}

export const checkpointSignal = defineSignal<[CheckpointSignal]>('checkpoint');
export const checkpointStateQuery = defineQuery<CheckpointCoordinatorState>('state');

export const checkpointCoordinatorId = (asset: string) => `checkpoint-backup-${asset}`;

/** Backups started per run before continuing as new (keeps the history short). */
const RUNS_PER_EXECUTION = 50;

export async function checkpointBackupWorkflow(input: CheckpointCoordinatorInput): Promise<CheckpointCoordinatorResult> {
  const state: CheckpointCoordinatorState = {
    asset: input.asset,
    running: false,
    pending: input.pending ?? null,
    runs: input.runs ?? 0,
    failures: input.failures ?? 0,
  };
  setHandler(checkpointSignal, (ev) => {
    // Coalesce: however many events arrive, one follow-up backup of the newest state.
    state.pending = state.pending
      ? { step: ev.step, events: state.pending.events + 1, firstAt: state.pending.firstAt }
      : { step: ev.step, events: 1, firstAt: ev.receivedAt };
  });
  setHandler(checkpointStateQuery, () => ({ ...state }));

  let startedHere = 0;
  for (;;) {
    if (!state.pending) {
      const more = await condition(() => state.pending !== null, `${input.idleSeconds ?? 60} seconds`);
      if (!more) break;
    }
    if (startedHere >= RUNS_PER_EXECUTION || workflowInfo().continueAsNewSuggested) {
      await continueAsNew<typeof checkpointBackupWorkflow>({ ...input, pending: state.pending, runs: state.runs, failures: state.failures });
    }
    const ev = state.pending!;
    state.pending = null;
    state.running = true;
    state.current = `backup-${input.asset}-event-${uuid4().slice(0, 8)}`;
    startedHere++;
    try {
      const r: BackupWorkflowResult = await executeChild(backupWorkflow, {
        workflowId: state.current,
        args: [{ asset: input.asset, trigger: 'event', labels: { step: ev.step }, options: input.backupOptions }],
        // Cancelling the coordinator cancels its backup (which then releases its lease).
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
      state.lastSnapshotId = r.snapshotId;
      state.lastError = undefined;
    } catch (err) {
      // One failed backup must not stop later checkpoints from being backed up.
      state.failures++;
      state.lastError = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
      log.warn('checkpoint backup failed', { asset: input.asset, workflowId: state.current, error: state.lastError });
    } finally {
      state.runs++;
      state.running = false;
    }
  }
  return { asset: input.asset, runs: state.runs, failures: state.failures, lastSnapshotId: state.lastSnapshotId };
}
