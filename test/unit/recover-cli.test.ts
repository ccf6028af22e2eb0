import { describe, expect, it } from 'vitest';
import { formatRecoverResult, parseSnapshotOverrides } from '../../cli/recover';
import type { RecoverNodeResult } from '../../workflows/recover-node';

describe('lifeline recover node', () => {
  it('parses --snapshot asset=id overrides and refuses malformed or repeated ones', () => {
    expect(parseSnapshotOverrides([])).toEqual({});
    expect(parseSnapshotOverrides(['ckpt=0a1b2c3d', 'model.v2=abcdef'])).toEqual({ ckpt: '0a1b2c3d', 'model.v2': 'abcdef' });
    expect(() => parseSnapshotOverrides(['ckpt'])).toThrow(/expected <asset>=<snapshot id/);
    expect(() => parseSnapshotOverrides(['ckpt=xyz123'])).toThrow(/expected <asset>=/);
    expect(() => parseSnapshotOverrides(['ckpt=abc'])).toThrow(/at least 6 hex/);
    expect(() => parseSnapshotOverrides(['ckpt=abcdef', 'ckpt=123456'])).toThrow(/asset ckpt given twice/);
  });

  it('prints the restore point of every asset, the RTO window and the RPO of every job', () => {
    const r: RecoverNodeResult = {
      node: 'gpu1',
      workflowId: 'recover-node-gpu1-x',
      failedAt: '2026-01-01T10:00:00.000Z',
      startedAt: '2026-01-01T10:05:00.000Z',
      finishedAt: '2026-01-01T10:07:30.000Z',
      durationMs: 150_000,
      assets: [
        { asset: 'etc', kind: 'platform-config', stage: 'platform-config', snapshotId: 'aaaaaaaaaaaaaaaa', snapshotTime: '2026-01-01T09:00:00.000Z', source: 'last-verified', files: 2, bytes: 2048, verified: true, restoreWorkflowId: 'w1' },
        { asset: 'ckpt', kind: 'checkpoint', stage: 'checkpoints', snapshotId: 'bbbbbbbbbbbbbbbb', snapshotTime: '2026-01-01T09:50:00.000Z', source: 'override', files: 8, bytes: 1_048_576, verified: true, restoreWorkflowId: 'w2' },
      ],
      jobs: [{ job: 'train', checkpointAsset: 'ckpt', pid: 42, restoredStep: 80, stepAtFailure: 130, confirmedStep: 90, rpoSeconds: 600, rpoSteps: 50 }],
      steps: [],
      mode: 'rebuild',
    };
    const text = formatRecoverResult(r);
    expect(text).toContain('node gpu1 recovered in 150 s (2026-01-01T10:05:00.000Z → 2026-01-01T10:07:30.000Z; lost at 2026-01-01T10:00:00.000Z)');
    expect(text).toContain('etc: snapshot aaaaaaaaaaaa of 2026-01-01T09:00:00.000Z (last-verified), 2 file(s)');
    expect(text).toContain('ckpt: snapshot bbbbbbbbbbbb of 2026-01-01T09:50:00.000Z (override)');
    expect(text).toContain('job train: resumed from step 80 (pid 42), now past step 90; RPO 600 s, 50 step(s) lost (step 130 at the failure)');
    expect(formatRecoverResult({ ...r, jobs: [{ ...r.jobs[0]!, stepAtFailure: null, rpoSteps: null }] })).toMatch(/RPO 600 s$/);
  });
});
