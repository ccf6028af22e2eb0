/**
 * A backup of an asset with 100,000 small files: bounded batches, continue-as-
 * new every few batches, and every run's history far below Temporal's limits
 * (51,200 events / 50 MiB per history, 2 MiB per payload). The histories of
 * all runs of the chain are fetched and measured (protobuf-encoded bytes).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { afterAll, describe, expect, it } from 'vitest';
import { sealIncludes } from '../../backups/include';
import { loadTenantIdentities, TenantRepositories } from '../../tenancy/repositories';
import { WORKFLOWS_PATH } from '../../workers/worker';
import { backupWorkflow } from '../../workflows/backup';
import { restoreWorkflow } from '../../workflows/restore';
import { connect, makeEnv, removeEnv, startWorker, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';

const DIRS = 200;
const PER_DIR = 500;
const FILES = DIRS * PER_DIR;

let env: LifelineEnv | undefined;
const workers: RunningWorker[] = [];
let connection: Connection | undefined;

afterAll(async () => {
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
});

const dirName = (d: number) => `d-${String(d).padStart(3, '0')}`;
const fileName = (f: number) => `f-${String(f).padStart(4, '0')}.txt`;

interface RunHistory {
  runId: string;
  events: number;
  bytes: number;
  largestEventBytes: number;
  continuedAsNew: boolean;
}

/** Every run of a workflow id, first to last, following continue-as-new. */
async function chainHistories(client: Client, workflowId: string, firstRunId: string): Promise<RunHistory[]> {
  const out: RunHistory[] = [];
  for (let runId: string | undefined = firstRunId; runId; ) {
    const history: temporal.api.history.v1.IHistory = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events: temporal.api.history.v1.IHistoryEvent[] = history.events ?? [];
    const last = events[events.length - 1];
    const next: string | undefined = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    out.push({
      runId,
      events: events.length,
      bytes: temporal.api.history.v1.History.encode(history).finish().length,
      largestEventBytes: Math.max(...events.map((e) => temporal.api.history.v1.HistoryEvent.encode(e).finish().length)),
      continuedAsNew: next !== undefined,
    });
    runId = next;
  }
  return out;
}

describe('100,000 small files', () => {
  it('backs up in bounded batches across continue-as-new runs, each history far under the limits', async () => {
    env = await makeEnv('100k', { assets: { many: { kind: 'dataset' } } });
    const root = env.assetPath('many');
    const t0 = Date.now();
    for (let d = 0; d < DIRS; d++) {
      await mkdir(join(root, dirName(d)));
      const writes: Array<Promise<void>> = [];
      for (let f = 0; f < PER_DIR; f++) writes.push(writeFile(join(root, dirName(d), fileName(f)), `${dirName(d)}/${fileName(f)} ${randomBytes(32).toString('hex')}\n`.padEnd(100, '.')));
      await Promise.all(writes);
    }
    console.log(`[100k] created ${FILES} files in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    let client: Client;
    ({ client, connection } = await connect(env));
    workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));

    const workflowId = `backup-many-${Date.now()}`;
    const t1 = Date.now();
    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ asset: 'many', trigger: 'manual', options: { heartbeatTimeoutSeconds: 60, progressSignalMs: 2000 } }],
    });
    const result = await handle.result();
    const backupSeconds = (Date.now() - t1) / 1000;

    expect(result.stats.files).toBe(FILES);
    expect(result.stats.dirs).toBe(DIRS);
    expect(result.stats.totalBytes).toBe(FILES * 100);
    // 100,200 entries at ≤ 5,000 per batch; 10 batches per run.
    expect(result.batches).toBe(Math.ceil((FILES + DIRS) / 5000));
    expect(result.runs).toBe(Math.ceil(result.batches / 10));

    const runs = await chainHistories(client, workflowId, handle.firstExecutionRunId);
    console.log(
      `[100k] backup ${backupSeconds.toFixed(1)} s, ${result.batches} batches, ${runs.length} runs: ` +
        runs.map((r) => `${r.events} events / ${(r.bytes / 1024).toFixed(1)} KiB (largest event ${(r.largestEventBytes / 1024).toFixed(1)} KiB)`).join('; '),
    );
    expect(runs.length).toBe(result.runs);
    expect(runs.length).toBeGreaterThanOrEqual(2); // continue-as-new happened
    expect(runs.slice(0, -1).every((r) => r.continuedAsNew)).toBe(true);
    for (const r of runs) {
      expect(r.events).toBeLessThan(51_200 / 20);
      expect(r.bytes).toBeLessThan((50 * 1024 * 1024) / 20);
      expect(r.largestEventBytes).toBeLessThan(512 * 1024 / 4);
    }
    // Every run replays deterministically against today's workflow code.
    for (const r of runs) {
      await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, await client.workflow.getHandle(workflowId, r.runId).fetchHistory(), workflowId);
    }
    // No file name of the asset in any history.
    for (const r of runs) {
      const text = JSON.stringify(await client.workflow.getHandle(workflowId, r.runId).fetchHistory());
      expect(text).not.toContain('f-0001.txt');
      expect(text).not.toContain(dirName(7));
    }

    // The snapshot holds every file; one folder of it restores with the right contents.
    const repo = await new TenantRepositories(env.config).repository(env.tenant);
    await repo.loadIndex();
    const tree = await repo.loadTree(await repo.loadSnapshot(result.snapshotId));
    expect(tree.filter((e) => e.type === 'file').length).toBe(FILES);
    const identities = await loadTenantIdentities(env.config, env.tenant);
    const target = join(env.dir, 'restored');
    const restored = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-many-${Date.now()}`,
      args: [{ asset: 'many', target, includeSealed: await sealIncludes([dirName(7)], await identities.recipients()), includeCount: 1 }],
    });
    expect(restored.files).toBe(PER_DIR);
    for (const f of [0, 123, PER_DIR - 1]) {
      expect(await readFile(join(target, dirName(7), fileName(f)), 'utf8')).toBe(await readFile(join(root, dirName(7), fileName(f)), 'utf8'));
    }
  }, 900_000);
});
