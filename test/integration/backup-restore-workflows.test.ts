/**
 * BackupWorkflow and RestoreWorkflow end to end on the shared Temporal and
 * MinIO, with an in-process orchestrator and node agent: a round trip that is
 * byte-identical, an incremental second backup, restores by prefix and with a
 * sealed include list, and the failures a person has to act on.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import { CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sealIncludes } from '../../backups/include';
import { nodeWorkDir } from '../../backups/asset';
import { loadTenantIdentities, TenantRepositories } from '../../tenancy/repositories';
import { backupWorkflow, type BackupWorkflowResult } from '../../workflows/backup';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { restoreWorkflow } from '../../workflows/restore';
import { verifyWorkflow } from '../../workflows/verify';
import { describeTree, makeAsset } from '../support/engine-fixtures';
import { bucketUsage, makeEnv, removeEnv, sha256File, startWorker, writeRandomFile, startWorkers, type EnvWorkers, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';

let env: LifelineEnv;
let workers: EnvWorkers | undefined;
let client: Client;

const MISSING = join(tmpdir(), `lifeline-missing-${process.pid}-${Date.now()}`, 'asset');
const FAST = { heartbeatTimeoutSeconds: 20, progressSignalMs: 300, changedRetryDelaySeconds: 1 };

beforeAll(async () => {
  env = await makeEnv('bkp-roundtrip', { assets: { model: { kind: 'model', labels: { run: 'r1' } }, missing: { kind: 'dataset', path: MISSING }, empty: { kind: 'dataset' }, big: { kind: 'dataset' }, shards: { kind: 'dataset' } } });
  await makeAsset(env.assetPath('model'), { smallFiles: 40, largeFileBytes: 5 * 1024 * 1024 });
  workers = await startWorkers(env);
  client = workers.client;
}, 300_000);

afterAll(async () => {
  await workers?.stop();
  await removeEnv(env);
});

async function runBackup(asset: string, labels?: Record<string, string>): Promise<BackupWorkflowResult> {
  const handle = await client.workflow.start(backupWorkflow, {
    taskQueue: env.taskQueue,
    workflowId: `backup-${asset}-${Date.now()}`,
    args: [{ asset, trigger: 'manual', labels, options: FAST }],
  });
  return handle.result();
}

describe('backup and restore workflows', () => {
  let first: BackupWorkflowResult;

  it('backs up an asset and restores it byte-identical (modes, times, symlinks)', async () => {
    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `backup-model-${Date.now()}`,
      args: [{ asset: 'model', trigger: 'manual', labels: { step: '7' }, options: FAST }],
    });
    first = await handle.result();
    expect(first.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(first).toMatchObject({ asset: 'model', node: env.node, tenant: env.tenant, trigger: 'manual', attempts: 1, runs: 1, parentId: null });
    expect(first.labels).toEqual({ run: 'r1', trigger: 'manual', step: '7' });
    expect(first.stats.files).toBe(45);
    expect(first.stats.totalBytes).toBeGreaterThan(5 * 1024 * 1024);
    // new = every file's content plus the tree blobs
    expect(first.stats.newBytes).toBeGreaterThanOrEqual(first.stats.readBytes);
    expect(first.stats.readBytes).toBe(first.stats.totalBytes);
    const p = await handle.query<Progress>(PROGRESS_QUERY);
    expect(p).toMatchObject({ phase: 'completed', filesDone: 45, filesTotal: 45, bytesDone: first.stats.totalBytes, bytesTotal: first.stats.totalBytes, etaSeconds: 0 });

    const target = join(env.dir, 'restore-1');
    const r = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-model-${Date.now()}`,
      args: [{ asset: 'model', target, options: FAST }],
    });
    expect(r).toMatchObject({ snapshotId: first.snapshotId, files: 45, bytes: first.stats.totalBytes, verified: true, node: env.node });
    expect(await describeTree(target)).toEqual(await describeTree(env.assetPath('model')));
  });

  it('a second backup reads only what changed (parent snapshot)', async () => {
    await writeFile(join(env.assetPath('model'), 'config.json'), JSON.stringify({ lr: 0.002 }));
    const second = await runBackup('model');
    expect(second.parentId).toBe(first.snapshotId);
    expect(second.stats.files).toBe(45);
    expect(second.stats.readBytes).toBe(JSON.stringify({ lr: 0.002 }).length);
  });

  it('restores a snapshot given by prefix, only the included paths (sealed, never in the history)', async () => {
    const identities = await loadTenantIdentities(env.config, env.tenant);
    const includeSealed = await sealIncludes(['weights/shards'], await identities.recipients());
    const target = join(env.dir, 'restore-2');
    const workflowId = `restore-model-inc-${Date.now()}`;
    const r = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ asset: 'model', from: { snapshotId: first.snapshotId.slice(0, 10) }, target, includeSealed, includeCount: 1, options: FAST }],
    });
    expect(r.snapshotId).toBe(first.snapshotId);
    expect(r.files).toBe(2);
    expect(Object.keys(await describeTree(target)).sort()).toEqual(['weights', 'weights/shards', 'weights/shards/a.bin', 'weights/shards/b.bin']);
    // Neither the include path nor any restored file name is in the workflow's history.
    const history = JSON.stringify(await client.workflow.getHandle(workflowId).fetchHistory());
    expect(history).not.toContain('shards');
    expect(history).not.toContain('a.bin');
  });

  it("restores from 'last-verified': refused before any verification, the verified snapshot after one", async () => {
    const target = join(env.dir, 'restore-lv');
    const before = await client.workflow
      .execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `restore-model-lv0-${Date.now()}`, args: [{ asset: 'model', from: 'last-verified', target, options: FAST }] })
      .then(() => null, (e: unknown) => e);
    // The workflow itself fails (no activity failed): the reason is the failure's own message.
    expect(String((before as WorkflowFailedError).cause?.message)).toContain('has no verified snapshot');
    // Verify only the first snapshot: the newest (second) one stays unverified.
    await client.workflow.execute(verifyWorkflow, { taskQueue: env.taskQueue, workflowId: `verify-model-${Date.now()}`, args: [{ asset: 'model', snapshot: first.snapshotId }] });
    const r = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-model-lv-${Date.now()}`,
      args: [{ asset: 'model', from: 'last-verified', target, options: FAST }],
    });
    expect(r.snapshotId).toBe(first.snapshotId);
  });

  it('refuses a non-empty target unless --overwrite, with a message that says so', async () => {
    const target = join(env.dir, 'restore-3');
    await mkdir(target, { recursive: true });
    await writeFile(join(target, 'keep.txt'), 'x');
    const err = await client.workflow
      .execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `restore-model-ne-${Date.now()}`, args: [{ asset: 'model', target, options: FAST }] })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const msg = String(((err as WorkflowFailedError).cause?.cause as Error | undefined)?.message);
    expect(msg).toContain('is not empty');
    expect(msg).toContain('--overwrite');
    const r = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-model-ow-${Date.now()}`,
      args: [{ asset: 'model', target, overwrite: true, options: FAST }],
    });
    expect(r.files).toBe(45);
    await rm(target, { recursive: true, force: true });
  });

  it('a missing asset path fails at once, naming asset, node, path and the fix', async () => {
    const t0 = Date.now();
    const err = await runBackup('missing').then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = (err as WorkflowFailedError).cause?.cause as unknown as { message: string; type?: string; nonRetryable?: boolean };
    expect(failure.type, failure.message).toBe('AssetPathMissing');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain('asset missing on node ' + env.node);
    expect(failure.message).toContain(MISSING);
    expect(failure.message).toContain('assets.missing.path');
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('an empty asset backs up and restores (one empty tree)', async () => {
    const r = await runBackup('empty');
    expect(r.stats).toMatchObject({ files: 0, dirs: 0, totalBytes: 0 });
    const target = join(env.dir, 'restore-empty');
    const restored = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-empty-${Date.now()}`,
      args: [{ asset: 'empty', target, options: FAST }],
    });
    expect(restored).toMatchObject({ snapshotId: r.snapshotId, files: 0 });
    expect(await describeTree(target)).toEqual({});
  });

  it('a cancelled backup stops on the node, gives its lease back, removes its work file and commits nothing', async () => {
    await writeRandomFile(join(env.assetPath('big'), 'big.bin'), 512 * 1024 * 1024);
    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `backup-big-${Date.now()}`,
      args: [{ asset: 'big', trigger: 'manual', options: { ...FAST, heartbeatTimeoutSeconds: 8 } }],
    });
    for (;;) {
      const p = await handle.query<Progress>(PROGRESS_QUERY);
      if (p.phase === 'uploading') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await bucketUsage(env, `${env.repoPrefix}locks/`)).objects).toBe(1);
    await handle.cancel();
    const err = await handle.result().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    expect((await bucketUsage(env, `${env.repoPrefix}locks/`)).objects).toBe(0);
    // The node agent really stopped: nothing more is uploaded.
    const stored = await bucketUsage(env, `${env.repoPrefix}data/`);
    await new Promise((r) => setTimeout(r, 2000));
    expect(await bucketUsage(env, `${env.repoPrefix}data/`)).toEqual(stored);
    expect((await readdir(nodeWorkDir(env.config, env.node))).filter((n) => n.startsWith('scan-'))).toEqual([]);
    const repo = await new TenantRepositories(env.config).repository(env.tenant);
    expect(await repo.listSnapshots({ asset: 'big' })).toEqual([]);
  });

  it('wrong storage credentials fail at once (non-retryable), saying to check the credentials and leaking none', async () => {
    const bad = await makeEnv('bkp-badcreds', { assets: { m: { kind: 'model' } } });
    const badWorkers: RunningWorker[] = [];
    try {
      await writeFile(join(bad.assetPath('m'), 'w.bin'), 'weights');
      // The keys exist and the repository is initialised; then the secret is rotated wrongly.
      await writeFile(join(bad.dir, 'secrets', 's3-secret'), 'not-the-secret-key-1234567890', { mode: 0o600 });
      badWorkers.push(await startWorker(bad, 'orchestrator'), await startWorker(bad, 'node-agent'));
      const t0 = Date.now();
      const err = await client.workflow
        .execute(backupWorkflow, { taskQueue: bad.taskQueue, workflowId: `backup-m-${Date.now()}`, args: [{ asset: 'm', trigger: 'manual', options: FAST }] })
        .then(() => null, (e: unknown) => e);
      const failure = (err as WorkflowFailedError).cause?.cause as unknown as { message: string; type?: string; nonRetryable?: boolean };
      expect(failure.type, failure.message).toBe('StoragePermanent');
      expect(failure.nonRetryable).toBe(true);
      expect(failure.message).toMatch(/asset m on node .*\(tenant acme\): .*check the credentials/);
      expect(failure.message).not.toContain('not-the-secret-key');
      expect(failure.message).not.toContain(bad.s3.secretAccessKey);
      expect(Date.now() - t0).toBeLessThan(60_000);
    } finally {
      for (const w of badWorkers) await w.stop();
      await removeEnv(bad);
    }
  });

  it('a restore that cannot write every file fails with the count, the reasons and the first path; the node keeps the full list', async () => {
    const root = env.assetPath('shards');
    const shas: Record<string, string> = {};
    for (const n of ['a.bin', 'b.bin', 'c.bin', 'd.bin']) shas[n] = await writeRandomFile(join(root, n), 20 * 1024 * 1024);
    const snap = await runBackup('shards');
    // Damage the pack that holds the start of c.bin (overwrite it in the bucket, same size).
    const repo = await new TenantRepositories(env.config).repository(env.tenant);
    await repo.loadIndex();
    const entry = (await repo.loadTree(await repo.loadSnapshot(snap.snapshotId))).find((e) => e.path === 'c.bin');
    const packId = repo.index.lookup((entry as { chunks: string[] }).chunks[0]!)!.packId;
    const key = `${env.repoPrefix}data/${packId.slice(0, 2)}/${packId}`;
    const size = repo.index.pack(packId)!.ciphertextBytes;
    const s3 = new S3Client({ endpoint: env.s3.endpoint, region: env.s3.region, forcePathStyle: true, credentials: { accessKeyId: env.s3.accessKeyId, secretAccessKey: env.s3.secretAccessKey } });
    try {
      await s3.send(new PutObjectCommand({ Bucket: env.bucket, Key: key, Body: randomBytes(size) }));
    } finally {
      s3.destroy();
    }

    const target = join(env.dir, 'restore-damaged');
    const err = await client.workflow
      .execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `restore-shards-${Date.now()}`, args: [{ asset: 'shards', target, options: FAST }] })
      .then(() => null, (e: unknown) => e);
    const failure = (err as WorkflowFailedError).cause?.cause as unknown as { message: string; type?: string; nonRetryable?: boolean };
    console.log(`[restore-incomplete] ${failure.message}`);
    expect(failure.type, failure.message).toBe('RestoreIncomplete');
    expect(failure.nonRetryable).toBe(true);
    const m = /is incomplete: (\d+) of 4 files failed \((.+)\); first: (\S+); every failed file and why: (\S+) on node /.exec(failure.message);
    expect(m, failure.message).not.toBeNull();
    const [, failedCount, reasons, firstPath, reportFile] = m!;
    expect(reasons).toMatch(/^\d+× /);
    expect(failure.message).toContain('lifeline verify shards --deep');
    const report = JSON.parse(await readFile(reportFile!, 'utf8')) as { failures: Array<{ path: string; reason: string }> };
    expect(report.failures.length).toBe(Number(failedCount));
    expect(report.failures.map((f) => f.path)).toContain('c.bin');
    expect(report.failures[0]!.path).toBe(firstPath);
    expect(report.failures.every((f) => f.reason.length > 0)).toBe(true);
    // Every file that did not fail was restored and is intact; the failed ones are not left half-written.
    const restored = (await readdir(target)).sort();
    expect(restored).toEqual(['a.bin', 'b.bin', 'c.bin', 'd.bin'].filter((n) => !report.failures.some((f) => f.path === n)));
    for (const n of restored) expect(await sha256File(join(target, n))).toBe(shas[n]);
  });

  it('an unknown snapshot prefix fails with a clear message', async () => {
    const err = await client.workflow
      .execute(restoreWorkflow, {
        taskQueue: env.taskQueue,
        workflowId: `restore-model-bad-${Date.now()}`,
        args: [{ asset: 'model', from: { snapshotId: 'ffffff00' }, target: join(env.dir, 'restore-4'), options: FAST }],
      })
      .then(() => null, (e: unknown) => e);
    expect(String(((err as WorkflowFailedError).cause?.cause as Error | undefined)?.message)).toContain('no snapshot matches ffffff00');
  });
});
