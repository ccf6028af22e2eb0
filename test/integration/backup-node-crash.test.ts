/**
 * A node agent is SIGKILLed in the middle of uploading a 1 GiB file. A new
 * node agent starts; the backup workflow retries the batch there and
 * completes without storing any chunk twice (the killed agent's packs were
 * indexed as they were stored), and a restore of the snapshot is
 * byte-identical.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { afterAll, describe, expect, it } from 'vitest';
import { backupWorkflow } from '../../workflows/backup';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { restoreWorkflow } from '../../workflows/restore';
import {
  bucketUsage,
  connect,
  makeEnv,
  removeEnv,
  sha256File,
  spawnNodeAgent,
  startWorker,
  writeRandomFile,
  type ChildAgent,
  type LifelineEnv,
  type RunningWorker,
} from '../support/lifeline-env';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const PACK = 16 * MiB;

let env: LifelineEnv | undefined;
let orchestrator: RunningWorker | undefined;
const agents: ChildAgent[] = [];
let connection: Connection | undefined;

afterAll(async () => {
  for (const a of agents) await a.kill().catch(() => undefined);
  await orchestrator?.stop();
  await connection?.close();
  await removeEnv(env);
});

describe('node agent killed mid-upload', () => {
  it('a new node agent finishes the backup without re-uploading stored chunks; the restore is byte-identical', async () => {
    env = await makeEnv('node-crash', { assets: { weights: { kind: 'model' } } });
    const file = join(env.assetPath('weights'), 'model.safetensors');
    const t0 = Date.now();
    const sha = await writeRandomFile(file, GiB);
    console.log(`[node-crash] wrote 1 GiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    let client: Client;
    ({ client, connection } = await connect(env));
    orchestrator = await startWorker(env, 'orchestrator');
    agents.push(await spawnNodeAgent(env));

    const workflowId = `backup-weights-${Date.now()}`;
    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId,
      args: [{ asset: 'weights', trigger: 'manual', options: { heartbeatTimeoutSeconds: 10, progressSignalMs: 300 } }],
    });

    // Wait until a good part of the file is read and several packs are durable, then kill the agent.
    const started = Date.now();
    let seen: Progress | undefined;
    for (;;) {
      seen = await handle.query<Progress>(PROGRESS_QUERY).catch(() => seen);
      const stored = await bucketUsage(env, `${env.repoPrefix}data/`);
      if (seen && seen.phase === 'uploading' && seen.bytesDone >= 300 * MiB && stored.bytes >= 6 * PACK) break;
      if (seen?.phase === 'completed' || seen?.phase === 'committing') throw new Error('the backup finished before the agent could be killed; make the file larger');
      if (Date.now() - started > 300_000) throw new Error(`backup made no progress: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await agents[0]!.kill('SIGKILL');
    const beforeKill = await bucketUsage(env, `${env.repoPrefix}data/`);
    const indexesBeforeKill = await bucketUsage(env, `${env.repoPrefix}index/`);
    console.log(`[node-crash] index objects at kill: ${indexesBeforeKill.objects}`);
    console.log(`[node-crash] killed the node agent at ${(seen.bytesDone / MiB).toFixed(0)} MiB read, ${(beforeKill.bytes / MiB).toFixed(0)} MiB stored in ${beforeKill.objects} packs`);
    expect(beforeKill.bytes).toBeLessThan(GiB);

    const t1 = Date.now();
    agents.push(await spawnNodeAgent(env));
    const result = await handle.result();
    console.log(`[node-crash] backup finished ${((Date.now() - t1) / 1000).toFixed(1)} s after the second agent started`);

    expect(result.stats.files).toBe(1);
    expect(result.stats.totalBytes).toBe(GiB);
    // The second attempt stored only what the first had not: the chunks already in packs were reused.
    expect(result.stats.newBytes).toBeLessThan(GiB - beforeKill.bytes + 2 * PACK);
    expect(result.stats.newBytes).toBeGreaterThan(0);

    // Every data byte in the bucket, both agents together: the file once, plus at most the packs
    // that were in flight (stored but not yet indexed) when the agent died, plus age overhead (< 0.1 %).
    const after = await bucketUsage(env, `${env.repoPrefix}data/`);
    const overhead = after.bytes - GiB;
    console.log(`[node-crash] data stored in total: ${after.bytes} bytes in ${after.objects} packs = file + ${(overhead / MiB).toFixed(2)} MiB; second attempt new ${(result.stats.newBytes / MiB).toFixed(0)} MiB`);
    expect(after.bytes).toBeGreaterThanOrEqual(GiB);
    expect(overhead).toBeLessThan(2 * PACK + GiB / 1000);

    // The batch really ran twice: the first attempt on the dead agent, the second on the new one.
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const batchStarts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt! > 1);
    expect(batchStarts.length).toBeGreaterThanOrEqual(1);

    const target = join(env.dir, 'restored');
    const t2 = Date.now();
    const restored = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-weights-${Date.now()}`,
      args: [{ asset: 'weights', from: { snapshotId: result.snapshotId }, target, options: { heartbeatTimeoutSeconds: 30 } }],
    });
    console.log(`[node-crash] restored 1 GiB in ${((Date.now() - t2) / 1000).toFixed(1)} s`);
    expect(restored).toMatchObject({ snapshotId: result.snapshotId, files: 1, bytes: GiB, verified: true });
    expect((await stat(join(target, 'model.safetensors'))).size).toBe(GiB);
    expect(await sha256File(join(target, 'model.safetensors'))).toBe(sha);
  }, 900_000);
});
