/**
 * The audit entries Lifeline's workflows record, built from ids and counts
 * only (never file names, paths, failure messages or secrets: a failure is
 * named by its type). Pure functions without Temporal or Node imports, so
 * workflows can use them and unit tests can check them.
 *
 * The actor is not part of these: the recording activity fills it with the
 * calling workflow's id, run id and type (activities/audit.ts).
 */
import type { AuditEntryInput } from './entry';

/** An entry as a workflow hands it to the `auditRecord` activity. */
export type WorkflowAuditEntry = Omit<AuditEntryInput, 'actor' | 'time'>;

/** How an operation ended, as far as the audit log is concerned. */
export type Ending = { ok: true } | { ok: false; cancelled: boolean; denied?: boolean; failureType?: string };

interface Subject {
  asset: string;
  tenant?: string;
  snapshot?: string;
  node?: string;
}

const subject = (s: Subject) => ({
  asset: s.asset,
  ...(s.tenant !== undefined ? { tenant: s.tenant } : {}),
  ...(s.snapshot !== undefined ? { snapshot: s.snapshot } : {}),
  ...(s.node !== undefined ? { node: s.node } : {}),
});

/** Outcome, action and details of an operation that did not succeed. */
function notOk(e: Extract<Ending, { ok: false }>): Pick<WorkflowAuditEntry, 'outcome' | 'action' | 'details'> {
  if (e.denied) return { outcome: 'denied', action: 'refused', details: { failureType: e.failureType ?? 'denied' } };
  if (e.cancelled) return { outcome: 'cancelled', action: 'cancelled' };
  return { outcome: 'failure', action: 'failed', details: { failureType: e.failureType ?? 'unknown' } };
}

export function backupStarted(s: Subject & { trigger: string }): WorkflowAuditEntry {
  return { type: 'backup', action: 'started', outcome: 'started', ...subject(s), details: { trigger: s.trigger } };
}

export function backupCompleted(
  s: Subject & { snapshot: string; trigger: string; files: number; bytes: number; newBytes: number; uploadedBytes: number; attempts: number; parent?: string | null },
): WorkflowAuditEntry {
  return {
    type: 'backup',
    action: 'completed',
    outcome: 'success',
    ...subject(s),
    details: {
      trigger: s.trigger,
      files: s.files,
      bytes: s.bytes,
      newBytes: s.newBytes,
      uploadedBytes: s.uploadedBytes,
      attempts: s.attempts,
      parent: s.parent ?? null,
    },
  };
}

export function backupEnded(s: Subject & { trigger: string; attempts: number }, e: Extract<Ending, { ok: false }>): WorkflowAuditEntry {
  const n = notOk(e);
  return { type: 'backup', ...n, ...subject(s), details: { ...n.details, trigger: s.trigger, attempts: s.attempts } };
}

export function verificationResult(
  s: Subject & { snapshot: string; mode: 'shallow' | 'deep'; samplePercent: number; state: 'verified' | 'corrupt' | 'forgotten'; problemCount: number },
): WorkflowAuditEntry {
  return {
    type: 'verification',
    action: s.mode === 'deep' ? 'deep-check' : 'shallow-check',
    outcome: s.state === 'verified' ? 'success' : s.state === 'corrupt' ? 'failure' : 'cancelled',
    ...subject(s),
    details: { mode: s.mode, samplePercent: s.samplePercent, state: s.state, problems: s.problemCount },
  };
}

export function verificationEnded(s: Subject & { mode: 'shallow' | 'deep' }, e: Extract<Ending, { ok: false }>): WorkflowAuditEntry {
  const n = notOk(e);
  return { type: 'verification', ...n, ...subject(s), details: { ...n.details, mode: s.mode } };
}

export function restoreEnded(
  s: Subject & { node: string; ownerTenant?: string; files?: number; bytes?: number; overwrite?: boolean; partial?: boolean },
  e: Ending,
): WorkflowAuditEntry {
  const common = {
    ...(s.ownerTenant !== undefined ? { ownerTenant: s.ownerTenant } : {}),
    ...(s.overwrite ? { overwrite: true } : {}),
    ...(s.partial ? { partial: true } : {}),
  };
  if (e.ok) {
    return { type: 'restore', action: 'completed', outcome: 'success', ...subject(s), details: { files: s.files ?? 0, bytes: s.bytes ?? 0, ...common } };
  }
  const n = notOk(e);
  return { type: 'restore', ...n, ...subject(s), details: { ...n.details, ...common } };
}

export function garbageCollected(s: { tenant: string; condemned: number; deleted: number; deletedBytes: number; rescued: number }): WorkflowAuditEntry {
  return {
    type: 'retention-deletion',
    action: 'garbage-collected',
    outcome: 'success',
    tenant: s.tenant,
    details: { condemnedPacks: s.condemned, deletedPacks: s.deleted, deletedBytes: s.deletedBytes, rescuedPacks: s.rescued },
  };
}

export function snapshotForgotten(s: Subject & { snapshot: string; snapshotTime: string }): WorkflowAuditEntry {
  return { type: 'retention-deletion', action: 'snapshot-forgotten', outcome: 'success', ...subject(s), details: { snapshotTime: s.snapshotTime } };
}

/** One step of an incident runbook: opened, contained, approval awaited, recovery, closed, … */
export function incidentStep(
  s: { incident: string; incidentType: string; action: string; outcome?: WorkflowAuditEntry['outcome']; asset?: string; node?: string },
  details: Record<string, string | number | boolean | null> = {},
): WorkflowAuditEntry {
  return {
    type: 'incident-step',
    action: s.action,
    outcome: s.outcome ?? 'success',
    ...(s.asset !== undefined ? { asset: s.asset } : {}),
    ...(s.node !== undefined ? { node: s.node } : {}),
    details: { incident: s.incident, incidentType: s.incidentType, ...details },
  };
}

/** An approval or rejection of a destructive step; `decidedBy` is who decided (a user, or policy:autoApprove). */
export function approvalDecision(s: { incident: string; step: string; decision: 'approved' | 'rejected' | 'expired'; decidedBy?: string }): WorkflowAuditEntry {
  return {
    type: 'approval',
    action: s.decision === 'approved' ? 'granted' : s.decision === 'rejected' ? 'rejected' : 'expired',
    outcome: s.decision === 'approved' ? 'success' : s.decision === 'rejected' ? 'denied' : 'cancelled',
    details: { incident: s.incident, step: s.step, ...(s.decidedBy !== undefined ? { decidedBy: s.decidedBy.slice(0, 256) } : {}) },
  };
}

/** A step of RecoverNodeWorkflow (its restores record their own `restore` entries). */
export function recoveryStep(s: { node: string; step: string; outcome?: WorkflowAuditEntry['outcome'] }, details: Record<string, string | number | boolean | null> = {}): WorkflowAuditEntry {
  return { type: 'incident-step', action: 'recovery-step', outcome: s.outcome ?? 'success', node: s.node, details: { step: s.step, ...details } };
}

export function recoveryEnded(s: { node: string; assets: number; jobs: number; durationMs: number }, e: Ending, failedStep?: string): WorkflowAuditEntry {
  if (e.ok) {
    return { type: 'incident-step', action: 'node-recovered', outcome: 'success', node: s.node, details: { assets: s.assets, jobs: s.jobs, durationMs: s.durationMs } };
  }
  const n = notOk(e);
  return { type: 'incident-step', action: 'node-recovery-failed', outcome: n.outcome, node: s.node, details: { ...n.details, ...(failedStep ? { failedStep } : {}) } };
}
