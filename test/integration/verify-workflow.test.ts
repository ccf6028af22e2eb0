/**
 * VerifyWorkflow against the real Temporal dev server and MinIO: a deep
 * verification finds an object overwritten through S3, marks exactly that
 * snapshot corrupt in a signed record naming the object, emits an
 * integrity-failure event (error log), and "last verified" falls back to the
 * previous good snapshot. The CLI shows the same states.
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { lastVerifiedSnapshot, listVerifications, verificationState } from '../../engine/verification';
import { createBufferLogger } from '../../logging/logger';
import { tenantLocation } from '../../tenancy/repositories';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { VerifyResult } from '../../workflows/verify';
import { applicationFailureOf } from '../../cli/runs';
import { parseJson, runCli } from '../support/cli';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';
import { testS3Client, testServices, uniqueTaskQueue } from '../support/services';

const asset = `llm-${suffix()}`;
let p: TestPlatform;
const workers: LifelineWorker[] = [];
const running: Array<Promise<void>> = [];
let connection: Connection;
let client: Client;
let taskQueue: string;
const log = createBufferLogger({ level: 'info' });

beforeAll(async () => {
  p = await createTestPlatform({ label: 'verify', assets: { [asset]: {} } });
  taskQueue = uniqueTaskQueue('verify');
  workers.push(await createLifelineWorker({ config: p.config, role: 'orchestrator', logger: log.logger, taskQueue }));
  // The node agent restores "last verified" at the end.
  workers.push(await createLifelineWorker({ config: p.config, role: 'node-agent', nodeId: p.node, logger: log.logger }));
  for (const w of workers) running.push(w.run());
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
});

afterAll(async () => {
  for (const w of workers) w.worker.shutdown();
  await Promise.allSettled(running);
  await connection?.close();
  await p?.cleanup();
});

async function snapshot(step: number): Promise<{ id: string; packs: string[]; weights: Buffer }> {
  const repo = await p.repository();
  const before = new Set<string>();
  for await (const o of repo.store.list('data/')) before.add(o.key);
  const weights = randomBytes(300_000 + step);
  await writeFile(join(p.assetPath(asset), 'weights.bin'), weights);
  await writeFile(join(p.assetPath(asset), 'config.json'), JSON.stringify({ step }));
  const r = await backup(repo, { root: p.assetPath(asset), asset: { name: asset, kind: 'model', tenant: 'acme', node: p.node }, labels: { step: String(step) } });
  const packs: string[] = [];
  for await (const o of repo.store.list('data/')) if (!before.has(o.key)) packs.push(o.key);
  return { id: r.snapshotId, packs, weights };
}

type Outcome = { ok: true; result: VerifyResult } | { ok: false; failure: ApplicationFailure; activityAttempts: number[] };

async function verify(args: Record<string, unknown>): Promise<Outcome> {
  const handle = await client.workflow.start('verifyWorkflow', { taskQueue, workflowId: `test-verify-${suffix()}`, args: [{ asset, ...args }] });
  try {
    return { ok: true, result: (await handle.result()) as VerifyResult };
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const failure = applicationFailureOf(err);
    expect(failure).toBeInstanceOf(ApplicationFailure);
    const history = await handle.fetchHistory();
    const activityAttempts = (history.events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : []));
    return { ok: false, failure: failure!, activityAttempts };
  }
}

// Loaded 2-core machines (other suites running alongside): generous per-test timeouts.
describe('verification', () => {
  const snaps: Array<{ id: string; packs: string[]; weights: Buffer }> = [];

  it('deep verification of good snapshots records them verified', async () => {
    for (let i = 0; i < 3; i++) snaps.push(await snapshot(i));
    // Every snapshot wrote packs of its own (nothing shared), so damage to s2's pack is s2's alone.
    expect(snaps.every((s) => s.packs.length > 0)).toBe(true);
    const r = await verify({ mode: 'deep', samplePercent: 100 });
    expect(r.ok).toBe(true);
    const result = (r as { result: VerifyResult }).result;
    expect(result).toMatchObject({ asset, tenant: 'acme', mode: 'deep', samplePercent: 100, snapshotsChecked: 3, verified: 3, corrupt: 0, problemCount: 0 });
    expect(result.packsChecked).toBeGreaterThanOrEqual(3);
    expect(result.bytesDownloaded).toBeGreaterThan(900_000);
    expect((await lastVerifiedSnapshot(await p.repository(), asset))!.id).toBe(snaps[2]!.id);
  }, 300_000);

  it('an object overwritten through S3 makes the next deep verification mark that snapshot corrupt and name the object', async () => {
    const [s0, s1, s2] = snaps as [(typeof snaps)[0], (typeof snaps)[0], (typeof snaps)[0]];
    const prefix = tenantLocation(p.config, 'acme', p.config.storage).prefix;
    const damaged = s2.packs[0]!;
    await testS3Client().send(new PutObjectCommand({ Bucket: p.bucket, Key: `${prefix}${damaged}`, Body: randomBytes(4096) }));

    const r = await verify({ mode: 'deep', samplePercent: 100 });
    expect(r.ok).toBe(false);
    const failure = (r as { failure: ApplicationFailure }).failure;
    expect(failure.type).toBe('IntegrityFailure');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toContain(`snapshot ${s2.id.slice(0, 12)} ${damaged}`);
    const result = failure.details![0] as VerifyResult;
    expect(result).toMatchObject({ snapshotsChecked: 3, verified: 2, corrupt: 1, corruptSnapshots: [s2.id] });
    expect(result.problemCount).toBeGreaterThan(0);
    expect(result.problems.every((x) => x.snapshotId === s2.id)).toBe(true);
    expect(result.problems.map((x) => x.object)).toContain(damaged);

    // Recorded in the repository, signed and encrypted, with the object.
    const repo = await p.repository();
    const records = await listVerifications(repo, { snapshotId: s2.id });
    const state = verificationState(records);
    expect(state.state).toBe('corrupt');
    expect(state.lastFailed!.problems.map((x) => x.object)).toContain(damaged);
    expect(verificationState(await listVerifications(repo, { snapshotId: s1.id })).state).toBe('verified');
    expect(verificationState(await listVerifications(repo, { snapshotId: s0.id })).state).toBe('verified');

    // "Last verified" is now the previous good snapshot, and a restore of "last verified" restores it.
    expect((await lastVerifiedSnapshot(repo, asset))!.id).toBe(s1.id);
    const target = join(p.dir, 'restored');
    const restored = (await client.workflow.execute('restoreWorkflow', {
      taskQueue,
      workflowId: `test-restore-${suffix()}`,
      args: [{ asset, from: 'last-verified', target }],
    })) as { snapshotId: string; files: number };
    expect(restored).toMatchObject({ snapshotId: s1.id, files: 2 });
    expect((await readFile(join(target, 'weights.bin'))).equals(s1.weights)).toBe(true);
    expect(JSON.parse(await readFile(join(target, 'config.json'), 'utf8'))).toEqual({ step: 1 });

    // The integrity-failure event: an error-level log line naming asset, snapshot and object.
    const events = log
      .lines()
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.event === 'integrity-failure');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ level: 50, asset, snapshotId: s2.id, object: damaged, tenant: 'acme', mode: 'deep' });
  }, 300_000);

  it('the CLI shows verification states, history with the object, and verify exits 3 on corruption', async () => {
    const [, s1, s2] = snaps as [(typeof snaps)[0], (typeof snaps)[0], (typeof snaps)[0]];
    const cli = (args: string[]) => runCli(['--config', p.configFile, ...args], { env: p.cliEnv });

    const list = await cli(['snapshots', 'list', asset, '--json']);
    expect(list.code, list.stderr).toBe(0);
    const rows = parseJson<Array<{ id: string; asset: string; tenant: string; files: number; verification: { state: string } }>>(list);
    expect(rows.map((r) => [r.id, r.verification.state])).toEqual([
      [snaps[0]!.id, 'verified'],
      [s1.id, 'verified'],
      [s2.id, 'corrupt'],
    ]);
    expect(rows[0]).toMatchObject({ asset, tenant: 'acme', files: 2 });

    const table = await cli(['snapshots', 'list', asset]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${s2.id.slice(0, 12)} .* CORRUPT`));

    const show = await cli(['snapshots', 'show', s2.id.slice(0, 10), '--json']);
    expect(show.code, show.stderr).toBe(0);
    const shown = parseJson(show);
    expect(shown.id).toBe(s2.id);
    expect(shown.labels).toEqual({ step: '2' });
    expect(shown.files).toBeUndefined();
    expect(shown.verification.state).toBe('corrupt');
    expect(shown.history.map((h: { result: string }) => h.result)).toEqual(['passed', 'failed']);
    expect(shown.history[1].problems.map((x: { object: string }) => x.object)).toContain(s2.packs[0]);

    const good = await cli(['verify', asset, '--snapshot', s1.id.slice(0, 8), '--wait', '--json', '--task-queue', taskQueue]);
    expect(good.code, good.stderr).toBe(0);
    expect(parseJson(good)).toMatchObject({ snapshotsChecked: 1, verified: 1, corrupt: 0 });

    const bad = await cli(['verify', asset, '--deep', '--sample', '100', '--wait', '--task-queue', taskQueue]);
    expect(bad.code, bad.stderr).toBe(3);
    expect(bad.stdout).toContain(`1 corrupt`);
    expect(bad.stdout).toContain(s2.packs[0]);
  }, 300_000);

  it('permanent problems fail at once with a clear message, not after retries', async () => {
    for (const [args, message] of [
      [{ asset: 'no-such-asset' }, /unknown asset "no-such-asset"/],
      [{ snapshot: 'abcdef0123' }, /no snapshot matches abcdef0123/],
      [{ snapshot: 'not-hex' }, /not a snapshot id/],
    ] as const) {
      const r = await verify(args);
      expect(r.ok).toBe(false);
      const { failure, activityAttempts } = r as Extract<Outcome, { ok: false }>;
      expect(failure.message).toMatch(message);
      expect(failure.nonRetryable).toBe(true);
      // One attempt of the planning activity, no retries.
      expect(activityAttempts).toEqual([1]);
    }

    const cli = await runCli(['--config', p.configFile, 'verify', 'no-such-asset'], { env: p.cliEnv });
    expect(cli.code).toBe(1);
    expect(cli.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^lifeline: unknown asset "no-such-asset"/)]);
  }, 300_000);
});
