/**
 * Node health against the real Temporal dev server: the health workflow probes
 * a running node agent (alive), and once the agent stops, a probe left
 * unanswered past the threshold opens one node-lost incident for that node.
 */
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { IncidentView } from '../../workflows/incident';
import type { NodeHealthView } from '../../workflows/node-health';
import { nodeHealthId, nodeHealthInput } from '../../cli/incident';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';
import { testServices, uniqueTaskQueue } from '../support/services';

let p: TestPlatform;
let orchestrator: LifelineWorker;
let agent: LifelineWorker;
const running: Array<Promise<void>> = [];
let connection: Connection;
let client: Client;
let taskQueue: string;
const started: string[] = [];
const log = createBufferLogger({ level: 'warn' });

beforeAll(async () => {
  p = await createTestPlatform({ label: 'nodehealth', assets: { [`m-${suffix()}`]: {} } });
  (p.platform as Record<string, unknown>).incident = { nodeProbeEvery: '1s', nodeLostAfter: '4s', approvalTimeout: '1h' };
  await p.rewrite();
  taskQueue = uniqueTaskQueue('nodehealth');
  orchestrator = await createLifelineWorker({ config: p.config, role: 'orchestrator', logger: log.logger, taskQueue });
  agent = await createLifelineWorker({ config: p.config, role: 'node-agent', nodeId: p.node, logger: log.logger });
  running.push(orchestrator.run(), agent.run());
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
}, 300_000);

afterAll(async () => {
  for (const id of started) await client?.workflow.getHandle(id).terminate('test cleanup').catch(() => {});
  for (const w of [agent, orchestrator]) if (w?.worker.getState() === 'RUNNING') w.worker.shutdown();
  await Promise.allSettled(running);
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

describe('node health', () => {
  it('a node agent that goes silent past the threshold opens a node-lost incident', async () => {
    const id = nodeHealthId(p.node);
    expect(nodeHealthInput(p.config, p.node)).toEqual({ node: p.node, probeEverySeconds: 1, lostAfterSeconds: 4 });
    await client.workflow.start('nodeHealthWorkflow', { workflowId: id, taskQueue, args: [nodeHealthInput(p.config, p.node)] });
    started.push(id);
    const health = () => client.workflow.getHandle(id).query('health') as Promise<NodeHealthView>;
    const alive = await until('the node alive', async () => ((await health()).state === 'alive' ? health() : undefined));
    expect(alive).toMatchObject({ node: p.node, state: 'alive', incident: null });
    const incidentId = `incident-node-lost-${p.node}`;
    started.push(incidentId);
    await expect(client.workflow.getHandle(incidentId).describe()).rejects.toThrow();

    // The node agent stops: the next probe stays unanswered.
    const stoppedAt = Date.now();
    agent.worker.shutdown();
    await running[1];
    const lost = await until('the node lost', async () => ((await health()).state === 'lost' ? health() : undefined));
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(4000);
    expect(lost.incident).toBe(incidentId);
    expect(Date.parse(lost.lastSeen!)).toBeLessThanOrEqual(stoppedAt + 1000);
    const incident = (await client.workflow.getHandle(incidentId).query('incident')) as IncidentView;
    expect(incident).toMatchObject({ type: 'node-lost', nodes: [p.node] });
    expect(incident.timeline[0]).toMatchObject({ actor: id, action: 'opened' });
    // One incident per outage: later unanswered probes do not report again.
    await new Promise((r) => setTimeout(r, 6000));
    const later = (await client.workflow.getHandle(incidentId).query('incident')) as IncidentView;
    expect(later.timeline.filter((e) => e.action.startsWith('event:'))).toEqual([]);
  }, 300_000);
});
