/**
 * The main job until later issues give it real content: run the smoke
 * workflow (write an object, read it back, compare) against the configured
 * Temporal and object store, with an in-process orchestrator worker.
 */
import { randomUUID } from 'node:crypto';
import type { LoadedConfig } from '../config/load';
import { describeStorage, resolveStorage } from '../config/storage';
import type { Logger } from '../logging/logger';
import { smokeWorkflow, type SmokeResult } from '../workflows';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { connectClient } from './temporal';
import { createLifelineWorker } from './worker';

export interface SmokeRunOptions {
  config: LoadedConfig;
  logger: Logger;
  /** Defaults to lifeline-orchestrator. */
  taskQueue?: string;
  sizeBytes?: number;
  /** Run the storage activities on this node agent (which must be running). */
  nodeId?: string;
  /** Start an orchestrator worker in this process for the duration of the run (default true). */
  inProcessWorker?: boolean;
  timeoutMs?: number;
}

export interface SmokeRun {
  workflowId: string;
  runId: string;
  result: SmokeResult;
  durationMs: number;
  storage: string;
}

export async function runSmoke(opts: SmokeRunOptions): Promise<SmokeRun> {
  const { config, logger } = opts;
  const started = Date.now();
  const storage = resolveStorage(config);
  const taskQueue = opts.taskQueue ?? ORCHESTRATOR_TASK_QUEUE;
  const workflowId = `smoke-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  const log = logger.child({ workflowId });
  log.debug({ storage: describeStorage(storage), taskQueue }, 'starting smoke run');

  const { client, connection } = await connectClient(config);
  try {
    const handle = await client.workflow.start(smokeWorkflow, {
      taskQueue,
      workflowId,
      args: [{ key: `smoke/${workflowId}.bin`, sizeBytes: opts.sizeBytes ?? 1024 * 1024, nodeId: opts.nodeId }],
      workflowExecutionTimeout: opts.timeoutMs ? `${opts.timeoutMs} ms` : '10 minutes',
    });
    log.info({ runId: handle.firstExecutionRunId, taskQueue }, 'smoke workflow started');
    let result: SmokeResult;
    if (opts.inProcessWorker ?? true) {
      const w = await createLifelineWorker({ config, role: 'orchestrator', logger, taskQueue, storage });
      const resultPromise = handle.result();
      await w.run(resultPromise);
      result = await resultPromise;
    } else {
      result = await handle.result();
    }
    log.info({ key: result.key, bytes: result.bytes, matched: result.matched }, 'smoke workflow completed');
    return { workflowId, runId: handle.firstExecutionRunId, result, durationMs: Date.now() - started, storage: describeStorage(storage) };
  } finally {
    await connection.close().catch(() => {});
  }
}
