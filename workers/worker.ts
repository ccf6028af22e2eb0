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
import { followStorageRoutes, processStorageRoute } from '../drills/storage-route';
import type { AuditSink } from '../audit/log';
import { loadAuditSigningKey, openAuditLog } from '../audit/open';
import { temporalDataConverter } from './codec';

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
  /** Audit sink instead of the config's audit log (null: record nothing, log each entry) */
  audit?: AuditSink | null;
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
  // A network drill can route this worker's S3 traffic through its fault proxy while the fault lasts.
  followStorageRoutes({ nodeId: opts.nodeId });
  const resolved = opts.storage ?? resolveStorage(config);
  const storage = { ...resolved, route: resolved.route ?? processStorageRoute(config) };
  const target = temporalTarget(config);
  // Before connecting: a bad or missing payload key is a clear config error, not a half-started worker.
  const dataConverter = await temporalDataConverter(config);
  const s3 = createS3Client(storage);
  const connection = await NativeConnection.connect({ address: target.address });
  try {
    const repositories = new TenantRepositories(config, storage, logger);
    const audit = opts.audit !== undefined ? opts.audit : await openWorkerAudit(config, storage, logger);
    const activities = {
      ...createActivities({
        audit,
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
      ...(dataConverter ? { dataConverter } : {}),
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
    const payloadKey = dataConverter?.payloadCodecs?.[0]?.toString();
    logger.info({ role, taskQueue, namespace: target.namespace, temporal: target.address, workerIdentity: identity, payloadEncryption: payloadKey ?? 'off' }, 'worker ready');
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

/**
 * The audit log this worker's activities record into: the config's, when its
 * signing key exists. Without the key (audit log never initialised) the
 * worker still runs, says so once here, and every entry it would have
 * recorded is logged at warn level (README, "Audit log").
 */
export async function openWorkerAudit(config: LoadedConfig, storage: ResolvedStorage, logger: Logger): Promise<AuditSink | null> {
  if (!(await loadAuditSigningKey(config, { optional: true }))) {
    logger.warn({ event: 'audit-disabled' }, 'audit log not initialised (no audit signing key): audit entries are logged, not recorded; run `lifeline audit init`');
    return null;
  }
  return openAuditLog(config, { storage, logger });
}
