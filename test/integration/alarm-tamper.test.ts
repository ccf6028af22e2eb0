/**
 * The storage tamper alarm against the real MinIO and Temporal dev server:
 * `lifeline alarm watch` (the real CLI, a child process) listens to the
 * repository bucket. Lifeline runs with its own MinIO user; the root user plays
 * the attacker.
 *  - Lifeline's own backups, retention and garbage collection (deletes under
 *    data/, snapshots/, index/, tombstones/) raise no incident;
 *  - one pack deleted with the root credentials opens a storage-tamper incident
 *    naming the object kind, count and tenant; it holds and verifies the asset;
 *  - a burst of 50 deletes is one incident with count 50.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import pLimit from 'p-limit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { IncidentView } from '../../workflows/incident';
import type { RetentionResult } from '../../workflows/retention';
import { startCli } from '../support/cli';
import { TEST_ACCESS_KEY_ENV, TEST_SECRET_KEY_ENV } from '../support/config';
import { createMinioUser } from '../support/minio-users';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';
import { testS3Client, testServices, uniqueTaskQueue } from '../support/services';

const A = `alarm-${suffix()}`;
let p: TestPlatform;
let user: Awaited<ReturnType<typeof createMinioUser>>;
let lifelineS3: S3Client;
let worker: LifelineWorker;
let running: Promise<void>;
let connection: Connection;
let client: Client;
let taskQueue: string;
let watcher: ChildProcess;
let stdout = '';
let stderr = '';
let incidentId: string;

/** The watcher's --json lines so far. */
const lines = () =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { event: string; incident?: string; count?: number; kinds?: Record<string, number> });

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const v = await fn().catch((err: Error) => void (last = err));
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last error: ${String(last)})\nwatcher stdout: ${stdout}\nwatcher stderr: ${stderr.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function runs(workflowId: string): Promise<number> {
  let n = 0;
  for await (const _ of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) n++;
  return n;
}

const view = (id: string) => client.workflow.getHandle(id).query<IncidentView>('incident');

async function snapshotOf(content: Record<string, Buffer>) {
  const root = p.assetPath(A);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  for (const [name, data] of Object.entries(content)) await writeFile(join(root, name), data);
  return backup(await p.repository(), { root, asset: { name: A, kind: 'model', tenant: 'acme', node: p.node } });
}

beforeAll(async () => {
  p = await createTestPlatform({ label: 'alarm', assets: { [A]: { policy: 'keep1' } }, policies: { keep1: { retention: { keepLast: 1, gcGrace: '0s' } } } });
  (p.platform as Record<string, unknown>).alarm = { burstQuiet: '3s', burstMax: '2m' };
  await p.rewrite();
  // From here on Lifeline (workers, engine, the watcher) uses its own MinIO user; root is the attacker.
  user = await createMinioUser('lifeline-alarm');
  process.env[TEST_ACCESS_KEY_ENV] = user.accessKeyId;
  process.env[TEST_SECRET_KEY_ENV] = user.secretAccessKey;
  p.cliEnv = { [TEST_ACCESS_KEY_ENV]: user.accessKeyId, [TEST_SECRET_KEY_ENV]: user.secretAccessKey };
  const s3 = testServices().s3;
  lifelineS3 = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: user.accessKeyId, secretAccessKey: user.secretAccessKey } });

  taskQueue = uniqueTaskQueue('alarm');
  worker = await createLifelineWorker({ config: p.config, role: 'orchestrator', logger: createBufferLogger({ level: 'warn' }).logger, taskQueue });
  running = worker.run();
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
  incidentId = `incident-storage-tamper-${p.bucket}`;

  watcher = startCli(['--config', p.configFile, '--log-format', 'json', '--log-level', 'info', 'alarm', 'watch', '--json', '--task-queue', taskQueue], { env: p.cliEnv });
  watcher.stdout!.on('data', (d) => (stdout += d));
  watcher.stderr!.on('data', (d) => (stderr += d));
  await until('the watcher to listen', async () => lines().find((l) => l.event === 'watching'), 180_000);
}, 300_000);

afterAll(async () => {
  if (watcher && watcher.exitCode === null) {
    const exited = new Promise((r) => watcher.once('exit', r));
    watcher.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (watcher.exitCode === null) watcher.kill('SIGKILL');
  }
  // Incidents opened here (and the integrity failures their verification raised) wait for approval: end them.
  if (client) {
    for await (const w of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND ExecutionStatus = 'Running'` })) {
      await client.workflow.getHandle(w.workflowId, w.runId).terminate('test over').catch(() => {});
    }
  }
  worker?.worker.shutdown();
  await running?.catch(() => {});
  await connection?.close();
  lifelineS3?.destroy();
  await user?.remove();
  await p?.cleanup();
}, 120_000);

describe('storage tamper alarm', () => {
  it("Lifeline's own backups, retention and garbage collection raise no incident", async () => {
    await snapshotOf({ 'a.bin': randomBytes(300_000) });
    await snapshotOf({ 'b.bin': randomBytes(300_000) });
    const retention = async () => (await client.workflow.execute('retentionWorkflow', { taskQueue, workflowId: `test-retention-${suffix()}`, args: [{ asset: A }] })) as RetentionResult;
    const first = await retention();
    expect(first.retention.forgottenCount).toBe(1); // the first snapshot's manifest deleted
    const second = await retention();
    expect(second.gc!.deleted).toBeGreaterThan(0); // its packs deleted (phase 2, grace 0s)
    // Give the stream and the burst window time to deliver and close any burst.
    await new Promise((r) => setTimeout(r, 8000));
    expect(lines().filter((l) => l.event === 'incident')).toEqual([]);
    expect(await runs(incidentId)).toBe(0);
  }, 300_000);

  it('a pack deleted with the root credentials opens a storage-tamper incident naming the kind and count; the asset is held and verified', async () => {
    const repoPrefix = `tenants/acme/data/`;
    const listed = await testS3Client().send(new ListObjectsV2Command({ Bucket: p.bucket, Prefix: repoPrefix }));
    const pack = listed.Contents?.[0]?.Key;
    expect(pack).toBeDefined();
    await testS3Client().send(new DeleteObjectCommand({ Bucket: p.bucket, Key: pack! }));

    const line = await until('the incident line', async () => lines().find((l) => l.event === 'incident'));
    expect(line).toMatchObject({ incident: incidentId, count: 1, kinds: { pack: 1 } });
    const v = await until('the incident to verify and await approval', async () => {
      const x = await view(incidentId);
      return x.status === 'awaiting-approval' && x.verifications?.length ? x : undefined;
    });
    expect(v).toMatchObject({ type: 'storage-tamper', severity: 'critical', assets: [A], steps: { restore: 'awaiting-approval' } });
    expect(v.tamper).toMatchObject({ bucket: p.bucket, count: 1, kinds: { pack: 1 }, actions: ['delete'], tenants: ['acme'], sampleKeys: [pack], bursts: 1 });
    // The principal is the root user (shortened), never Lifeline's key.
    expect(v.tamper!.principals).toHaveLength(1);
    expect(v.tamper!.principals[0]).not.toMatch(/^lifeline-key:/);
    expect(v.contained[0]).toMatchObject({ asset: A, held: expect.any(Array) });
    expect(v.contained[0]!.held.length).toBe(1);
    expect(v.verifications![0]).toMatchObject({ asset: A, outcome: 'corrupt', corrupt: 1 });
    expect(v.timeline.map((e) => e.action)).toEqual(expect.arrayContaining(['opened', 'planned', 'hold-placed', `verified:${A}`, 'awaiting-approval:restore']));
    expect(v.timeline.find((e) => e.action === 'opened')!.detail).toContain('1 object(s) in bucket');

    // Close it, so the next burst opens a new incident.
    await client.workflow.getHandle(incidentId).executeUpdate('reject', { args: [{ step: 'restore', actor: 'test', reason: 'seen' }] });
    await until('the incident to close', async () => (await client.workflow.getHandle(incidentId).describe()).status.name === 'COMPLETED');
  }, 300_000);

  it('a burst of 50 deletes is one incident with count 50', async () => {
    // 50 objects under the repository's data/ folder, written with Lifeline's own key (which raises nothing) …
    const keys = Array.from({ length: 50 }, (_, i) => `tenants/acme/data/zz/${randomBytes(32).toString('hex')}${i}`);
    const limit = pLimit(8);
    await Promise.all(keys.map((Key) => limit(() => lifelineS3.send(new PutObjectCommand({ Bucket: p.bucket, Key, Body: randomBytes(64), ChecksumAlgorithm: 'SHA256' })))));
    await new Promise((r) => setTimeout(r, 5000));
    const before = lines().filter((l) => l.event === 'incident').length;
    expect(before).toBe(1);
    // … then deleted by the attacker as fast as it can.
    await Promise.all(keys.map((Key) => limit(() => testS3Client().send(new DeleteObjectCommand({ Bucket: p.bucket, Key })))));

    const v = await until('the burst incident', async () => {
      const n = await runs(incidentId);
      if (n < 2) throw new Error(`${n} run(s) of ${incidentId}`);
      const x = await view(incidentId);
      if (!(x.tamper && x.tamper.count >= 50 && x.status === 'awaiting-approval')) throw new Error(`incident ${x.status}: ${JSON.stringify(x.timeline.slice(-3))}`);
      return x;
    });
    expect(v.tamper).toMatchObject({ count: 50, kinds: { pack: 50 }, actions: ['delete'], tenants: ['acme'] });
    expect(v.tamper!.sampleKeys).toHaveLength(20);
    await new Promise((r) => setTimeout(r, 5000)); // nothing more may arrive
    expect(await runs(incidentId)).toBe(2); // the closed one from before, and this one
    const after = (await view(incidentId)).tamper!;
    expect(after.count).toBe(50);
    // Usually one burst; under heavy load the stream may pause longer than burstQuiet, and a second burst then joins the same incident.
    const reported = lines().filter((l) => l.event === 'incident').slice(before);
    expect(reported.every((l) => l.incident === incidentId)).toBe(true);
    expect(reported.reduce((n, l) => n + (l.count ?? 0), 0)).toBe(50);
    expect(after.bursts).toBe(reported.length);
  }, 300_000);

  it('keeps secrets out of its output', () => {
    for (const secret of [user.secretAccessKey, testServices().s3.secretAccessKey, user.accessKeyId, testServices().s3.accessKeyId]) {
      expect(stdout).not.toContain(secret);
      expect(stderr).not.toContain(secret);
    }
  });
});
