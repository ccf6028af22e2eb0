/**
 * The storage-outage fault on a private embedded MinIO (devstack code, free
 * ports, its own data folder — the suite's shared MinIO is never stopped): the
 * installation's config uses the embedded MinIO, so the fault stops it through
 * its pid record; a backup started during the outage waits (storage steps
 * retried) without failing; another process, with only the fault's state
 * folder, reverts it (MinIO started again and healthy) and the backup
 * completes; a second revert is a no-op. Refused for external storage, before
 * anything is stopped.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../config/load';
import { minioHealthy } from '../../devstack/health';
import { minioEndpoint, stackLayout, type StackSettings } from '../../devstack/layout';
import { down, runningRecord, up } from '../../devstack/stack';
import type { RevertedFault } from '../../drills/fault';
import { storageOutageFault } from '../../drills/faults/storage-outage';
import type { FaultSpec } from '../../drills/scenario';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { faultContext, faultInChild } from '../support/faults';
import type { DrillSummary } from '../../activities/drill';
import { readDrillReport } from '../../drills/report-files';
import { parseScenario } from '../../drills/scenario';
import { nodeHealthId } from '../../incidents/watch';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import { uniqueTaskQueue } from '../support/services';
import { connect, makeEnv, removeEnv, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { privateMinioS3, privateStack, removePrivateStack } from '../support/private-stack';

const MiB = 1024 ** 2;
let dir: string;
let settings: StackSettings;
let env: LifelineEnv | undefined;
let embedded: LifelineEnv;
let client: Client;
let connection: Connection | undefined;
const workers: RunningWorker[] = [];
const reverts: Array<() => Promise<unknown>> = [];
let drillWorker: LifelineWorker | undefined;
let drillDone: Promise<void> | undefined;
const drillQueue = uniqueTaskQueue('drill-outage');

beforeAll(async () => {
  ({ dir, settings } = await privateStack('lifeline-drill-outage', { minio: true }));
  await up(settings, { healthTimeoutMs: 180_000 });
  env = await makeEnv('drill-storage-outage', {
    assets: { data: { kind: 'dataset' } },
    s3: privateMinioS3({ dir, settings }),
  });
  // The same installation as the embedded stack sees it: no storage.endpoint, the private MinIO's data folder and ports.
  const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
  raw.storage = { bucket: env.bucket };
  raw.incident = { environment: 'staging', nodeProbeEvery: '2s', nodeLostAfter: '5m' };
  raw.devstack = { dataDir: dir, host: '127.0.0.1', minio: { port: settings.minio.port, consolePort: settings.minio.consolePort } };
  const configFile = join(env.dir, 'embedded.yaml');
  await writeFile(configFile, stringify(raw), { mode: 0o600 });
  embedded = { ...env, configFile, config: loadConfig({ configPath: configFile, env: {} }) };
  ({ client, connection } = await connect(embedded));
  workers.push(await startWorker(embedded, 'orchestrator'), await startWorker(embedded, 'node-agent'));
  drillWorker = await createLifelineWorker({ config: embedded.config, role: 'drill', taskQueue: drillQueue, logger: createBufferLogger({ level: 'info' }).logger });
  drillDone = drillWorker.run();
  drillDone.catch(() => undefined);
}, 300_000);

afterAll(async () => {
  for (const r of reverts) await r().catch(() => undefined);
  await client?.workflow.getHandle(nodeHealthId(embedded.node)).terminate('test cleanup').catch(() => undefined);
  drillWorker?.worker.shutdown();
  await drillDone?.catch(() => undefined);
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
  await removePrivateStack({ dir, settings });
});

describe('storage-outage fault', () => {
  it('stops the embedded MinIO; a backup waits; revert by another process starts it again and the backup completes', async () => {
    await writeRandomFile(join(embedded.assetPath('data'), 'shard-0.bin'), 4 * MiB);
    const spec: FaultSpec = { kind: 'storage-outage', at: '0s', duration: '20s' };
    const ctx = faultContext(embedded.config, 'drill-outage-1', 'f0-storage-outage');
    const endpoint = minioEndpoint(settings);
    const before = runningRecord(stackLayout(dir).minioRecord)!;

    const injected = await storageOutageFault.inject(ctx, spec, 'f0-storage-outage');
    // whatever fails below, MinIO is started again for the next test
    reverts.push(() => storageOutageFault.revert(ctx, spec, 'f0-storage-outage'));
    expect(injected.detail).toMatchObject({ endpoint, duration: '20s', stoppedPid: before.pid });
    expect(await minioHealthy(endpoint, 1000)).toBe(false);
    expect(runningRecord(stackLayout(dir).minioRecord)).toBeNull();
    expect(await storageOutageFault.active(ctx, spec, 'f0-storage-outage')).toBe(true);
    // idempotent
    expect(await storageOutageFault.inject(ctx, spec, 'f0-storage-outage')).toEqual(injected);

    const handle = await client.workflow.start('backupWorkflow', {
      taskQueue: embedded.taskQueue,
      workflowId: `test-outage-backup-${Date.now()}`,
      args: [{ asset: 'data', trigger: 'manual', options: { progressSignalMs: 300 } }],
    });
    // Storage is down before the backup's first storage step: it waits (S3 retries inside the activity, then Temporal's) without failing or committing.
    await new Promise((r) => setTimeout(r, 15_000));
    expect((await handle.describe()).status.name).toBe('RUNNING');
    const progress = await handle.query<Progress>(PROGRESS_QUERY).catch(() => undefined);
    expect(progress?.phase).not.toBe('completed');

    // the drill worker that injected is gone: another process reverts with only the state folder
    const call = (op: 'revert' | 'active') => faultInChild<RevertedFault | boolean>({ configFile: embedded.configFile, op, spec, faultId: 'f0-storage-outage', drillId: 'drill-outage-1', stateDir: ctx.stateDir });
    const reverted = (await call('revert')) as RevertedFault;
    expect(reverted).toMatchObject({ reverted: true, detail: { endpoint, minio: 'started' } });
    expect(await minioHealthy(endpoint, 5000)).toBe(true);
    expect(runningRecord(stackLayout(dir).minioRecord)?.pid).not.toBe(before.pid);
    expect(await call('active')).toBe(false);
    expect(((await storageOutageFault.revert(ctx, spec, 'f0-storage-outage')) as RevertedFault).reverted).toBe(false);

    const result = (await handle.result()) as { snapshotId: string; stats: { totalBytes: number } };
    expect(result.stats.totalBytes).toBe(4 * MiB);
  }, 600_000);

  it('is refused for external storage before anything is stopped', async () => {
    await up(settings, { healthTimeoutMs: 180_000 });
    const ctx = faultContext(env!.config, 'drill-outage-2', 'f0-storage-outage');
    const spec: FaultSpec = { kind: 'storage-outage', at: '0s', duration: '20s' };
    await expect(storageOutageFault.inject(ctx, spec, 'f0-storage-outage')).rejects.toThrow(/storage is external \(storage.endpoint is set\)/);
    expect(await minioHealthy(minioEndpoint(settings), 5000)).toBe(true);
    expect(await storageOutageFault.active(ctx, spec, 'f0-storage-outage')).toBe(false);
  });

  it('a storage-outage drill passes: MinIO stopped for 15 s and started again by the drill, backups continue', async () => {
    await up(settings, { healthTimeoutMs: 180_000 });
    // the precondition: a recent verified snapshot of every asset of the node
    await client.workflow.execute('verifyWorkflow', { taskQueue: embedded.taskQueue, workflowId: `test-outage-verify-${Date.now()}`, args: [{ asset: 'data' }] });
    const scenario = parseScenario(
      `name: outage\nenvironment: staging\nnode: ${embedded.node}\nfaults:\n  - { kind: storage-outage, duration: 15s }\nobjectives:\n  rto: 5m\n  expect: [backups-continue]\ntimeout: 10m\n`,
      'outage.yaml',
    );
    const pidBefore = runningRecord(stackLayout(dir).minioRecord)!.pid;
    const handle = await client.workflow.start('chaosDrillWorkflow', { taskQueue: drillQueue, workflowId: `drill-outage-${Date.now()}`, args: [{ scenario, orchestratorTaskQueue: embedded.taskQueue }] });
    const summary = (await handle.result()) as DrillSummary;
    const { report } = await readDrillReport(dir, handle.workflowId);
    console.log(`[outage-drill] ${JSON.stringify({ verdict: summary.verdict, rto: summary.rtoSeconds, objectives: summary.objectives, fault: report.faults[0], errors: summary.errors })}`);
    expect(summary).toMatchObject({ verdict: 'pass', aborted: false, faultsLeft: [] });
    expect(summary.objectives.map((o) => [o.name, o.pass])).toEqual([['rto', true], ['backups-continue', true]]);
    expect(summary.rtoSeconds).toBeGreaterThanOrEqual(15);
    expect(report.faults[0]).toMatchObject({ kind: 'storage-outage', reverted: true, detail: { stoppedPid: pidBefore, minio: 'started' } });
    // MinIO is a new process, healthy
    expect(runningRecord(stackLayout(dir).minioRecord)!.pid).not.toBe(pidBefore);
    expect(await minioHealthy(minioEndpoint(settings), 5000)).toBe(true);
  }, 600_000);
});
