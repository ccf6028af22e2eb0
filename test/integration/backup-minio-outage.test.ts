/**
 * The object store goes away for 30 s in the middle of a backup and comes
 * back: the backup waits (progress says it is retrying storage) and then
 * completes, and its snapshot restores byte-identical. Uses a private MinIO
 * (devstack code, free ports) so other tests are not disturbed.
 */
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minioEndpoint, type StackSettings } from '../../devstack/layout';
import { down, up } from '../../devstack/stack';
import { minioHealthy } from '../../devstack/health';
import { backupWorkflow } from '../../workflows/backup';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { restoreWorkflow } from '../../workflows/restore';
import { bucketUsage, connect, makeEnv, removeEnv, sha256File, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { privateMinioS3, privateStack, removePrivateStack } from '../support/private-stack';

const MiB = 1024 ** 2;
// Large enough that the outage starts well before the end even when backups run at several hundred MB/s.
const SIZE = 1024 * MiB;
const OUTAGE_MS = 30_000;

let dir: string;
let settings: StackSettings;
let env: LifelineEnv | undefined;
const workers: RunningWorker[] = [];
let connection: Connection | undefined;

beforeAll(async () => {
  ({ dir, settings } = await privateStack('lifeline-minio-outage', { minio: true }));
  await up(settings, { healthTimeoutMs: 180_000 });
}, 300_000);

afterAll(async () => {
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
  await removePrivateStack({ dir, settings });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('object store outage during a backup', () => {
  it('MinIO stopped for 30 s mid-backup: the backup waits, retries and completes; the restore is byte-identical', async () => {
    env = await makeEnv('minio-outage', {
      assets: { data: { kind: 'dataset' } },
      s3: privateMinioS3({ dir, settings }),
    });
    const sha = await writeRandomFile(join(env.assetPath('data'), 'shard-000.bin'), SIZE);
    let client: Client;
    ({ client, connection } = await connect(env));
    workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));

    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `backup-data-${Date.now()}`,
      args: [{ asset: 'data', trigger: 'manual', options: { heartbeatTimeoutSeconds: 20, progressSignalMs: 300 } }],
    });
    // Stop the store once the first packs are in it — watched in the bucket itself, which does
    // not lag like progress can on a busy machine — while most of the file is still to come.
    const started = Date.now();
    for (;;) {
      const stored = await bucketUsage(env, `${env.repoPrefix}data/`);
      if (stored.objects >= 1) {
        expect(stored.bytes).toBeLessThan(SIZE / 2);
        break;
      }
      if ((await handle.describe()).status.name !== 'RUNNING') throw new Error('backup finished before the outage');
      if (Date.now() - started > 300_000) throw new Error('no pack was stored in 5 minutes');
      await sleep(50);
    }

    // ---- outage ----
    const stopped = await down(settings, { graceMs: 5000 });
    expect(stopped.find((r) => r.service === 'minio')?.state).toMatch(/stopped|killed/);
    expect(await minioHealthy(minioEndpoint(settings), 1000)).toBe(false);
    const outageStart = Date.now();
    const during: Progress[] = [];
    while (Date.now() - outageStart < OUTAGE_MS) {
      const p = await handle.query<Progress>(PROGRESS_QUERY).catch(() => undefined);
      if (p) during.push(p);
      await sleep(500);
    }
    await up(settings, { healthTimeoutMs: 180_000 });
    const outageMs = Date.now() - outageStart;

    const result = await handle.result();
    const total = (Date.now() - started) / 1000;
    const retrying = during.filter((p) => p.retrying);
    console.log(
      `[minio-outage] outage ${(outageMs / 1000).toFixed(1)} s; ${retrying.length}/${during.length} progress samples said "${retrying[0]?.retrying}"; backup done after ${total.toFixed(1)} s in total, ${result.stats.uploadedBytes} bytes uploaded`,
    );
    // It did not give up or start over: it waited for the store and carried on.
    expect(result).toMatchObject({ asset: 'data', attempts: 1 });
    expect(result.stats.totalBytes).toBe(SIZE);
    expect(during.every((p) => p.phase === 'uploading')).toBe(true);
    expect(retrying.length).toBeGreaterThan(0);
    expect(retrying[0]!.retrying).toMatch(/storage unavailable/);
    // Nothing was stored twice: the data objects hold the file once plus age overhead.
    const stored = await bucketUsage(env, `${env.repoPrefix}data/`);
    expect(stored.bytes - SIZE).toBeLessThan(2 * 16 * MiB + SIZE / 1000);

    const target = join(env.dir, 'restored');
    const restored = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-data-${Date.now()}`,
      args: [{ asset: 'data', target }],
    });
    expect(restored).toMatchObject({ snapshotId: result.snapshotId, files: 1, bytes: SIZE, verified: true });
    expect(await sha256File(join(target, 'shard-000.bin'))).toBe(sha);
  }, 900_000);
});
