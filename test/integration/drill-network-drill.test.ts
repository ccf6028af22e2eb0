/**
 * Network faults through ChaosDrillWorkflow on the real Temporal and MinIO,
 * with an orchestrator, the node's agent and a drill worker:
 *  - a drill slowing the node agent's storage link for 20 s passes its
 *    objectives: a backup during the fault goes through the proxy; the fault
 *    is reverted after its duration (RTO = fault →
 *    storage back), and backups and verifications continue afterwards;
 *  - a drill cancelled while its fault (10 min long) is active still reverts
 *    it: the report says aborted, the proxy no longer listens, the route is gone.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CancelledFailure, WorkflowFailedError, type Client, type Connection, type WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../config/load';
import { portInUse } from '../../devstack/process';
import { faultStateDir } from '../../drills/faults';
import { networkFault } from '../../drills/faults/network';
import { readDrillReport } from '../../drills/report-files';
import { parseScenario } from '../../drills/scenario';
import { readStorageRoute, storageRouteFile } from '../../drills/storage-route';
import { nodeHealthId } from '../../incidents/watch';
import { createBufferLogger } from '../../logging/logger';
import { resolveFromRoot } from '../../config/root';
import type { DrillSummary } from '../../activities/drill';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { DrillProgress } from '../../workflows/drill';
import { connect, makeEnv, removeEnv, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { uniqueTaskQueue } from '../support/services';

const MiB = 1024 ** 2;
let env: LifelineEnv;
let client: Client;
let connection: Connection;
const workers: RunningWorker[] = [];
let drillWorker: LifelineWorker | undefined;
let drillDone: Promise<void> | undefined;
const drillQueue = uniqueTaskQueue('drill-network');

beforeAll(async () => {
  env = await makeEnv('drill-network-drill', { assets: { model: { kind: 'model' } } });
  const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
  raw.incident = { environment: 'staging', nodeProbeEvery: '2s', nodeLostAfter: '2m' };
  await writeFile(env.configFile, stringify(raw), { mode: 0o600 });
  env = { ...env, config: loadConfig({ configPath: env.configFile, env: {} }) };
  ({ client, connection } = await connect(env));
  workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));
  drillWorker = await createLifelineWorker({ config: env.config, role: 'drill', taskQueue: drillQueue, logger: createBufferLogger({ level: 'info' }).logger });
  drillDone = drillWorker.run();
  drillDone.catch(() => undefined);
  // the precondition: a recent verified snapshot of the node's asset
  await writeRandomFile(join(env.assetPath('model'), 'weights.bin'), 6 * MiB);
  await client.workflow.execute('backupWorkflow', { taskQueue: env.taskQueue, workflowId: `test-netdrill-backup-${Date.now()}`, args: [{ asset: 'model', trigger: 'manual' }] });
  await client.workflow.execute('verifyWorkflow', { taskQueue: env.taskQueue, workflowId: `test-netdrill-verify-${Date.now()}`, args: [{ asset: 'model' }] });
}, 600_000);

afterAll(async () => {
  await client?.workflow.getHandle(nodeHealthId(env.node)).terminate('test cleanup').catch(() => undefined);
  drillWorker?.worker.shutdown();
  await drillDone?.catch(() => undefined);
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
});

const scenario = (name: string, fault: string) =>
  parseScenario(
    `name: ${name}\nenvironment: staging\nnode: ${env.node}\nfaults:\n  - ${fault}\nobjectives:\n  rto: 5m\n  expect: [backups-continue]\ntimeout: 10m\n`,
    `${name}.yaml`,
  );

const startDrill = (name: string, fault: string) =>
  client.workflow.start('chaosDrillWorkflow', {
    taskQueue: drillQueue,
    workflowId: `drill-${name}-${Date.now()}`,
    args: [{ scenario: scenario(name, fault), orchestratorTaskQueue: env.taskQueue }],
  });

async function injected(handle: WorkflowHandle): Promise<void> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const p = await handle.query<DrillProgress>('progress').catch(() => undefined);
    if (p?.faults[0]?.state === 'injected') return;
    if (Date.now() > deadline) throw new Error('the fault was never injected');
    await new Promise((r) => setTimeout(r, 300));
  }
}

describe('network fault drills', () => {
  it('a drill slowing the storage link passes: fault reverted after its duration, backups continue', async () => {
    const handle = await startDrill('net-slow', `{ kind: network, node: ${env.node}, duration: 20s, latency: 50ms, bandwidth: 4MiB, resetProbability: 0.1 }`);
    await injected(handle);
    // the node's work goes on during the fault, through the proxy
    await writeRandomFile(join(env.assetPath('model'), 'weights-2.bin'), 4 * MiB);
    await client.workflow.execute('backupWorkflow', { taskQueue: env.taskQueue, workflowId: `test-netdrill-during-${Date.now()}`, args: [{ asset: 'model', trigger: 'manual' }] });
    const summary = (await handle.result()) as DrillSummary;
    const { report } = await readDrillReport(resolveFromRoot(env.config.devstack.dataDir, env.config.source.root), handle.workflowId);
    console.log(`[network-drill] ${JSON.stringify({ verdict: summary.verdict, rto: summary.rtoSeconds, objectives: summary.objectives, fault: report.faults[0] })}`);
    expect(summary).toMatchObject({ verdict: 'pass', aborted: false, faultsLeft: [] });
    expect(summary.objectives.map((o) => [o.name, o.pass])).toEqual([['rto', true], ['backups-continue', true]]);
    // storage was back once the 20 s were over (plus the revert): RTO measured, at least the duration
    expect(summary.rtoSeconds).toBeGreaterThanOrEqual(20);
    const f = report.faults[0]!;
    expect(f).toMatchObject({ id: 'f0-network', kind: 'network', reverted: true });
    expect(Date.parse(f.revertedAt!) - Date.parse(f.injectedAt!)).toBeGreaterThanOrEqual(20_000);
    // the backup during the fault went through the proxy
    expect(Number(f.detail.proxyBytesUp)).toBeGreaterThan(4 * MiB);
    expect(await portInUse('127.0.0.1', Number(f.detail.proxyPort))).toBe(false);
    expect(readStorageRoute(storageRouteFile(env.config))).toBeNull();
  }, 600_000);

  it('a drill cancelled while its network fault is active reverts it anyway', async () => {
    const handle = await startDrill('net-abort', `{ kind: network, node: ${env.node}, duration: 10m, cut: true }`);
    await injected(handle);
    const route = readStorageRoute(storageRouteFile(env.config));
    expect(route).toMatchObject({ faultId: 'f0-network', nodes: [env.node] });
    const port = Number(new URL(route!.endpoint).port);
    expect(await portInUse('127.0.0.1', port)).toBe(true);

    await handle.cancel();
    const err = await handle.result().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    const { report } = await readDrillReport(resolveFromRoot(env.config.devstack.dataDir, env.config.source.root), handle.workflowId);
    expect(report).toMatchObject({ verdict: 'fail', aborted: true });
    expect(report.faults[0]).toMatchObject({ id: 'f0-network', reverted: true });
    expect(await portInUse('127.0.0.1', port)).toBe(false);
    expect(readStorageRoute(storageRouteFile(env.config))).toBeNull();
    const ctx = { config: env.config, drillId: handle.workflowId, stateDir: faultStateDir(env.config, handle.workflowId, 'f0-network'), logger: createBufferLogger({ level: 'info' }).logger };
    expect(await networkFault.active(ctx, scenario('x', '{ kind: network, duration: 1m, cut: true }').faults[0] as never, 'f0-network')).toBe(false);
  }, 600_000);
});
