/**
 * BackupWorkflow — the runbook of one backup of one asset:
 *
 *   1. find the asset's node                          (orchestrator)
 *   2. scan it there: wait for a complete checkpoint,  (node; the list stays in
 *      walk, size, cut into batches                     a node-local work file)
 *   3. take the lease and choose the parent            (orchestrator)
 *   4. back up batch after batch, keeping only tree    (node)
 *      blob ids and counts; continue as new every few
 *      batches so no history grows without bound
 *   5. confirm nothing changed since the scan          (node)
 *   6. commit the signed manifest                      (orchestrator)
 *   7. model assets: the signed Model BOM              (child ModelBomWorkflow)
 *
 * If the asset changed under the backup (a file rewritten, removed, a new
 * checkpoint started) or the lease lapsed, the backup starts over from the
 * scan after a pause — everything already uploaded is reused — and fails
 * loudly after a few attempts. It never commits a torn snapshot.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  executeChild,
  defineSignal,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  sleep,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { AssetPlacement, BackupActivities, BackupScanResult } from '../activities/backup';
import type { BackupPlan, BatchStats } from '../engine/archiver';
import type { SnapshotStats } from '../engine/manifest';
import { RESTART_BACKUP_TYPES } from './failure-types';
import { audit, endingOf } from './audit';
import { backupCompleted, backupEnded, backupStarted } from '../audit/workflow-entries';
import { modelBomWorkflow, modelBomWorkflowId } from './mbom';
import { etaSeconds, PROGRESS_QUERY, PROGRESS_SIGNAL, type Phase, type Progress, type ProgressUpdate } from './progress';
import { nodeTaskQueue } from './task-queues';

export interface BackupWorkflowInput {
  asset: string;
  trigger: 'schedule' | 'manual' | 'event';
  /** recorded with the snapshot, over the asset's configured labels */
  labels?: Record<string, string>;
  /** tuning (tests pass small values) */
  options?: BackupTuning;
  /** state carried across continue-as-new; set only by the workflow itself */
  continued?: BackupCarry;
}

export interface BackupTuning {
  /** entries per batch activity (default 5000) */
  batchMaxEntries?: number;
  /** bytes per batch activity (default 4 GiB) */
  batchMaxBytes?: number;
  /** batches per workflow run before continuing as new (default 10) */
  batchesPerRun?: number;
  /** node activities must heartbeat within this (default 60 s); a dead node agent is noticed after it */
  heartbeatTimeoutSeconds?: number;
  /** how often the backup starts over when the asset changes under it (default 3) */
  changedRetries?: number;
  /** pause before starting over (default 30 s, doubling) */
  changedRetryDelaySeconds?: number;
  /** marker mode: how long to wait for a complete checkpoint (default 6 h) */
  checkpointWaitSeconds?: number;
  checkpointPollSeconds?: number;
  /** minimum time between progress signals from activities (default 5000 ms) */
  progressSignalMs?: number;
}

/** Everything a continued run needs: ids, counts and tree blob ids — never file names. */
export interface BackupCarry {
  placement: AssetPlacement;
  /** 1-based; grows when the backup starts over */
  attempt: number;
  /** workflow runs so far (continue-as-new), including this one */
  runs: number;
  startedAtMs: number;
  scan?: BackupScanResult;
  plan?: BackupPlan;
  /** next batch to back up */
  cursor: number;
  tree: string[];
  stats: BatchStats;
  bytesPerSecond: number;
}

export interface BackupWorkflowResult {
  asset: string;
  node: string;
  tenant: string;
  trigger: BackupWorkflowInput['trigger'];
  snapshotId: string;
  parentId: string | null;
  labels: Record<string, string>;
  stats: SnapshotStats;
  /** entries in the snapshot */
  entries: number;
  /** entries that are not files, folders or symlinks (listed in the node's work folder) */
  skipped: number;
  /** entries left out as temporary (checkpoint temporaryPattern) */
  excluded: number;
  batches: number;
  /** workflow runs (continue-as-new) this backup took */
  runs: number;
  /** 1 unless the asset changed under the backup and it started over */
  attempts: number;
  /** time spent waiting for a complete checkpoint */
  waitedSeconds: number;
  durationMs: number;
  /** model assets: where the snapshot's signed Model BOM is stored */
  bom?: { key: string; created: boolean; files: number; components: number };
}

export const progressQuery = defineQuery<Progress>(PROGRESS_QUERY);
export const progressSignal = defineSignal<[ProgressUpdate]>(PROGRESS_SIGNAL);

const emptyStats = (): BatchStats => ({ files: 0, dirs: 0, symlinks: 0, totalBytes: 0, readBytes: 0, newBytes: 0, newBlobs: 0, uploadedBytes: 0 });
const addStats = (a: BatchStats, b: BatchStats): BatchStats => {
  const out = { ...a };
  for (const k of Object.keys(out) as Array<keyof BatchStats>) out[k] += b[k];
  return out;
};

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

export async function backupWorkflow(input: BackupWorkflowInput): Promise<BackupWorkflowResult> {
  const opts = input.options ?? {};
  const orchestrator = proxyActivities<BackupActivities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
  });

  // ---- state (carried across continue-as-new) -----------------------------------------
  // Handlers are registered before the first await, so `progress` answers from the start.
  const fresh = (placement: AssetPlacement): BackupCarry => ({
    placement,
    attempt: 1,
    runs: 1,
    startedAtMs: Date.now(),
    cursor: 0,
    tree: [],
    stats: emptyStats(),
    bytesPerSecond: 0,
  });
  let carry: BackupCarry | undefined = input.continued;
  let phase: Phase = carry?.plan ? 'uploading' : 'starting';
  let live: ProgressUpdate | undefined;
  /** the activity whose progress counts: -1 scan, batch index, -2 confirm */
  let step = -1;
  let opId = carry?.plan?.backupId ?? carry?.scan?.backupId ?? '';

  setHandler(progressSignal, (u) => {
    if (u.opId !== opId || u.step !== step) return; // a late update of an earlier step
    live = u;
    if (u.bytesPerSecond > 0 && carry) carry.bytesPerSecond = u.bytesPerSecond;
  });
  setHandler(progressQuery, (): Progress => {
    const scanning = step === -1 && phase !== 'committing';
    const stats = carry?.stats ?? emptyStats();
    const filesTotal = carry?.scan?.files ?? 0;
    const bytesTotal = carry?.scan?.bytes ?? 0;
    const filesDone = scanning ? (live?.filesDone ?? 0) : Math.min(filesTotal, stats.files + (step >= 0 ? (live?.filesDone ?? 0) : 0));
    const bytesDone = scanning ? 0 : Math.min(bytesTotal, stats.totalBytes + (step >= 0 ? (live?.bytesDone ?? 0) : 0));
    const rate = live?.bytesPerSecond ?? carry?.bytesPerSecond ?? 0;
    return {
      phase: live?.phase === 'waiting-for-checkpoint' ? live.phase : phase,
      filesDone,
      filesTotal,
      bytesDone,
      bytesTotal,
      bytesPerSecond: rate,
      etaSeconds: phase === 'completed' ? 0 : etaSeconds(bytesTotal, bytesDone, rate),
      ...(live?.retrying ? { retrying: live.retrying } : {}),
      attempt: carry?.attempt ?? 1,
      batchesDone: carry?.cursor ?? 0,
      batches: carry?.scan?.batches ?? 0,
    };
  });

  if (!carry) {
    carry = fresh(await orchestrator.assetPlacement(input.asset));
    await audit(backupStarted({ asset: input.asset, tenant: carry.placement.tenant, node: carry.placement.node, trigger: input.trigger }));
  }
  const { placement } = carry;
  const ended = (err: unknown) =>
    audit(backupEnded({ asset: input.asset, tenant: placement.tenant, node: placement.node, trigger: input.trigger, attempts: carry!.attempt }, endingOf(err)));

  const heartbeatTimeout = `${opts.heartbeatTimeoutSeconds ?? 60} seconds`;
  const nodeRetry = { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' };
  const waitSeconds = opts.checkpointWaitSeconds ?? 6 * 3600;
  const node = proxyActivities<BackupActivities>({
    taskQueue: nodeTaskQueue(placement.node),
    heartbeatTimeout,
    // On cancellation, wait until the node agent has stopped (and stopped refreshing the lease) before cleaning up.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    startToCloseTimeout: '6 hours',
    // A node agent may be down for a while (restart, reboot): keep the work queued.
    scheduleToCloseTimeout: '24 hours',
    retry: nodeRetry,
  });
  const nodeScan = proxyActivities<BackupActivities>({
    taskQueue: nodeTaskQueue(placement.node),
    heartbeatTimeout,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    startToCloseTimeout: `${waitSeconds + 2 * 3600} seconds`,
    scheduleToCloseTimeout: `${waitSeconds + 24 * 3600} seconds`,
    retry: nodeRetry,
  });
  const nodeCleanup = proxyActivities<BackupActivities>({
    taskQueue: nodeTaskQueue(placement.node),
    scheduleToCloseTimeout: '2 minutes',
    retry: { initialInterval: '1 second', maximumAttempts: 3 },
  });
  const labels = { trigger: input.trigger, ...(input.labels ?? {}) };
  const batchesPerRun = Math.max(1, opts.batchesPerRun ?? 10);
  let batchesThisRun = 0;

  /** Lets go of a backup that will not be committed: its lease and its work file. */
  const abandon = (backupId: string) =>
    CancellationScope.nonCancellable(async () => {
      await orchestrator.backupAbandon({ asset: input.asset, backupId }).catch((e: unknown) => log.warn('could not release the backup lease (it expires by itself)', { error: String(e) }));
      await nodeCleanup.backupDiscardScan({ asset: input.asset, backupId }).catch((e: unknown) => log.warn('could not remove the scan work file (pruned later)', { error: String(e) }));
    });

  for (;;) {
    try {
      // ---- 2. scan on the node ------------------------------------------------------------
      if (!carry.scan) {
        opId = uuid4().replace(/-/g, '');
        step = -1;
        phase = 'scanning';
        live = undefined;
        carry.scan = await nodeScan.backupScan({
          asset: input.asset,
          backupId: opId,
          batchMaxEntries: opts.batchMaxEntries,
          batchMaxBytes: opts.batchMaxBytes,
          checkpointWaitSeconds: waitSeconds,
          checkpointPollSeconds: opts.checkpointPollSeconds,
          signalEveryMs: opts.progressSignalMs,
        });
        live = undefined;
      }
      // ---- 3. lease and parent --------------------------------------------------------------
      if (!carry.plan) {
        phase = 'starting';
        carry.plan = await orchestrator.backupBegin({ asset: input.asset, backupId: carry.scan.backupId, labels });
        carry.cursor = 0;
        carry.tree = [];
        carry.stats = emptyStats();
      }
      const plan = carry.plan;
      opId = plan.backupId;

      // ---- 4. batches -----------------------------------------------------------------------
      phase = 'uploading';
      while (carry.cursor < carry.scan.batches) {
        if (batchesThisRun >= batchesPerRun || workflowInfo().continueAsNewSuggested) {
          log.info('continuing as new', { batchesDone: carry.cursor, batches: carry.scan.batches });
          await continueAsNew<typeof backupWorkflow>({ ...input, continued: { ...carry, runs: carry.runs + 1 } });
        }
        step = carry.cursor;
        live = undefined;
        const r = await node.backupBatch({ asset: input.asset, plan, batch: carry.cursor, signalEveryMs: opts.progressSignalMs });
        carry.tree.push(...r.tree);
        carry.stats = addStats(carry.stats, r.stats);
        carry.cursor++;
        batchesThisRun++;
        live = undefined;
      }

      // ---- 5. nothing changed since the scan? ---------------------------------------------------
      step = -2;
      phase = 'confirming';
      await node.backupConfirm({ asset: input.asset, backupId: plan.backupId });

      // ---- 6. commit ------------------------------------------------------------------------
      phase = 'committing';
      const committed = await orchestrator.backupCommit({
        asset: input.asset,
        plan,
        tree: carry.tree,
        stats: carry.stats,
        durationMs: Date.now() - carry.startedAtMs,
      });
      phase = 'completed';
      await nodeCleanup.backupDiscardScan({ asset: input.asset, backupId: plan.backupId }).catch(() => undefined);
      log.info('backup committed', { asset: input.asset, snapshotId: committed.snapshotId, files: committed.stats.files, attempts: carry.attempt, runs: carry.runs });
      await audit(
        backupCompleted({
          asset: input.asset,
          tenant: placement.tenant,
          node: placement.node,
          snapshot: committed.snapshotId,
          trigger: input.trigger,
          files: committed.stats.files,
          bytes: committed.stats.totalBytes,
          newBytes: committed.stats.newBytes,
          uploadedBytes: committed.stats.uploadedBytes,
          attempts: carry.attempt,
          parent: committed.parent,
        }),
      );

      // ---- 7. the Model BOM (the snapshot is committed and audited; a failure here says so) ----
      let bom: BackupWorkflowResult['bom'];
      if (placement.kind === 'model') {
        try {
          const b = await executeChild(modelBomWorkflow, { workflowId: modelBomWorkflowId(committed.snapshotId), args: [{ asset: input.asset, snapshotId: committed.snapshotId }] });
          bom = { key: b.key, created: b.created, files: b.files, components: b.components };
        } catch (err) {
          // The activity's own message is the innermost cause (child → activity → application failure).
          let inner: unknown = err;
          while (inner instanceof Error && inner.cause instanceof Error && (inner instanceof ChildWorkflowFailure || inner instanceof ActivityFailure)) inner = inner.cause;
          const reason = inner instanceof Error ? inner.message : String(inner);
          throw ApplicationFailure.nonRetryable(
            `snapshot ${committed.snapshotId} of ${input.asset} is committed, but its Model BOM could not be made: ${reason}; fix that, then run lifeline mbom generate ${committed.snapshotId.slice(0, 12)}`,
            'ModelBomFailed',
          );
        }
      }
      return {
        asset: input.asset,
        node: placement.node,
        tenant: placement.tenant,
        trigger: input.trigger,
        snapshotId: committed.snapshotId,
        parentId: committed.parent,
        labels: plan.labels,
        stats: committed.stats,
        entries: carry.scan.entries,
        skipped: carry.scan.skipped,
        excluded: carry.scan.excluded,
        batches: carry.scan.batches,
        runs: carry.runs,
        attempts: carry.attempt,
        waitedSeconds: carry.scan.waitedSeconds,
        durationMs: Date.now() - carry.startedAtMs,
        ...(bom ? { bom } : {}),
      };
    } catch (err) {
      if (err instanceof ContinueAsNew) throw err;
      const backupId = carry.plan?.backupId ?? carry.scan?.backupId;
      const type = failureType(err);
      const retries = opts.changedRetries ?? 3;
      if (!isCancellation(err) && type !== undefined && RESTART_BACKUP_TYPES.includes(type) && carry.attempt <= retries) {
        // ---- the asset changed under us (or the lease lapsed): start over -------------------
        const delay = (opts.changedRetryDelaySeconds ?? 30) * 2 ** (carry.attempt - 1);
        log.warn('backup starts over', { asset: input.asset, reason: type, attempt: carry.attempt, delaySeconds: delay });
        if (backupId) await abandon(backupId);
        carry.attempt++;
        carry.scan = undefined;
        carry.plan = undefined;
        carry.cursor = 0;
        carry.tree = [];
        carry.stats = emptyStats();
        phase = 'waiting-to-retry';
        step = -3;
        live = undefined;
        await sleep(`${delay} seconds`);
        continue;
      }
      phase = 'failed';
      if (backupId) await abandon(backupId);
      if (type !== undefined && RESTART_BACKUP_TYPES.includes(type)) {
        const gaveUp = ApplicationFailure.nonRetryable(
          `backup of ${input.asset} gave up after ${carry.attempt} attempts because the asset kept changing while it was read: ${(err as ActivityFailure).cause?.message ?? String(err)}`,
          'AssetKeepsChanging',
        );
        await ended(gaveUp);
        throw gaveUp;
      }
      await ended(err);
      throw err;
    }
  }
}
