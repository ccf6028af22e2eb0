/**
 * The Temporal server is SIGKILLed in the middle of a backup and started
 * again on the same database: the workers reconnect, the workflow carries on
 * from its history, and the backup completes with a snapshot that restores
 * byte-identical. Uses a private Temporal dev server (devstack code, free
 * ports) so other tests are not disturbed; storage is the shared MinIO.
 */
import { join } from 'node:path';
import type { Client, Connection, WorkflowHandle } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporalHealthy } from '../../devstack/health';
import { temporalAddress, type StackSettings } from '../../devstack/layout';
import { killService, up } from '../../devstack/stack';
import { backupWorkflow, type BackupWorkflowResult } from '../../workflows/backup';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { restoreWorkflow } from '../../workflows/restore';
import { connect, makeEnv, removeEnv, sha256File, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { privateStack, removePrivateStack } from '../support/private-stack';

const MiB = 1024 ** 2;
const FILES = 10;
const FILE_SIZE = 60 * MiB;
const SIZE = FILES * FILE_SIZE;

let dir: string;
let settings: StackSettings;
let env: LifelineEnv | undefined;
const workers: RunningWorker[] = [];
let connection: Connection | undefined;

beforeAll(async () => {
  ({ dir, settings } = await privateStack('lifeline-temporal-restart', { temporal: true }));
  await up(settings, { healthTimeoutMs: 180_000 });
}, 300_000);

afterAll(async () => {
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
  await removePrivateStack({ dir, settings });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The result, retrying the long poll while the server is unreachable. */
async function resultThroughOutages<T>(handle: WorkflowHandle, deadlineMs: number): Promise<T> {
  for (;;) {
    try {
      return (await handle.result()) as T;
    } catch (err) {
      const msg = String((err as Error)?.message);
      if (Date.now() > deadlineMs || !/UNAVAILABLE|unavailable|connect|ECONNREFUSED|deadline|timed out|Connection/i.test(msg)) throw err;
      await sleep(1000);
    }
  }
}

describe('Temporal server crash during a backup', () => {
  it('Temporal SIGKILLed and restarted mid-backup: the backup completes and restores byte-identical', async () => {
    env = await makeEnv('temporal-restart', { assets: { data: { kind: 'dataset' } }, temporal: { address: temporalAddress(settings) } });
    const shas: string[] = [];
    for (let i = 0; i < FILES; i++) shas.push(await writeRandomFile(join(env.assetPath('data'), `part-${i}.bin`), FILE_SIZE));
    let client: Client;
    ({ client, connection } = await connect(env));
    workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));

    const workflowId = `backup-data-${Date.now()}`;
    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId,
      // One file per batch: the crash lands between batches still to run, so the workflow has real work left after the restart.
      args: [{ asset: 'data', trigger: 'manual', options: { heartbeatTimeoutSeconds: 20, progressSignalMs: 300, batchMaxBytes: 64 * MiB } }],
    });
    const started = Date.now();
    let before: Progress | undefined;
    for (;;) {
      before = await handle.query<Progress>(PROGRESS_QUERY).catch(() => before);
      if (before?.phase === 'uploading' && (before.batchesDone ?? 0) >= 2) break;
      if (before && (before.phase === 'committing' || before.phase === 'completed')) throw new Error('backup finished before the crash; make the file larger');
      if (Date.now() - started > 300_000) throw new Error(`no progress: ${JSON.stringify(before)}`);
      await sleep(100);
    }

    const killedPid = await killService(settings, 'temporal');
    expect(await temporalHealthy(temporalAddress(settings), settings.namespace, 1000)).toBe(false);
    const crashAt = Date.now();
    await sleep(5000);
    const [again] = await up(settings, { healthTimeoutMs: 180_000 });
    expect(again).toMatchObject({ service: 'temporal', state: 'started' });
    expect(again!.pid).not.toBe(killedPid);
    const downMs = Date.now() - crashAt;

    const result = await resultThroughOutages<BackupWorkflowResult>(client.workflow.getHandle(workflowId), Date.now() + 600_000);
    console.log(
      `[temporal-restart] killed Temporal after ${before.batchesDone}/${before.batches} batches (${(before.bytesDone / MiB).toFixed(0)} MiB read), back after ${(downMs / 1000).toFixed(1)} s; backup completed ${((Date.now() - started) / 1000).toFixed(1)} s after it started`,
    );
    expect(result.stats.totalBytes).toBe(SIZE);
    expect(result.attempts).toBe(1);
    expect(result.batches).toBe(FILES);
    expect(before.batchesDone).toBeLessThan(FILES - 2);
    const desc = await client.workflow.getHandle(workflowId).describe();
    expect(desc.status.name).toBe('COMPLETED');

    const target = join(env.dir, 'restored');
    const restored = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-data-${Date.now()}`,
      args: [{ asset: 'data', target }],
    });
    expect(restored).toMatchObject({ snapshotId: result.snapshotId, files: FILES, bytes: SIZE, verified: true });
    for (let i = 0; i < FILES; i++) expect(await sha256File(join(target, `part-${i}.bin`))).toBe(shas[i]);
  }, 900_000);
});
