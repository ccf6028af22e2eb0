/**
 * A node agent is SIGKILLed in the middle of uploading a 1 GiB file. A new
 * node agent starts; the backup workflow retries the batch there and
 * completes without storing any chunk twice (the killed agent's packs were
 * indexed as they were stored), and a restore of the snapshot is
 * byte-identical. The batch also holds a 600 MiB file in an earlier slice:
 * the retry resumes after it (heartbeat details) instead of reading it again.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
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
    const first = join(env.assetPath('weights'), 'a-optimizer.bin'); // sorts first: slice 1 of the batch
    const FIRST = 600 * MiB;
    const TOTAL = FIRST + GiB;
    const t0 = Date.now();
    const shaFirst = await writeRandomFile(first, FIRST);
    const sha = await writeRandomFile(file, GiB);
    console.log(`[node-crash] wrote 1.6 GiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    let client: Client;
    ({ client, connection } = await connect(env));
    orchestrator = await startWorker(env, 'orchestrator');
    agents.push(await spawnNodeAgent(env));

    const workflowId = `backup-weights-${Date.now()}`;
    const handle = await client.workflow.start(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId,
      // A short heartbeat timeout: the SDK sends heartbeats at most every 0.8 × timeout, and the
      // test waits until the server holds the details that say slice 1 is done.
      args: [{ asset: 'weights', trigger: 'manual', options: { heartbeatTimeoutSeconds: 8, progressSignalMs: 300 } }],
    });

    // Wait until the server knows slice 1 (the 600 MiB file) is done and the 1 GiB file is being
    // uploaded, with several of its packs durable; then kill the agent.
    const started = Date.now();
    let seen: Progress | undefined;
    const sliceOnServer = async (): Promise<number> => {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      const payload = pending[0]?.heartbeatDetails?.payloads?.[0];
      return payload ? ((defaultPayloadConverter.fromPayload(payload) as { slice?: number }).slice ?? 0) : 0;
    };
    for (;;) {
      seen = await handle.query<Progress>(PROGRESS_QUERY).catch(() => seen);
      // Measured in the bucket (progress may lag on a busy machine): packs of the big file are stored.
      const stored = await bucketUsage(env, `${env.repoPrefix}data/`);
      if (stored.bytes >= FIRST + 128 * MiB && (await sliceOnServer()) >= 1) break;
      if (seen && (seen.phase === 'confirming' || seen.phase === 'committing' || seen.phase === 'completed')) throw new Error('the backup finished before the agent could be killed');
      if (Date.now() - started > 300_000) throw new Error(`backup made no progress: ${JSON.stringify(seen)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await agents[0]!.kill('SIGKILL');
    const beforeKill = await bucketUsage(env, `${env.repoPrefix}data/`);
    const indexesBeforeKill = await bucketUsage(env, `${env.repoPrefix}index/`);
    console.log(`[node-crash] killed the node agent at ${((seen?.bytesDone ?? 0) / MiB).toFixed(0)} MiB read (progress), ${(beforeKill.bytes / MiB).toFixed(0)} MiB stored in ${beforeKill.objects} packs, ${indexesBeforeKill.objects} index objects`);
    expect(beforeKill.bytes).toBeLessThan(TOTAL);

    const t1 = Date.now();
    agents.push(await spawnNodeAgent(env));
    const result = await handle.result();
    console.log(`[node-crash] backup finished ${((Date.now() - t1) / 1000).toFixed(1)} s after the second agent started`);

    expect(result.stats.files).toBe(2);
    expect(result.stats.totalBytes).toBe(TOTAL);
    // Slice 1 was taken over from the first attempt (600 MiB new there); the second attempt stored
    // only what the first had not: the chunks already in packs were reused.
    expect(result.stats.newBytes).toBeLessThan(TOTAL - beforeKill.bytes + FIRST + 2 * PACK);
    expect(result.stats.newBytes).toBeGreaterThan(FIRST);

    // Every data byte in the bucket, both agents together: the files once, plus at most the packs
    // that were in flight when the agent died (stored, index not yet written: ≤ 3 parallel uploads),
    // plus age overhead (< 0.1 %).
    const after = await bucketUsage(env, `${env.repoPrefix}data/`);
    const overhead = after.bytes - TOTAL;
    console.log(`[node-crash] data stored in total: ${after.bytes} bytes in ${after.objects} packs = file + ${(overhead / MiB).toFixed(2)} MiB; snapshot newBytes ${(result.stats.newBytes / MiB).toFixed(0)} MiB (slice 1 from the first attempt + what the second stored)`);
    expect(after.bytes).toBeGreaterThanOrEqual(TOTAL);
    expect(overhead).toBeLessThan(3 * PACK + TOTAL / 1000);

    // The batch ran twice — the first attempt on the dead agent — and the second resumed after slice 1.
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const events = history.events ?? [];
    expect(events.some((e) => (e.activityTaskStartedEventAttributes?.attempt ?? 0) > 1)).toBe(true);
    const batchResult = events
      .map((e) => e.activityTaskCompletedEventAttributes?.result?.payloads?.[0])
      .map((p) => (p ? (defaultPayloadConverter.fromPayload(p) as { resumedSlices?: number }) : undefined))
      .find((r) => r?.resumedSlices !== undefined);
    expect(batchResult?.resumedSlices).toBe(1);

    const target = join(env.dir, 'restored');
    const t2 = Date.now();
    const restored = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-weights-${Date.now()}`,
      args: [{ asset: 'weights', from: { snapshotId: result.snapshotId }, target, options: { heartbeatTimeoutSeconds: 30 } }],
    });
    console.log(`[node-crash] restored 1.6 GiB in ${((Date.now() - t2) / 1000).toFixed(1)} s`);
    expect(restored).toMatchObject({ snapshotId: result.snapshotId, files: 2, bytes: TOTAL, verified: true });
    expect((await stat(join(target, 'model.safetensors'))).size).toBe(GiB);
    expect(await sha256File(join(target, 'model.safetensors'))).toBe(sha);
    expect(await sha256File(join(target, 'a-optimizer.bin'))).toBe(shaFirst);
  }, 900_000);
});
