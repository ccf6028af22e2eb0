/**
 * Recording audit entries from workflows: `await audit(entry)` after the step
 * it records. The entry (ids and counts only, audit/workflow-entries.ts) goes
 * to the `auditRecord` activity on the workflow's own task queue, which signs
 * and appends it with this workflow as the actor.
 *
 * An audit entry never changes the runbook's outcome: recording is retried
 * for a few minutes (storage outages), and an entry that still cannot be
 * recorded is logged at error level with its type and action, and the
 * workflow goes on. Recording runs even when the workflow is being cancelled.
 */
import { ActivityFailure, ApplicationFailure, CancellationScope, isCancellation, log, proxyActivities } from '@temporalio/workflow';
import type { AuditActivities } from '../activities/audit';
import type { Ending, WorkflowAuditEntry } from '../audit/workflow-entries';

const recorder = proxyActivities<AuditActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 10 },
});

export async function audit(entry: WorkflowAuditEntry): Promise<void> {
  try {
    await CancellationScope.nonCancellable(() => recorder.auditRecord(entry));
  } catch (err) {
    log.error('audit entry NOT recorded', { auditType: entry.type, auditAction: entry.action, outcome: entry.outcome, asset: entry.asset, snapshot: entry.snapshot, error: String(err) });
  }
}

/** The failure type of an activity's, a child's or the workflow's own ApplicationFailure. */
export function failureTypeOf(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && i < 6; e = (e as Error & { cause?: unknown }).cause, i++) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
    if (!(e instanceof ActivityFailure) && !(e instanceof Error)) break;
  }
  return undefined;
}

/** How an operation that threw `err` ended (denied when its failure type is one of `deniedTypes`). */
export function endingOf(err: unknown, deniedTypes: readonly string[] = []): Extract<Ending, { ok: false }> {
  const failureType = failureTypeOf(err);
  return {
    ok: false,
    cancelled: isCancellation(err),
    ...(failureType !== undefined ? { failureType } : {}),
    ...(failureType !== undefined && deniedTypes.includes(failureType) ? { denied: true } : {}),
  };
}
