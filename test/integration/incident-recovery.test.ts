/**
 * incident.recovery: recover-node against the real Temporal dev server and
 * MinIO: approving the rebuild of a lost node starts RecoverNodeWorkflow as the
 * incident's child and the incident follows it. Here the node's asset has no
 * verified snapshot, so the recovery stops before building anything and the
 * incident ends `failed` with the child's reason.
 */
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dispatchEvent } from '../../events/dispatch';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { IncidentView } from '../../workflows/incident';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';
import { testServices, uniqueTaskQueue } from '../support/services';

let p: TestPlatform;
let worker: LifelineWorker;
let running: Promise<void>;
let connection: Connection;
let client: Client;
let taskQueue: string;
const started: string[] = [];
const log = createBufferLogger({ level: 'warn' });

beforeAll(async () => {
  p = await createTestPlatform({ label: 'increc', assets: { [`m-${suffix()}`]: {} } });
  (p.platform as Record<string, unknown>).incident = { recovery: 'recover-node', approvalTimeout: '1h' };
  await p.rewrite();
  taskQueue = uniqueTaskQueue('increc');
  worker = await createLifelineWorker({ config: p.config, role: 'orchestrator', logger: log.logger, taskQueue });
  running = worker.run();
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
}, 300_000);

afterAll(async () => {
  for (const id of started) await client?.workflow.getHandle(id).terminate('test cleanup').catch(() => {});
  worker?.worker.shutdown();
  await running?.catch(() => {});
  await connection?.close();
  await p?.cleanup();
});

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('incident recovery', () => {
  it('approving rebuild-node starts RecoverNodeWorkflow as a child and the incident follows its outcome', async () => {
    const detectedAt = new Date(Date.now() - 60_000).toISOString();
    const r = await dispatchEvent({ type: 'node-lost', node: p.node, detectedAt }, { client, config: p.config, taskQueue, actor: 'test' });
    const id = r.incident!;
    started.push(id);
    const handle = client.workflow.getHandle(id);
    await until('rebuild-node awaiting approval', async () => (((await handle.query('incident')) as IncidentView).steps['rebuild-node'] === 'awaiting-approval' ? true : undefined));
    await handle.executeUpdate('approve', { args: [{ step: 'rebuild-node', actor: 'carol', reason: 'node is gone' }] });

    const done = (await handle.result()) as IncidentView;
    const childId = `${id}-recover-${p.node}`;
    started.push(childId);
    expect(done.status).toBe('failed');
    expect(done.steps).toEqual({ 'rebuild-node': 'failed' });
    expect(done.recoveries).toEqual([{ node: p.node, workflowId: childId, outcome: 'failed', detail: expect.stringMatching(/verified/i) }]);
    const actions = done.timeline.map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['approved:rebuild-node', `recovery-started:${p.node}`, `recovery-failed:${p.node}`, 'closed:failed']));
    expect(actions.indexOf(`recovery-started:${p.node}`)).toBeGreaterThan(actions.indexOf('approved:rebuild-node'));
    expect(done.summary).toMatchObject({ outcome: 'failed', restored: [], timeToRecoverSeconds: null });

    // The child is a real RecoverNodeWorkflow, started by the incident, with the node and the failure time.
    const child = await client.workflow.getHandle(childId).describe();
    expect(child.type).toBe('recoverNodeWorkflow');
    expect(child.parentExecution?.workflowId).toBe(id);
    expect(child.status.name).toBe('FAILED');
    const history = await client.workflow.getHandle(childId).fetchHistory();
    const input = JSON.parse(Buffer.from(history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!.data!).toString('utf8'));
    expect(input).toEqual({ node: p.node, failedAt: detectedAt });
  }, 300_000);
});
