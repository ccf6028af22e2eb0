/**
 * ModelBomWorkflow — the Model BOM of one model snapshot:
 *
 *   1. which training job's code to hash, if any      (orchestrator)
 *   2. hash the job's code where it lives              (the job's node)
 *   3. make, validate, sign and store the BOM          (orchestrator)
 *
 * Run as a child of every model backup (id `mbom-<snapshotId>`), or on its
 * own for an older snapshot. Idempotent: a valid stored BOM is kept. The
 * outcome is an audit entry (type backup, action model-bom-stored / -kept /
 * -failed).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { MbomActivities, TrainingCodeHash } from '../activities/mbom';
import { nodeTaskQueue } from './task-queues';
import { audit, endingOf } from './audit';

export interface ModelBomInput {
  asset: string;
  snapshotId: string;
}

export interface ModelBomResult {
  asset: string;
  snapshotId: string;
  key: string;
  created: boolean;
  files: number;
  components: number;
  codeSha256?: string;
}

export const modelBomWorkflowId = (snapshotId: string) => `mbom-${snapshotId}`;

export async function modelBomWorkflow(input: ModelBomInput): Promise<ModelBomResult> {
  const orchestrator = proxyActivities<MbomActivities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 20 },
  });
  const plan = await orchestrator.modelBomPlan({ asset: input.asset });
  const subject = { asset: input.asset, tenant: plan.tenant, snapshot: input.snapshotId };
  try {
    let code: TrainingCodeHash | undefined;
    if (plan.job) {
      const node = proxyActivities<MbomActivities>({
        taskQueue: nodeTaskQueue(plan.job.node),
        startToCloseTimeout: '30 minutes',
        // The node agent may be restarting: keep the work queued for a while.
        scheduleToCloseTimeout: '2 hours',
        retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute' },
      });
      code = await node.trainingCodeHash({ job: plan.job.name });
    }
    const r = await orchestrator.writeModelBom({ asset: input.asset, snapshotId: input.snapshotId, code });
    await audit({ type: 'backup', action: r.created ? 'model-bom-stored' : 'model-bom-kept', outcome: 'success', ...subject, details: { files: r.files, components: r.components } });
    return { asset: input.asset, ...r, ...(code ? { codeSha256: code.sha256 } : {}) };
  } catch (err) {
    const e = endingOf(err);
    await audit({ type: 'backup', action: 'model-bom-failed', outcome: e.cancelled ? 'cancelled' : 'failure', ...subject, details: { failureType: e.failureType ?? 'unknown' } });
    throw err;
  }
}
