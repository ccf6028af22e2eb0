/**
 * Retention runbook for one asset:
 *   1. apply the policy's keep rules — forget what they do not keep, but never a
 *      held or quarantined snapshot nor the newest verified one (holds are
 *      re-checked right before each deletion);
 *   2. collect garbage in the tenant's repository (two-phase mark and sweep with
 *      the policy's gcGrace; safe alongside running backups — the engine waits
 *      for their leases).
 * Collection runs as a child workflow with one id per repository, so two
 * assets of one tenant never collect the same repository at the same time.
 */
import {
  ApplicationFailure,
  executeChild,
  log,
  ParentClosePolicy,
  proxyActivities,
  sleep,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { createActivities } from '../activities';
import type { RetentionSummary } from '../activities/retention';
import type { GcReport } from '../engine/retention';

export interface RetentionInput {
  asset: string;
  /** decide and report only; nothing is deleted and no garbage is collected */
  dryRun?: boolean;
  /** how long to wait for another collection of the same repository before giving up (default 1 hour) */
  gcWaitMs?: number;
}

export interface RetentionResult {
  retention: RetentionSummary;
  /** null in a dry run, or when another collection kept the repository busy for longer than gcWaitMs */
  gc: GcReport | null;
  gcSkipped?: string;
}

export interface CollectGarbageInput {
  tenant: string;
  graceMs: number;
}

const quick = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});

const collecting = proxyActivities<ReturnType<typeof createActivities>>({
  // Collection reads every snapshot's tree: long on big repositories; the heartbeat shows it is alive.
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
});

/** Garbage collection of one tenant repository; started by retention with the id `lifeline-gc:<tenant>:<repositoryKey>`. */
export async function collectGarbageWorkflow(input: CollectGarbageInput): Promise<GcReport> {
  return collecting.collectRepositoryGarbage(input);
}

export async function retentionWorkflow(input: RetentionInput): Promise<RetentionResult> {
  if (typeof input?.asset !== 'string' || input.asset === '') throw ApplicationFailure.nonRetryable('retention needs an asset name', 'InvalidInput');

  // 1. Keep rules, holds, forget.
  const retention = await quick.applyRetention({ asset: input.asset, dryRun: input.dryRun ?? false });
  log.info('retention applied', { asset: input.asset, dryRun: retention.dryRun, kept: retention.keptCount, forgotten: retention.forgottenCount });
  if (retention.dryRun) return { retention, gc: null };

  // 2. Collect garbage, one collection per repository at a time.
  const gcId = `lifeline-gc:${retention.tenant}:${retention.repositoryKey}`;
  const deadline = Date.now() + (input.gcWaitMs ?? 3_600_000);
  for (;;) {
    try {
      const gc = await executeChild(collectGarbageWorkflow, {
        workflowId: gcId,
        args: [{ tenant: retention.tenant, graceMs: retention.gcGraceMs }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
      return { retention, gc };
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
      if (Date.now() >= deadline) {
        const why = `another garbage collection of tenant ${retention.tenant}'s repository (${gcId}) kept running; the next run collects`;
        log.warn(why);
        return { retention, gc: null, gcSkipped: why };
      }
      // Another asset of the tenant is collecting: its run covers most of ours; wait and collect once more.
      await sleep('15 seconds');
    }
  }
}
