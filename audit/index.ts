/**
 * The audit log's public surface: what workflows, activities and the CLI use.
 *
 *   const audit: AuditSink = await openAuditLog(config);            // once per worker
 *   await audit.record({ type: 'backup', action: 'completed', outcome: 'success',
 *     actor: { kind: 'workflow', id: workflowId, runId }, tenant, asset, snapshot,
 *     details: { files, bytes } });
 *
 * See FORMAT.md ("Audit log") for the stored format and README for operations.
 */
export { AUDIT_ACTOR_KINDS, AUDIT_ENTRY_TYPES, AUDIT_OUTCOMES, AuditEntryError } from './entry';
export type { AuditActor, AuditEntry, AuditEntryInput, AuditEntryType, AuditOutcome } from './entry';
export { AUDIT_PROBLEM_KINDS, AuditLog, AuditLogError } from './log';
export type {
  AppendResult,
  AuditLock,
  AuditLogOptions,
  AuditProblem,
  AuditProblemKind,
  AuditQuery,
  AuditRecord,
  AuditSink,
  AuditVerifyOptions,
  AuditVerifyReport,
  AuditWarning,
  AuditWitness,
} from './log';
export { initAudit, loadAuditSigningKey, openAuditLog, resolveAudit } from './open';
export type { AuditInitSummary, OpenAuditOptions, ResolvedAudit } from './open';
