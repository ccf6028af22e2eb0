/**
 * Lifeline workers, one per role:
 *  - orchestrator: runs every workflow (runbook) and the activities that need
 *    no particular node, on `lifeline-orchestrator`;
 *  - node-agent: runs activities on one node (its files, its disks) on
 *    `lifeline-node-<nodeId>`; no workflows;
 *  - drill: runs chaos drills (ChaosDrillWorkflow and the fault injectors) on
 *    `lifeline-drill`, apart from the orchestrator a drill may crash. It runs
 *    on the machine of the nodes it drills (the local node provider).
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { NativeConnection, Worker } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import type { LoadedConfig } from '../config/load';
import { resolveStorage, type ResolvedStorage } from '../config/storage';
import type { Logger } from '../logging/logger';
import { installTemporalLogging } from '../logging/temporal';
import { createActivities } from '../activities';
import { TenantRepositories } from '../tenancy/repositories';
import { createS3Client } from '../activities/s3';
import { installIncidentHook } from '../activities/incident-hook';
import { DRILL_TASK_QUEUE, ORCHESTRATOR_TASK_QUEUE, nodeTaskQueue } from '../workflows/task-queues';
import { createDrillActivities } from '../activities/drill';
import { temporalTarget } from './temporal';

export type WorkerRole = 'orchestrator' | 'node-agent' | 'drill';
export const WORKER_ROLES: readonly WorkerRole[] = ['orchestrator', 'node-agent', 'drill'];

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface LifelineWorkerOptions {
  config: LoadedConfig;
  role: WorkerRole;
  /** Required for node-agent. */
  nodeId?: string;
  logger: Logger;
  /** Override the role's task queue (tests use unique queues). */
  taskQueue?: string;
  /** Use resolved storage instead of resolving it from config. */
  storage?: ResolvedStorage;
  /** Load workflows from a bundle made by `bundleWorkflowCode` instead of bundling at start. */
  workflowBundlePath?: string;
  /** Override the worker identity shown in `lifeline status`. */
  identity?: string;
}

export interface LifelineWorker {
  worker: Worker;
  role: WorkerRole;
  taskQueue: string;
  connection: NativeConnection;
  s3: S3Client;
  /** Run until `until` settles (or until shutdown), then close the connection and clients. */
  run(until?: Promise<unknown>): Promise<void>;
}

export function roleTaskQueue(role: WorkerRole, nodeId?: string): string {
  if (role === 'orchestrator') return ORCHESTRATOR_TASK_QUEUE;
  if (role === 'drill') return DRILL_TASK_QUEUE;
  if (!nodeId) throw new TypeError('a node-agent worker needs a node id');
  return nodeTaskQueue(nodeId);
}

export async function createLifelineWorker(opts: LifelineWorkerOptions): Promise<LifelineWorker> {
  const { config, role, logger } = opts;
  installTemporalLogging(logger);
  const taskQueue = opts.taskQueue ?? roleTaskQueue(role, opts.nodeId);
  const storage = opts.storage ?? resolveStorage(config);
  const target = temporalTarget(config);
  const s3 = createS3Client(storage);
  const connection = await NativeConnection.connect({ address: target.address });
  try {
    const repositories = new TenantRepositories(config, storage, logger);
    const activities = {
      ...createActivities({
        storage: { s3, bucket: storage.bucket, prefix: storage.prefix },
        config,
        repositories,
        nodeId: opts.nodeId,
        logger,
      }),
      ...(role === 'drill' ? createDrillActivities({ config, repositories, logger }) : {}),
    };
    const identity = opts.identity ?? `${role}${opts.nodeId ? `:${opts.nodeId}` : ''}@${process.pid}`;
    const worker = await Worker.create({
      connection,
      namespace: target.namespace,
      taskQueue,
      identity,
      activities,
      ...(role === 'orchestrator' || role === 'drill'
        ? opts.workflowBundlePath
          ? { workflowBundle: { codePath: opts.workflowBundlePath } }
          : { workflowsPath: WORKFLOWS_PATH }
        : {}),
      // Only small messages here: workers are long-lived and 2-core machines are slow.
      shutdownGraceTime: '10 seconds',
    });
    // Integrity failures found by this worker's verifications open incidents.
    const uninstallHook = role === 'orchestrator' ? installIncidentHook(config) : () => {};
    logger.info({ role, taskQueue, namespace: target.namespace, temporal: target.address, workerIdentity: identity }, 'worker ready');
    return {
      worker,
      role,
      taskQueue,
      connection,
      s3,
      async run(until?: Promise<unknown>) {
        try {
          if (until) await worker.runUntil(until);
          else await worker.run();
        } finally {
          uninstallHook();
          await connection.close().catch(() => {});
          s3.destroy();
        }
      },
    };
  } catch (e) {
    await connection.close().catch(() => {});
    s3.destroy();
    throw e;
  }
}
