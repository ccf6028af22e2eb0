/**
 * RestoreWorkflow — the runbook of one restore:
 *
 *   1. find the asset (its node is the default destination)   (orchestrator)
 *   2. choose the snapshot: the newest, the newest verified,  (orchestrator)
 *      or a given id / unique prefix
 *   3. check the target folder on the destination node         (node)
 *   4. restore into it; every file's SHA-256 is checked before  (node)
 *      it is renamed into place
 *
 *   5. audit: completed, failed or denied (tenant mismatch)   (orchestrator)
 *
 * Include paths travel sealed to the tenant (see backups/include.ts), so no
 * file name of the asset enters this workflow's history.
 */
import { ApplicationFailure, defineQuery, defineSignal, log, proxyActivities, setHandler, uuid4 } from '@temporalio/workflow';
import type { BackupActivities } from '../activities/backup';
import type { RestoreActivities, RestoreSummary, SnapshotChoice } from '../activities/restore';
import type { createVerifyActivities } from '../activities/verify';
import { FailureTypes } from './failure-types';
import { audit, endingOf } from './audit';
import { restoreEnded } from '../audit/workflow-entries';
import { etaSeconds, PROGRESS_QUERY, PROGRESS_SIGNAL, type Phase, type Progress, type ProgressUpdate } from './progress';
import { isValidNodeId, nodeTaskQueue } from './task-queues';

export type RestoreFrom = 'latest' | 'last-verified' | { snapshotId: string };

export interface RestoreWorkflowInput {
  asset: string;
  /**
   * The tenant this restore is for (default: the asset's). A restore for one
   * tenant of another tenant's asset or snapshot is refused (TenantMismatch)
   * before anything is written, and the refusal is an audit entry (denied).
   */
  tenant?: string;
  /** default 'latest' */
  from?: RestoreFrom;
  /** absolute folder on the destination node */
  target: string;
  /** destination node (default: the asset's node) */
  node?: string;
  /** include list sealed to the tenant's recipients (base64 age); plaintext paths never enter the workflow */
  includeSealed?: string;
  /** how many include paths are sealed (for messages) */
  includeCount?: number;
  /** restore into a non-empty folder, replacing files of the same name */
  overwrite?: boolean;
  options?: { heartbeatTimeoutSeconds?: number; progressSignalMs?: number };
}

export interface RestoreWorkflowResult {
  asset: string;
  snapshotId: string;
  snapshotTime: string;
  node: string;
  target: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** every restored file's SHA-256 matched the snapshot */
  verified: true;
  durationMs: number;
}

export const restoreProgressQuery = defineQuery<Progress>(PROGRESS_QUERY);
export const restoreProgressSignal = defineSignal<[ProgressUpdate]>(PROGRESS_SIGNAL);

type VerifyActivities = ReturnType<typeof createVerifyActivities>;

export async function restoreWorkflow(input: RestoreWorkflowInput): Promise<RestoreWorkflowResult> {
  const opts = input.options ?? {};
  const startedAt = Date.now();
  const restoreId = uuid4().replace(/-/g, '');
  let phase: Phase = 'starting';
  let choice: SnapshotChoice | undefined;
  let live: ProgressUpdate | undefined;
  setHandler(restoreProgressSignal, (u) => {
    if (u.opId === restoreId) live = u;
  });
  setHandler(restoreProgressQuery, (): Progress => {
    const filesTotal = live?.filesTotal ?? choice?.files ?? 0;
    const bytesTotal = live?.bytesTotal ?? choice?.bytes ?? 0;
    const bytesDone = live?.bytesDone ?? 0;
    const rate = live?.bytesPerSecond ?? 0;
    return {
      phase,
      filesDone: live?.filesDone ?? 0,
      filesTotal,
      bytesDone,
      bytesTotal,
      bytesPerSecond: rate,
      etaSeconds: phase === 'completed' ? 0 : etaSeconds(bytesTotal, bytesDone, rate),
      ...(live?.retrying ? { retrying: live.retrying } : {}),
    };
  });

  const orchestrator = proxyActivities<BackupActivities & RestoreActivities & VerifyActivities>({
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  const placement = await orchestrator.assetPlacement(input.asset);
  const nodeId = input.node ?? placement.node;
  if (!isValidNodeId(nodeId)) throw ApplicationFailure.nonRetryable(`invalid node id ${JSON.stringify(nodeId)}`, FailureTypes.InvalidInput);

  const tenant = input.tenant ?? placement.tenant;
  const requested = typeof input.from === 'object' && /^[0-9a-f]{8,64}$/.test(input.from.snapshotId) ? input.from.snapshotId : undefined;
  const subject = () => ({
    asset: input.asset,
    tenant,
    node: nodeId,
    snapshot: choice?.snapshotId ?? requested,
    ...(tenant !== placement.tenant ? { ownerTenant: placement.tenant } : {}),
    overwrite: input.overwrite,
    partial: input.includeSealed !== undefined,
  });
  let r: RestoreSummary;
  try {
    if (tenant !== placement.tenant) {
      throw ApplicationFailure.nonRetryable(
        `restore for tenant ${tenant} refused: asset ${input.asset} belongs to tenant ${placement.tenant}, and a tenant's restore reads only its own snapshots`,
        FailureTypes.TenantMismatch,
      );
    }
    // ---- which snapshot -----------------------------------------------------------------------
    const from = input.from ?? 'latest';
    if (from === 'last-verified') {
      const id = await orchestrator.lastVerifiedSnapshot({ asset: input.asset });
      if (id === null) {
        throw ApplicationFailure.nonRetryable(
          `asset ${input.asset} has no verified snapshot (none has passed a verification, or all are quarantined); run \`lifeline verify ${input.asset}\` or restore --snapshot <id>`,
          FailureTypes.InvalidInput,
        );
      }
      choice = await orchestrator.restoreResolveSnapshot({ asset: input.asset, from: { snapshotId: id }, tenant });
    } else {
      choice = await orchestrator.restoreResolveSnapshot({ asset: input.asset, from, tenant });
    }
    log.info('restoring', { asset: input.asset, snapshotId: choice.snapshotId, node: nodeId });

    // ---- restore on the node ------------------------------------------------------------------
    const node = proxyActivities<RestoreActivities>({
      taskQueue: nodeTaskQueue(nodeId),
      heartbeatTimeout: `${opts.heartbeatTimeoutSeconds ?? 60} seconds`,
      startToCloseTimeout: '12 hours',
      scheduleToCloseTimeout: '24 hours',
      retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' },
    });
    phase = 'starting';
    await node.restorePrepareTarget({ asset: input.asset, target: input.target, overwrite: input.overwrite });
    phase = 'restoring';
    r = await node.restoreSnapshot({
      asset: input.asset,
      snapshotId: choice.snapshotId,
      target: input.target,
      includeSealed: input.includeSealed,
      restoreId,
      signalEveryMs: opts.progressSignalMs,
    });
    phase = 'completed';
    live = { opId: restoreId, step: 0, filesDone: r.files, bytesDone: r.bytes, bytesPerSecond: live?.bytesPerSecond ?? 0, filesTotal: r.files, bytesTotal: r.bytes };
  } catch (err) {
    phase = 'failed';
    await audit(restoreEnded(subject(), endingOf(err, [FailureTypes.TenantMismatch, FailureTypes.StorageAccessDenied])));
    throw err;
  }
  await audit(restoreEnded({ ...subject(), files: r.files, bytes: r.bytes }, { ok: true }));
  return {
    asset: input.asset,
    snapshotId: r.snapshotId,
    snapshotTime: choice.time,
    node: nodeId,
    target: input.target,
    files: r.files,
    dirs: r.dirs,
    symlinks: r.symlinks,
    bytes: r.bytes,
    verified: true,
    durationMs: Date.now() - startedAt,
  };
}
