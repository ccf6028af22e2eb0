/**
 * Durability of the embedded Temporal: a workflow started before the dev
 * server is SIGKILLed completes after the stack is brought up again
 * (SQLite persistence via --db-filename). Uses its own Temporal instance,
 * started with the devstack code on its own ports, so it can kill it.
 */
import { Client, Connection } from '@temporalio/client';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { temporalHealthy } from '../../devstack/health';
import { stackLayout, temporalAddress, type StackSettings } from '../../devstack/layout';
import { pidAlive, waitFor } from '../../devstack/process';
import { killService, up } from '../../devstack/stack';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker } from '../../workers/worker';
import { smokeWorkflow } from '../../workflows';
import { TEST_ACCESS_KEY_ENV, TEST_SECRET_KEY_ENV, testConfig } from '../support/config';
import { createTestBucket, testServices, uniqueTaskQueue } from '../support/services';
import { privateStack, removePrivateStack } from '../support/private-stack';

let dir: string;
let settings: StackSettings;

beforeAll(async () => {
  // storage comes from the shared test MinIO
  ({ dir, settings } = await privateStack('lifeline-persist-test', { temporal: true }));
});

afterAll(async () => {
  await removePrivateStack({ dir, settings });
});

async function connect(): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: temporalAddress(settings) });
  return { client: new Client({ connection, namespace: settings.namespace }), connection };
}

describe('embedded Temporal persistence', () => {
  it('a workflow started before a SIGKILL of the dev server completes after the stack is brought up again', async () => {
    const [first] = await up(settings, { healthTimeoutMs: 180_000 });
    expect(first).toMatchObject({ service: 'temporal', state: 'started' });

    const bucket = await createTestBucket('persist');
    const taskQueue = uniqueTaskQueue('persist');
    const workflowId = `persist-${Date.now()}`;
    let runId: string;
    {
      const { client, connection } = await connect();
      // No worker yet: the workflow exists only in the server's database.
      const handle = await client.workflow.start(smokeWorkflow, {
        taskQueue,
        workflowId,
        args: [{ key: `persist/${workflowId}.bin`, sizeBytes: 64 * 1024 }],
      });
      runId = handle.firstExecutionRunId;
      const desc = await handle.describe();
      expect(desc.status.name).toBe('RUNNING');
      await connection.close();
    }

    // Crash: SIGKILL, no chance to flush anything.
    const killedPid = await killService(settings, 'temporal');
    // gone (and reaped: the test process spawned it)
    await waitFor(`pid ${killedPid} to be reaped`, () => !pidAlive(killedPid), { timeoutMs: 30_000, intervalMs: 100 });
    expect(await temporalHealthy(temporalAddress(settings), settings.namespace, 1000)).toBe(false);

    // Bring the stack up again: a new process on the same database.
    const [second] = await up(settings, { healthTimeoutMs: 180_000 });
    expect(second).toMatchObject({ service: 'temporal', state: 'started' });
    expect(second!.pid).not.toBe(killedPid);

    const { client, connection } = await connect();
    try {
      const handle = client.workflow.getHandle(workflowId);
      const desc = await handle.describe();
      expect(desc.runId).toBe(runId);
      expect(desc.status.name).toBe('RUNNING');

      // Now a worker picks it up and the workflow completes.
      const svc = testServices();
      const config = configFromObject(
        {
          temporal: { address: temporalAddress(settings), namespace: settings.namespace },
          storage: {
            endpoint: svc.s3.endpoint,
            bucket,
            credentials: { accessKeyId: { env: TEST_ACCESS_KEY_ENV }, secretAccessKey: { env: TEST_SECRET_KEY_ENV } },
          },
        },
        { source: 'persistence test', checkSecrets: false },
      );
      testConfig({ bucket }); // sets the credential env vars the references point at
      const { logger } = createBufferLogger({ level: 'warn' });
      const w = await createLifelineWorker({ config, role: 'orchestrator', logger, taskQueue });
      const result = handle.result();
      await w.run(result);
      const r = await result;
      expect(r).toMatchObject({ matched: true, bytes: 64 * 1024, bucket, cleanedUp: true });
      expect((await handle.describe()).status.name).toBe('COMPLETED');
    } finally {
      await connection.close();
    }
    // the state lived in the SQLite file given by --db-filename
    expect(existsSync(stackLayout(dir).temporalDb)).toBe(true);
  }, 600_000);
});
