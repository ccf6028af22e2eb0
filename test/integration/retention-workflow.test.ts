/**
 * RetentionWorkflow against the real Temporal dev server and MinIO: keep-last
 * rules forget exactly the right snapshots and garbage collection deletes their
 * data while the kept ones still restore; held snapshots and the newest
 * verified one are never forgotten; and a backup that runs while garbage is
 * collected (gcGrace 0s, deterministically paused between reading and
 * committing) still restores byte for byte afterwards.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { keys as repoKeys } from '../../engine/repository';
import { restore } from '../../engine/restorer';
import { placeHold, releaseHold } from '../../engine/verification';
import { createBufferLogger } from '../../logging/logger';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { RetentionResult } from '../../workflows/retention';
import type { VerifyResult } from '../../workflows/verify';
import { parseJson, runCli } from '../support/cli';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';
import { testServices, uniqueTaskQueue } from '../support/services';

const s = suffix();
const A = `ckpt-${s}`; // keep-last 2 over 5
const H = `held-${s}`; // holds and the newest verified snapshot
const S = `side-${s}`; // its forgotten snapshot's data is reused by a concurrent backup of B
const B = `big-${s}`;
let p: TestPlatform;
let worker: LifelineWorker;
let running: Promise<void>;
let connection: Connection;
let client: Client;
let taskQueue: string;
const scratch: string[] = [];

beforeAll(async () => {
  p = await createTestPlatform({
    label: 'retention',
    assets: { [A]: { policy: 'keep2', kind: 'checkpoint' }, [H]: { policy: 'keep2' }, [S]: { policy: 'keep1' }, [B]: { policy: 'keep1', kind: 'dataset' } },
    policies: {
      keep2: { retention: { keepLast: 2, gcGrace: '0s' } },
      keep1: { retention: { keepLast: 1, gcGrace: '0s' } },
    },
  });
  taskQueue = uniqueTaskQueue('retention');
  worker = await createLifelineWorker({ config: p.config, role: 'orchestrator', logger: createBufferLogger({ level: 'warn' }).logger, taskQueue });
  running = worker.run();
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
});

afterAll(async () => {
  worker?.worker.shutdown();
  await running?.catch(() => {});
  await connection?.close();
  for (const d of scratch) await rm(d, { recursive: true, force: true });
  await p?.cleanup();
});

type Content = Record<string, Buffer>;

/** Writes `content` as the asset's files and backs it up through the engine. */
async function snapshotOf(asset: string, content: Content, kind: 'model' | 'checkpoint' | 'dataset' = 'model') {
  const root = p.assetPath(asset);
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  for (const [name, data] of Object.entries(content)) await writeFile(join(root, name), data);
  const repo = await p.repository();
  const before = new Set<string>();
  for await (const o of repo.store.list('data/')) before.add(o.key);
  const r = await backup(repo, { root, asset: { name: asset, kind, tenant: 'acme', node: p.node } });
  const packs: string[] = [];
  for await (const o of repo.store.list('data/')) if (!before.has(o.key)) packs.push(o.key);
  return { id: r.snapshotId, packs, content };
}

async function retention(asset: string, extra: Record<string, unknown> = {}): Promise<RetentionResult> {
  return (await client.workflow.execute('retentionWorkflow', { taskQueue, workflowId: `test-retention-${suffix()}`, args: [{ asset, ...extra }] })) as RetentionResult;
}

async function snapshotIds(asset: string): Promise<string[]> {
  return (await (await p.repository()).listSnapshots({ asset })).map((x) => x.id);
}

/** Restores a snapshot with a fresh repository (as a new process would) and compares every file. */
async function expectRestores(id: string, content: Content): Promise<void> {
  const target = await mkdtemp(join(tmpdir(), 'lifeline-restore-'));
  scratch.push(target);
  const r = await restore(await p.repository(), id, { target: join(target, 'out') });
  expect(r.files).toBe(Object.keys(content).length);
  for (const [name, data] of Object.entries(content)) expect((await readFile(join(target, 'out', name))).equals(data), `${id.slice(0, 12)} ${name}`).toBe(true);
}

async function exists(key: string): Promise<boolean> {
  return (await (await p.repository()).store.head(key)) !== null;
}

// Loaded 2-core machines (other suites running alongside): generous per-test timeouts.
describe('retention', () => {
  it('keep-last 2 over 5 snapshots: exactly the two newest stay, the others\' data is collected, the kept ones restore', async () => {
    const snaps = [];
    for (let i = 0; i < 5; i++) snaps.push(await snapshotOf(A, { 'step.bin': randomBytes(400_000 + i), 'meta.json': Buffer.from(JSON.stringify({ step: i })) }, 'checkpoint'));
    expect(await snapshotIds(A)).toEqual(snaps.map((x) => x.id));

    const first = await retention(A);
    expect(first.retention).toMatchObject({ asset: A, tenant: 'acme', dryRun: false, policy: { keepLast: 2 }, gcGraceMs: 0, snapshots: 5, keptCount: 2, forgottenCount: 3 });
    expect(first.retention.kept.map((k) => [k.id, k.reasons])).toEqual([
      [snaps[4]!.id, ['last 1']],
      [snaps[3]!.id, ['last 2']],
    ]);
    expect(first.retention.forgotten.map((f) => f.id)).toEqual([snaps[2]!.id, snaps[1]!.id, snaps[0]!.id]);
    expect(await snapshotIds(A)).toEqual([snaps[3]!.id, snaps[4]!.id]);
    // Phase 1 condemns the forgotten snapshots' packs; phase 2 (next run, grace 0s) deletes them.
    const forgottenPacks = snaps.slice(0, 3).flatMap((x) => x.packs);
    expect(first.gc!.condemned).toBe(forgottenPacks.length);
    expect(first.gc!.deleted).toBe(0);
    const second = await retention(A);
    expect(second.retention.forgottenCount).toBe(0);
    expect(second.gc!.deleted).toBe(forgottenPacks.length);
    for (const key of forgottenPacks) expect(await exists(key), key).toBe(false);
    for (const key of snaps.slice(3).flatMap((x) => x.packs)) expect(await exists(key), key).toBe(true);

    await expectRestores(snaps[3]!.id, snaps[3]!.content);
    await expectRestores(snaps[4]!.id, snaps[4]!.content);

    // On demand from the CLI: nothing more to forget, nothing more to collect.
    const cli = await runCli(['--config', p.configFile, 'retention', 'run', A, '--task-queue', taskQueue], { env: p.cliEnv });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(new RegExp(`kept +${snaps[4]!.id.slice(0, 12)} .* last 1`));
    expect(cli.stdout).toContain('2 kept, 0 forgotten');
    expect(cli.stdout).toMatch(/garbage collection: 0 pack\(s\) condemned, 0 deleted/);
  }, 300_000);

  it('a held snapshot and the newest verified one are never forgotten; the dry run says why and deletes nothing', async () => {
    const snaps = [];
    for (let i = 0; i < 5; i++) snaps.push(await snapshotOf(H, { 'w.bin': randomBytes(50_000 + i) }));
    const ids = snaps.map((x) => x.id);
    await placeHold(await p.repository(), { snapshotId: ids[0]!, id: 'case-7', reason: 'litigation' });
    const verified = (await client.workflow.execute('verifyWorkflow', { taskQueue, workflowId: `test-verify-${suffix()}`, args: [{ asset: H, snapshot: ids[1] }] })) as VerifyResult;
    expect(verified).toMatchObject({ snapshotsChecked: 1, verified: 1 });

    const dry = await runCli(['--config', p.configFile, 'retention', 'run', H, '--dry-run', '--json'], { env: p.cliEnv });
    expect(dry.code, dry.stderr).toBe(0);
    const plan = parseJson(dry);
    expect(plan.keep.map((k: { id: string; reasons: string[] }) => [k.id, k.reasons])).toEqual([
      [ids[4], ['last 1']],
      [ids[3], ['last 2']],
      [ids[1], ['newest verified snapshot']],
      [ids[0], ['hold case-7: litigation']],
    ]);
    expect(plan.forget.map((f: { id: string }) => f.id)).toEqual([ids[2]]);
    const text = await runCli(['--config', p.configFile, 'retention', 'run', H, '--dry-run'], { env: p.cliEnv });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`forget +${ids[2]!.slice(0, 12)}`));
    expect(text.stdout).toContain('dry run, nothing is deleted');
    expect(await snapshotIds(H)).toEqual(ids);

    const run = await retention(H);
    expect(run.retention.forgotten.map((f) => f.id)).toEqual([ids[2]]);
    expect(await snapshotIds(H)).toEqual([ids[0], ids[1], ids[3], ids[4]]);

    // The hold was what kept it: released, the next run forgets it.
    await releaseHold(await p.repository(), { snapshotId: ids[0]!, id: 'case-7', reason: 'case closed' });
    const after = await retention(H);
    expect(after.retention.forgotten.map((f) => f.id)).toEqual([ids[0]]);
    expect(await snapshotIds(H)).toEqual([ids[1], ids[3], ids[4]]);
  }, 300_000);

  it('a backup running while garbage is collected (gcGrace 0s) still restores afterwards', async () => {
    const shared = randomBytes(1_500_000);
    const x0 = await snapshotOf(S, { 'shared.bin': shared });
    const x1 = await snapshotOf(S, { 'other.bin': randomBytes(300_000) });

    // B's backup contains x0's file: it reuses x0's blobs instead of storing them again.
    const bRoot = p.assetPath(B);
    const bContent: Content = { 'shared.bin': shared, 'large.bin': randomBytes(4 * 1024 * 1024) };
    for (const [name, data] of Object.entries(bContent)) await writeFile(join(bRoot, name), data);
    let readDone!: () => void;
    const reading = new Promise<void>((r) => (readDone = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const running = backup(await p.repository(), {
      root: bRoot,
      asset: { name: B, kind: 'dataset', tenant: 'acme', node: p.node },
      hooks: {
        // Every file is read and its blobs chosen (x0's reused); hold the backup here while retention runs.
        afterRead: async () => {
          readDone();
          await released;
        },
      },
    });
    running.catch(() => {});
    await reading;

    // Retention forgets x0 and condemns its packs although B is about to reference them…
    const mark = await retention(S);
    expect(mark.retention.forgotten.map((f) => f.id)).toEqual([x0.id]);
    expect(mark.gc!.condemned).toBeGreaterThanOrEqual(x0.packs.length);
    // …and does not sweep them while B, which started before the tombstone, still runs.
    const blocked = await retention(S);
    expect(blocked.gc!.deleted).toBe(0);
    expect(blocked.gc!.deferred.some((d) => /started before it and is still running/.test(d.reason))).toBe(true);
    for (const key of x0.packs) expect(await exists(key), key).toBe(true);

    // B commits: it copies the condemned blobs it reused into a pack of its own.
    release();
    const b = await running;
    // Now the sweep deletes x0's packs.
    const sweep = await retention(S);
    expect(sweep.gc!.deleted).toBeGreaterThanOrEqual(x0.packs.length);
    expect(sweep.gc!.rescued).toBe(0);
    for (const key of x0.packs) expect(await exists(key), key).toBe(false);
    expect(await exists(repoKeys.snapshot(x1.id))).toBe(true);

    // B's snapshot restores byte for byte, and a deep verification of it passes.
    await expectRestores(b.snapshotId, bContent);
    const verified = (await client.workflow.execute('verifyWorkflow', {
      taskQueue,
      workflowId: `test-verify-${suffix()}`,
      args: [{ asset: B, mode: 'deep', samplePercent: 100 }],
    })) as VerifyResult;
    expect(verified).toMatchObject({ snapshotsChecked: 1, verified: 1, corrupt: 0 });
  }, 300_000);
});
