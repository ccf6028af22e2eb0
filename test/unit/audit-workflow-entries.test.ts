/** The audit entries workflows record: valid entries, ids and counts only, outcomes that say what happened. */
import { generateX25519Identity } from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { parseEntryInput } from '../../audit/entry';
import {
  approvalDecision,
  backupCompleted,
  backupEnded,
  backupStarted,
  garbageCollected,
  incidentStep,
  recoveryEnded,
  recoveryStep,
  restoreEnded,
  snapshotForgotten,
  verificationResult,
  type WorkflowAuditEntry,
} from '../../audit/workflow-entries';

const SNAP = 'ab'.repeat(32);
const actor = { kind: 'workflow' as const, id: 'backup-llama-20260101T000000Z-abc123', runId: 'run-1' };
const valid = (e: WorkflowAuditEntry) => parseEntryInput({ ...e, actor });

describe('audit entries of workflows', () => {
  it('backup: started, completed with snapshot and byte counts, failed by failure type only, cancelled', () => {
    expect(valid(backupStarted({ asset: 'llama', tenant: 'acme', node: 'gpu-1', trigger: 'manual' }))).toMatchObject({ type: 'backup', action: 'started', outcome: 'started', asset: 'llama', tenant: 'acme', node: 'gpu-1' });
    const done = valid(
      backupCompleted({ asset: 'llama', tenant: 'acme', node: 'gpu-1', snapshot: SNAP, trigger: 'schedule', files: 3, bytes: 1000, newBytes: 10, uploadedBytes: 20, attempts: 1, parent: null }),
    );
    expect(done).toMatchObject({ type: 'backup', action: 'completed', outcome: 'success', snapshot: SNAP, details: { files: 3, bytes: 1000, newBytes: 10, uploadedBytes: 20, parent: null } });
    const failed = valid(backupEnded({ asset: 'llama', tenant: 'acme', trigger: 'manual', attempts: 4 }, { ok: false, cancelled: false, failureType: 'AssetKeepsChanging' }));
    expect(failed).toMatchObject({ outcome: 'failure', action: 'failed', details: { failureType: 'AssetKeepsChanging', attempts: 4 } });
    expect(valid(backupEnded({ asset: 'llama', trigger: 'manual', attempts: 1 }, { ok: false, cancelled: true }))).toMatchObject({ outcome: 'cancelled', action: 'cancelled' });
  });

  it('restore: completed with files and bytes; a tenant mismatch is denied and names the owning tenant', () => {
    expect(valid(restoreEnded({ asset: 'llama', tenant: 'acme', node: 'gpu-1', snapshot: SNAP, files: 2, bytes: 5 }, { ok: true }))).toMatchObject({
      type: 'restore',
      action: 'completed',
      outcome: 'success',
      details: { files: 2, bytes: 5 },
    });
    const denied = valid(restoreEnded({ asset: 'globex-model', tenant: 'acme', node: 'gpu-1', ownerTenant: 'globex' }, { ok: false, cancelled: false, denied: true, failureType: 'TenantMismatch' }));
    expect(denied).toMatchObject({ outcome: 'denied', action: 'refused', tenant: 'acme', details: { failureType: 'TenantMismatch', ownerTenant: 'globex' } });
    expect(denied.snapshot).toBeUndefined();
  });

  it('verification: verified is success, corrupt is failure, with mode and problem count', () => {
    const base = { asset: 'llama', tenant: 'acme', snapshot: SNAP, mode: 'deep' as const, samplePercent: 10 };
    expect(valid(verificationResult({ ...base, state: 'verified', problemCount: 0 }))).toMatchObject({ type: 'verification', action: 'deep-check', outcome: 'success' });
    expect(valid(verificationResult({ ...base, mode: 'shallow', state: 'corrupt', problemCount: 3 }))).toMatchObject({ action: 'shallow-check', outcome: 'failure', details: { problems: 3, state: 'corrupt' } });
  });

  it('retention, incidents, approvals and recoveries', () => {
    expect(valid(snapshotForgotten({ asset: 'llama', tenant: 'acme', snapshot: SNAP, snapshotTime: '2026-01-01T00:00:00.000Z' }))).toMatchObject({ type: 'retention-deletion', action: 'snapshot-forgotten', snapshot: SNAP });
    expect(valid(garbageCollected({ tenant: 'acme', condemned: 1, deleted: 2, deletedBytes: 3, rescued: 0 }))).toMatchObject({ action: 'garbage-collected', details: { deletedPacks: 2, condemnedPacks: 1 } });
    expect(valid(incidentStep({ incident: 'incident-node-lost-gpu-1', incidentType: 'node-lost', action: 'opened', node: 'gpu-1' }, { severity: 'high' }))).toMatchObject({
      type: 'incident-step',
      node: 'gpu-1',
      details: { incident: 'incident-node-lost-gpu-1', severity: 'high' },
    });
    expect(valid(approvalDecision({ incident: 'i-1', step: 'rebuild-node', decision: 'approved', decidedBy: 'oncall-alice' }))).toMatchObject({ type: 'approval', action: 'granted', outcome: 'success', details: { decidedBy: 'oncall-alice' } });
    expect(valid(approvalDecision({ incident: 'i-1', step: 'restore', decision: 'rejected', decidedBy: 'bob' }))).toMatchObject({ action: 'rejected', outcome: 'denied' });
    expect(valid(approvalDecision({ incident: 'i-1', step: 'restore', decision: 'expired' }))).toMatchObject({ action: 'expired', outcome: 'cancelled' });
    expect(valid(recoveryStep({ node: 'gpu-1', step: 'restore:llama' }))).toMatchObject({ action: 'recovery-step', details: { step: 'restore:llama' } });
    expect(valid(recoveryEnded({ node: 'gpu-1', assets: 0, jobs: 0, durationMs: 5 }, { ok: false, cancelled: false, failureType: 'NoVerifiedSnapshot' }, 'choose-snapshots'))).toMatchObject({
      action: 'node-recovery-failed',
      outcome: 'failure',
      details: { failureType: 'NoVerifiedSnapshot', failedStep: 'choose-snapshots' },
    });
  });

  it('a secret in a detail is refused by the entry schema', async () => {
    const e = incidentStep({ incident: 'i-1', incidentType: 'manual', action: 'opened' }, { note: await generateX25519Identity() });
    expect(() => valid(e)).toThrow(/must not hold secrets/);
  });
});
