/**
 * Staging policy against the real Temporal dev server and MinIO: with
 * `incident.environment: staging` and `incident.autoApprove: true`, an
 * incident opened through the CLI approves its destructive step itself (actor
 * `policy:autoApprove`) and resolves without anyone deciding.
 */
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { IncidentView } from '../../workflows/incident';
import { parseJson, runCli } from '../support/cli';
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
  p = await createTestPlatform({ label: 'incauto', assets: { [`m-${suffix()}`]: {} } });
  (p.platform as Record<string, unknown>).incident = { environment: 'staging', autoApprove: true, approvalTimeout: '1h' };
  await p.rewrite();
  taskQueue = uniqueTaskQueue('incauto');
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

describe('incident auto-approval (staging)', () => {
  it('an incident opened with lifeline incident open approves itself by policy and resolves', async () => {
    const open = await runCli(['--config', p.configFile, 'incident', 'open', 'node-lost', '--node', p.node, '--actor', 'oncall', '--task-queue', taskQueue, '--json'], {
      env: p.cliEnv,
      timeoutMs: 180_000,
    });
    expect(open.code, open.stderr).toBe(0);
    const r = parseJson<{ accepted: boolean; type: string; incident: string }>(open);
    expect(r).toMatchObject({ accepted: true, type: 'node-lost', incident: `incident-node-lost-${p.node}` });
    started.push(r.incident);
    const done = (await client.workflow.getHandle(r.incident).result()) as IncidentView;
    expect(done.status).toBe('resolved');
    expect(done.steps).toEqual({ 'rebuild-node': 'done' });
    expect(done.decisions['rebuild-node']).toMatchObject({ decision: 'approved', actor: 'policy:autoApprove' });
    expect(done.timeline[0]).toMatchObject({ actor: 'oncall', action: 'opened' });
    const actions = done.timeline.map((e) => e.action);
    expect(actions).toContain('approved:rebuild-node');
    expect(actions.some((a) => a.startsWith('awaiting-approval:'))).toBe(false);
    expect(done.summary).toMatchObject({ outcome: 'resolved' });
    expect(done.summary!.timeToRecoverSeconds).toBeGreaterThanOrEqual(0);

    const list = await runCli(['--config', p.configFile, 'incident', 'list'], { env: p.cliEnv, timeoutMs: 180_000 });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`incident-node-lost-${p.node}  node-lost  high  resolved `));
  }, 300_000);
});
