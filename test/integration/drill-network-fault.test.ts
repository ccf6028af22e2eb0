/**
 * The network fault against the real MinIO and Temporal:
 *  - the fault proxy in front of MinIO carries AWS SDK traffic unchanged;
 *  - injected (by another process) for one node, it carries that node agent's
 *    S3 traffic: a backup runs through it — slower than the bandwidth cap
 *    allows to be faster, with connection resets — and completes; the proxy
 *    counted the bytes. Revert removes the route and the proxy (no listener on
 *    its port, no process), and the next backup goes straight to MinIO;
 *  - cut: a backup started while the link is cut waits ("storage unavailable …
 *    retrying") and completes once the fault is reverted.
 */
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portInUse } from '../../devstack/process';
import { startFaultProxy } from '../../drills/fault-proxy';
import { networkFault, proxyStats } from '../../drills/faults/network';
import type { InjectedFault } from '../../drills/fault';
import type { FaultSpec } from '../../drills/scenario';
import { readStorageRoute, storageRouteFile } from '../../drills/storage-route';
import { readProcessRecord, recordAlive } from '../../nodes/processes';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { faultContext, faultInChild } from '../support/faults';
import { connect, makeEnv, removeEnv, spawnNodeAgent, startWorker, writeRandomFile, type ChildAgent, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { testServices } from '../support/services';
import { until } from '../support/until';

const MiB = 1024 ** 2;
let env: LifelineEnv;
let client: Client;
let connection: Connection;
let agent: ChildAgent | undefined;
const workers: RunningWorker[] = [];
const reverts: Array<() => Promise<unknown>> = [];

const workflowId = (what: string) => `test-netfault-${what}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
const backup = (what: string) =>
  client.workflow.start('backupWorkflow', { taskQueue: env.taskQueue, workflowId: workflowId(what), args: [{ asset: 'data', trigger: 'manual', options: { progressSignalMs: 300 } }] });

beforeAll(async () => {
  env = await makeEnv('drill-network-fault', { assets: { data: { kind: 'dataset' } } });
  ({ client, connection } = await connect(env));
  workers.push(await startWorker(env, 'orchestrator'));
  // the node agent is its own process: the route reaches it through the data folder
  agent = await spawnNodeAgent(env);
}, 300_000);

afterAll(async () => {
  for (const r of reverts) await r().catch(() => undefined);
  await agent?.kill();
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
});

describe('network fault', () => {
  it('the fault proxy carries AWS SDK requests to MinIO unchanged', async () => {
    const { s3 } = testServices();
    const url = new URL(s3.endpoint);
    const proxy = await startFaultProxy({ target: { host: url.hostname, port: Number(url.port) }, faults: { latencyMs: 20 } });
    const viaProxy = new S3Client({ endpoint: `http://${proxy.host}:${proxy.port}`, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    try {
      const body = Buffer.alloc(MiB, 7);
      await viaProxy.send(new PutObjectCommand({ Bucket: env.bucket, Key: 'proxy-check', Body: body }));
      const got = await viaProxy.send(new GetObjectCommand({ Bucket: env.bucket, Key: 'proxy-check' }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
      expect(proxy.stats().bytesUp).toBeGreaterThan(MiB);
      expect(proxy.stats().bytesDown).toBeGreaterThan(MiB);
    } finally {
      viaProxy.destroy();
      await proxy.close();
    }
  });

  it("slows the node agent's storage traffic (bandwidth cap, latency, resets); the backup completes; revert leaves nothing behind", async () => {
    await writeRandomFile(join(env.assetPath('data'), 'shard-0.bin'), 12 * MiB);
    const spec: FaultSpec = { kind: 'network', at: '0s', duration: '5m', node: env.node, bandwidth: '2MiB', latency: '20ms', resetProbability: 0.2, cut: false };
    const ctx = faultContext(env.config, 'drill-net-1', 'f0-network');
    const call = <T>(op: 'inject' | 'revert' | 'active') => faultInChild<T>({ configFile: env.configFile, op, spec, faultId: 'f0-network', drillId: 'drill-net-1', stateDir: ctx.stateDir });
    reverts.push(() => networkFault.revert(ctx, spec, 'f0-network'));

    // injected by another process, which exits: the proxy (its own process) and the route stay
    const injected = await call<InjectedFault>('inject');
    const port = Number(injected.detail.proxyPort);
    expect(injected.detail).toMatchObject({ target: `node ${env.node}`, bandwidth: '2MiB/s', cut: false });
    expect(await portInUse('127.0.0.1', port)).toBe(true);
    expect(readStorageRoute(storageRouteFile(env.config))).toMatchObject({ endpoint: `http://127.0.0.1:${port}`, nodes: [env.node] });
    expect(await networkFault.active(ctx, spec, 'f0-network')).toBe(true);
    // idempotent: a second inject reuses the running proxy
    expect((await call<InjectedFault>('inject')).detail.proxyPort).toBe(port);

    const t0 = Date.now();
    const result = (await (await backup('slow')).result()) as { snapshotId: string; stats: { uploadedBytes: number } };
    const doneAt = Date.now();
    const seconds = (doneAt - t0) / 1000;
    // the proxy process writes its counters every 500 ms: read a sample taken after the backup ended
    const stats = await until('proxy counters sampled after the backup', () => {
      const st = proxyStats(ctx.stateDir);
      return st && Date.parse(st.at) > doneAt ? st : undefined;
    }, 15_000);
    console.log(`[network-fault] backup of 12 MiB through the proxy: ${seconds.toFixed(1)} s; proxy ${JSON.stringify(stats)}`);
    expect(result.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    // the data went through the proxy, so it cannot have been faster than the cap
    expect(stats.bytesUp).toBeGreaterThan(12 * MiB);
    expect(seconds).toBeGreaterThanOrEqual(12 / 2 - 1);

    // ---- revert (this process; the injecting one is long gone): route and proxy removed ----
    const reverted = await networkFault.revert(ctx, spec, 'f0-network');
    expect(reverted).toMatchObject({ reverted: true, detail: { proxyPort: port } });
    expect(Number(reverted.detail.proxyBytesUp)).toBeGreaterThan(12 * MiB);
    expect(await portInUse('127.0.0.1', port)).toBe(false);
    expect(readStorageRoute(storageRouteFile(env.config))).toBeNull();
    const rec = readProcessRecord(join(ctx.stateDir, 'proxy.json'));
    expect(rec === null || !recordAlive(rec)).toBe(true);
    expect(await call<boolean>('active')).toBe(false);
    expect((await call<{ reverted: boolean }>('revert')).reverted).toBe(false);

    // ---- the agent is back on the direct endpoint: nothing listens on the proxy's port, yet backups work ----
    await writeRandomFile(join(env.assetPath('data'), 'shard-1.bin'), 4 * MiB);
    const after = (await (await backup('direct')).result()) as { snapshotId: string };
    expect(after.snapshotId).not.toBe(result.snapshotId);
    expect(await portInUse('127.0.0.1', port)).toBe(false);
  }, 600_000);

  it('cut: a backup waits while the link is cut and completes after the revert', async () => {
    await writeRandomFile(join(env.assetPath('data'), 'shard-2.bin'), 4 * MiB);
    const spec: FaultSpec = { kind: 'network', at: '0s', duration: '5m', node: env.node, cut: true };
    const ctx = faultContext(env.config, 'drill-net-2', 'f0-network');
    reverts.push(() => networkFault.revert(ctx, spec, 'f0-network'));
    await networkFault.inject(ctx, spec, 'f0-network');
    // the agent notices the route within a second
    await new Promise((r) => setTimeout(r, 1000));

    const handle = await backup('cut');
    const deadline = Date.now() + 180_000;
    let retrying: string | undefined;
    while (!retrying) {
      if (Date.now() > deadline) throw new Error('the backup never reported storage as unavailable');
      const p = await handle.query<Progress>(PROGRESS_QUERY).catch(() => undefined);
      retrying = p?.retrying;
      if ((await handle.describe()).status.name !== 'RUNNING') throw new Error('the backup finished while the link was cut');
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(retrying).toMatch(/storage unavailable|storage unreachable/);
    expect(proxyStats(ctx.stateDir)?.refused ?? 0).toBeGreaterThan(0);

    const reverted = await networkFault.revert(ctx, spec, 'f0-network');
    expect(reverted.reverted).toBe(true);
    const result = (await handle.result()) as { snapshotId: string };
    expect(result.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(await networkFault.active(ctx, spec, 'f0-network')).toBe(false);
  }, 600_000);
});
