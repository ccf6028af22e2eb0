import { ApplicationFailure, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { isValidNodeId, nodeTaskQueue } from './task-queues';

export interface SmokeInput {
  /** Object key under the storage prefix. */
  key: string;
  sizeBytes: number;
  /** Run the storage activities on this node agent's task queue instead of the orchestrator's. */
  nodeId?: string;
  /** Delete the object after a successful comparison (default true). */
  cleanup?: boolean;
}

export interface SmokeResult {
  bucket: string;
  key: string;
  bytes: number;
  sha256: string;
  matched: boolean;
  taskQueue: string;
  cleanedUp: boolean;
}

/**
 * Smoke runbook: write an object through a worker, read it back, compare, and
 * clean up. Fails (non-retryable) when the content read back differs.
 */
export async function smokeWorkflow(input: SmokeInput): Promise<SmokeResult> {
  if (input.nodeId !== undefined && !isValidNodeId(input.nodeId)) {
    throw ApplicationFailure.nonRetryable(`invalid node id ${JSON.stringify(input.nodeId)}`, 'InvalidInput');
  }
  const taskQueue = input.nodeId ? nodeTaskQueue(input.nodeId) : workflowInfo().taskQueue;
  const acts = proxyActivities<ReturnType<typeof createActivities>>({
    taskQueue,
    startToCloseTimeout: '2 minutes',
    // A node agent that is not running must not leave the workflow hanging forever.
    scheduleToCloseTimeout: '10 minutes',
    retry: { initialInterval: '1 second', maximumInterval: '20 seconds', maximumAttempts: 5 },
  });
  const written = await acts.smokeWrite({ key: input.key, sizeBytes: input.sizeBytes });
  const read = await acts.smokeVerify(written);
  if (!read.matched) {
    throw ApplicationFailure.nonRetryable(
      `object ${written.key} read back differs: wrote ${written.bytes} bytes sha256 ${written.sha256}, read ${read.bytes} bytes sha256 ${read.sha256}`,
      'SmokeMismatch',
    );
  }
  const cleanup = input.cleanup ?? true;
  if (cleanup) await acts.smokeDelete(written);
  log.info('smoke workflow passed', { key: written.key, bytes: written.bytes });
  return { ...written, matched: true, taskQueue, cleanedUp: cleanup };
}
