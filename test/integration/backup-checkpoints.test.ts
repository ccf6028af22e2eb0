/**
 * Consistent checkpoints: a checkpoint written slowly, in pieces, is backed
 * up only once it is complete — in marker mode (the backup waits for the
 * marker) and in rename mode (entries still under a temporary name are left
 * out) — and a file modified during a backup never yields a committed torn
 * snapshot: the backup starts over and captures the new state, or, if the
 * asset keeps changing, fails loudly and commits nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Repository } from '../../engine/repository';
import { TenantRepositories } from '../../tenancy/repositories';
import { backupWorkflow, type BackupTuning, type BackupWorkflowResult } from '../../workflows/backup';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { bucketUsage, makeEnv, removeEnv, writeRandomFile, startWorkers, type EnvWorkers, type LifelineEnv } from '../support/lifeline-env';

const MiB = 1024 ** 2;
const FAST: BackupTuning = { heartbeatTimeoutSeconds: 20, progressSignalMs: 200, checkpointPollSeconds: 0.3, changedRetryDelaySeconds: 1 };

let env: LifelineEnv;
let workers: EnvWorkers | undefined;
let client: Client;
let repo: Repository;

beforeAll(async () => {
  env = await makeEnv('checkpoints', {
    assets: {
      ckm: { checkpoint: { completion: 'marker', marker: 'COMPLETE' } },
      ckr: { checkpoint: { completion: 'rename' } },
      ckwait: { checkpoint: { completion: 'marker', marker: 'DONE' } },
      ds: { kind: 'dataset' },
      hot: { kind: 'dataset' },
    },
  });
  workers = await startWorkers(env);
  client = workers.client;
  repo = await new TenantRepositories(env.config).repository(env.tenant);
}, 300_000);

afterAll(async () => {
  await workers?.stop();
  await removeEnv(env);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Appends random pieces with pauses, like a trainer writing a checkpoint; returns the final SHA-256. */
async function writeSlowly(path: string, pieces: number, pieceBytes: number, pauseMs: number): Promise<string> {
  const hash = createHash('sha256');
  await writeFile(path, Buffer.alloc(0));
  for (let i = 0; i < pieces; i++) {
    const b = randomBytes(pieceBytes);
    hash.update(b);
    await appendFile(path, b);
    await sleep(pauseMs);
  }
  return hash.digest('hex');
}

/** path → SHA-256 of every file in a snapshot (from its tree, no restore needed). */
async function filesOf(snapshotId: string): Promise<Record<string, string>> {
  await repo.loadIndex();
  const out: Record<string, string> = {};
  for (const e of await repo.loadTree(await repo.loadSnapshot(snapshotId))) if (e.type === 'file') out[e.path] = e.sha256;
  return out;
}

async function startBackup(asset: string) {
  return client.workflow.start(backupWorkflow, {
    taskQueue: env.taskQueue,
    workflowId: `backup-${asset}-${Date.now()}-${randomBytes(2).toString('hex')}`,
    args: [{ asset, trigger: 'manual', options: FAST }],
  });
}

describe('checkpoints are backed up only when complete', () => {
  it('marker mode: the backup waits for the marker; every snapshot holds one complete checkpoint', async () => {
    const root = env.assetPath('ckm');
    // ---- checkpoint 1, written slowly; the backup starts while it is being written ----
    const writing = Promise.all([writeSlowly(join(root, 'model.bin'), 8, 512 * 1024, 150), writeSlowly(join(root, 'optim.bin'), 4, 256 * 1024, 250)]);
    await sleep(200);
    const h1 = await startBackup('ckm');
    const phases = new Set<string>();
    const [m1, o1] = await writing;
    // The writer is done but the marker is not there: the backup keeps waiting.
    for (let i = 0; i < 10; i++) {
      phases.add((await h1.query<Progress>(PROGRESS_QUERY)).phase);
      await sleep(100);
    }
    expect(phases).toEqual(new Set(['waiting-for-checkpoint']));
    await writeFile(join(root, 'COMPLETE'), 'step 100\n');
    const r1: BackupWorkflowResult = await h1.result();
    expect(r1.waitedSeconds).toBeGreaterThanOrEqual(1);
    const cp1 = { 'model.bin': m1, 'optim.bin': o1, COMPLETE: sha(Buffer.from('step 100\n')) };
    expect(await filesOf(r1.snapshotId)).toEqual(cp1);

    // ---- checkpoint 2 rewrites the files in place: marker removed first, written last ----
    await rm(join(root, 'COMPLETE'));
    const h2 = await startBackup('ckm');
    const [m2, e2] = await Promise.all([writeSlowly(join(root, 'model.bin'), 6, 512 * 1024, 150), writeSlowly(join(root, 'extra.bin'), 3, 100_000, 200)]);
    expect((await h2.query<Progress>(PROGRESS_QUERY)).phase).toBe('waiting-for-checkpoint');
    await writeFile(join(root, 'COMPLETE'), 'step 200\n');
    const r2 = await h2.result();
    const cp2 = { 'model.bin': m2, 'optim.bin': o1, 'extra.bin': e2, COMPLETE: sha(Buffer.from('step 200\n')) };
    expect(await filesOf(r2.snapshotId)).toEqual(cp2);

    // No snapshot of the asset holds a partial checkpoint.
    const all = await repo.listSnapshots({ asset: 'ckm' });
    expect(all.map((s) => s.id).sort()).toEqual([r1.snapshotId, r2.snapshotId].sort());
  });

  it('rename mode: entries still under a temporary name are never backed up; the renamed checkpoint is', async () => {
    const root = env.assetPath('ckr');
    await mkdir(join(root, 'step-1'));
    const s1 = { 'step-1/shard-0.bin': await writeRandomFile(join(root, 'step-1', 'shard-0.bin'), 2 * MiB), 'step-1/shard-1.bin': await writeRandomFile(join(root, 'step-1', 'shard-1.bin'), MiB) };
    // The trainer writes step 2 under a temporary name, and the "latest" pointer as .partial.
    await mkdir(join(root, 'step-2.tmp'));
    let writerDone = false;
    const writer = (async () => {
      const shard = await writeSlowly(join(root, 'step-2.tmp', 'shard-0.bin'), 30, 128 * 1024, 150);
      await writeFile(join(root, 'latest.json.partial'), '{"step": 2}');
      writerDone = true;
      return shard;
    })();
    await sleep(300);
    const r1 = await (await startBackup('ckr')).result();
    expect(writerDone).toBe(false); // the backup ran while step 2 was being written
    expect(await filesOf(r1.snapshotId)).toEqual(s1);
    expect(r1.excluded).toBeGreaterThanOrEqual(2); // the .tmp folder and the file in it

    const shard2 = await writer;
    await rename(join(root, 'step-2.tmp'), join(root, 'step-2'));
    await rename(join(root, 'latest.json.partial'), join(root, 'latest.json'));
    const r2 = await (await startBackup('ckr')).result();
    expect(await filesOf(r2.snapshotId)).toEqual({ ...s1, 'step-2/shard-0.bin': shard2, 'latest.json': sha(Buffer.from('{"step": 2}')) });
    expect(r2.excluded).toBe(0);

    for (const s of await repo.listSnapshots({ asset: 'ckr' })) {
      const files = await filesOf(s.id);
      expect(Object.keys(files).some((p) => /\.tmp(\/|$)|\.partial$/.test(p))).toBe(false);
      if ('step-2/shard-0.bin' in files) expect(files['step-2/shard-0.bin']).toBe(shard2);
    }
  });

  it('marker mode: a checkpoint that never completes fails after the wait, saying which marker is missing', async () => {
    await writeFile(join(env.assetPath('ckwait'), 'half.bin'), randomBytes(1000));
    const err = await client.workflow
      .execute(backupWorkflow, {
        taskQueue: env.taskQueue,
        workflowId: `backup-ckwait-${Date.now()}`,
        args: [{ asset: 'ckwait', trigger: 'manual', options: { ...FAST, checkpointWaitSeconds: 2 } }],
      })
      .then(() => null, (e: unknown) => e);
    const failure = (err as WorkflowFailedError).cause?.cause as unknown as { type?: string; message: string; nonRetryable?: boolean };
    expect(failure.type, failure.message).toBe('CheckpointNotReady');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/asset ckwait on node .*: no complete checkpoint after waiting \d+ s: the completion marker DONE does not exist yet/);
    expect(await repo.listSnapshots({ asset: 'ckwait' })).toEqual([]);
  });
});

describe('files modified during a backup', () => {
  it('a file changed during the backup: the backup starts over and commits the new state, never a torn one', async () => {
    const root = env.assetPath('ds');
    const big = await writeRandomFile(join(root, 'big.bin'), 256 * MiB);
    await writeFile(join(root, 'notes.txt'), 'version 1\n');
    const h = await startBackup('ds');
    for (;;) {
      const p = await h.query<Progress>(PROGRESS_QUERY);
      if (p.phase === 'uploading') break; // the batch is running (big.bin is read first)
      if (p.phase === 'confirming' || p.phase === 'committing' || p.phase === 'completed') throw new Error('too late to change the file; make big.bin larger');
      await sleep(50);
    }
    await appendFile(join(root, 'notes.txt'), 'version 2\n');
    const r = await h.result();
    expect(r.attempts).toBeGreaterThanOrEqual(2);
    expect(await filesOf(r.snapshotId)).toEqual({ 'big.bin': big, 'notes.txt': sha(Buffer.from('version 1\nversion 2\n')) });
    expect((await repo.listSnapshots({ asset: 'ds' })).map((s) => s.id)).toEqual([r.snapshotId]);
  });

  it('a file that keeps changing: the backup fails loudly, naming the file, and commits nothing', async () => {
    const root = env.assetPath('hot');
    const size = 48 * MiB;
    await writeRandomFile(join(root, 'hot.bin'), size);
    await writeFile(join(root, 'calm.txt'), 'unchanged');
    // A writer that never stops: small in-place writes every few milliseconds.
    const fh = await open(join(root, 'hot.bin'), 'r+');
    let stop = false;
    const writer = (async () => {
      while (!stop) {
        await fh.write(randomBytes(8), 0, 8, Math.floor(Math.random() * (size - 8)));
        await sleep(5);
      }
    })();
    try {
      const err = await client.workflow
        .execute(backupWorkflow, {
          taskQueue: env.taskQueue,
          workflowId: `backup-hot-${Date.now()}`,
          args: [{ asset: 'hot', trigger: 'manual', options: { ...FAST, changedRetries: 2 } }],
        })
        .then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = (err as WorkflowFailedError).cause as unknown as { type?: string; message: string };
      expect(failure.type).toBe('AssetKeepsChanging');
      expect(failure.message).toContain('gave up after 3 attempts');
      expect(failure.message).toContain('hot.bin');
      expect(failure.message).toMatch(/changed/);
    } finally {
      stop = true;
      await writer;
      await fh.close();
    }
    expect(await repo.listSnapshots({ asset: 'hot' })).toEqual([]);
    // Every abandoned attempt gave its lease back.
    expect((await bucketUsage(env, `${env.repoPrefix}locks/`)).objects).toBe(0);
  });
});
