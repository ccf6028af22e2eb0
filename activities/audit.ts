/**
 * Audit recording from workflows and activities. Workflows record through
 * the `auditRecord` activity (workflows/audit.ts); activities that know more
 * than their workflow (each snapshot retention forgets) record through
 * `activityAuditor(deps)`. Either way the actor is the calling workflow (id,
 * run id, type), filled here from the activity's context, so an entry recorded
 * twice by a retried activity is recognisable.
 *
 * Without an audit log (`deps.audit` null: the worker found no audit signing
 * key), nothing is recorded and every entry not recorded is logged at warn
 * level with its type and action (README, "Audit log"): never silently.
 */
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { AuditEntryError, type AuditEntryInput } from '../audit/entry';
import type { AuditSink } from '../audit/log';
import type { WorkflowAuditEntry } from '../audit/workflow-entries';
import { StorageError } from '../engine/backend/object-store';

export interface AuditDeps {
  /** the installation's audit log; null or absent = not initialised (entries are logged, not recorded) */
  audit?: AuditSink | null;
}

export const AuditFailureTypes = { InvalidEntry: 'InvalidAuditEntry', Unavailable: 'AuditLogUnavailable' } as const;

/** The workflow whose activity is running, as an audit actor. */
function currentActor(): AuditEntryInput['actor'] {
  const info = Context.current().info;
  const wf = info.workflowExecution;
  return wf ? { kind: 'workflow', id: wf.workflowId, runId: wf.runId } : { kind: 'system', id: `activity:${info.activityType}` };
}

async function recordAs(deps: AuditDeps, entry: WorkflowAuditEntry): Promise<boolean> {
  const info = Context.current().info;
  if (!deps.audit) {
    log.warn('audit log not initialised: entry NOT recorded (run `lifeline audit init`)', {
      auditType: entry.type,
      auditAction: entry.action,
      outcome: entry.outcome,
      asset: entry.asset,
      snapshot: entry.snapshot,
    });
    return false;
  }
  const details = { ...(entry.details ?? {}), ...(info.workflowType ? { workflowType: info.workflowType } : {}) };
  try {
    await deps.audit.record({ ...entry, details, actor: currentActor() });
    return true;
  } catch (err) {
    if (err instanceof AuditEntryError) throw ApplicationFailure.nonRetryable(err.message, AuditFailureTypes.InvalidEntry);
    if (err instanceof StorageError && err.permanent) {
      throw ApplicationFailure.nonRetryable(
        `audit log unavailable: ${err.message} (is it initialised? run \`lifeline audit init\`; the writer needs write access to the audit bucket)`,
        AuditFailureTypes.Unavailable,
      );
    }
    throw err;
  }
}

/** For activities: record an entry as the workflow that runs this activity. */
export function activityAuditor(deps: AuditDeps): { record(entry: WorkflowAuditEntry): Promise<boolean> } {
  return { record: (entry) => recordAs(deps, entry) };
}

export function createAuditActivities(deps: AuditDeps) {
  return {
    /** Orchestrator: append one entry to the audit log (after the effect it records). */
    async auditRecord(entry: WorkflowAuditEntry): Promise<{ recorded: boolean }> {
      return { recorded: await recordAs(deps, entry) };
    },
  };
}

export type AuditActivities = ReturnType<typeof createAuditActivities>;
