/**
 * The stored-object faults against the real MinIO and Temporal: an asset is
 * backed up twice and verified; then
 *  - corrupt-object (a pack of the newest snapshot, one the older snapshot does
 *    not use): the object no longer matches its name; a deep verification finds
 *    it (IntegrityFailure) and opens the integrity-failure incident; a restore
 *    "from last-verified" uses the older, unaffected snapshot; revert puts the
 *    original bytes back (SHA-256 = the pack's name), a second revert is a no-op
 *    and a deep verification passes again;
 *  - delete-object (the newest snapshot's manifest), injected by one process
 *    and reverted by another that has only the state folder (a crashed drill
 *    worker's successor): the snapshot is gone, then back byte for byte.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applicationFailureOf } from '../../cli/runs';
import { corruptObjectFault, deleteObjectFault } from '../../drills/faults/stored-object';
import type { InjectedFault, RevertedFault } from '../../drills/fault';
import type { FaultSpec } from '../../drills/scenario';
import { TenantRepositories } from '../../tenancy/repositories';
import { faultContext, faultInChild, storedSha256 } from '../support/faults';
import { connect, makeEnv, removeEnv, sha256File, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';

const MiB = 1024 ** 2;
let env: LifelineEnv;
let client: Client;
let connection: Connection;
const workers: RunningWorker[] = [];
const snapshots: string[] = [];
const cleanup: string[] = [];

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const stored = (key: string) => storedSha256(env, key);

const workflowId = (what: string) => `test-objfault-${what}-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;

beforeAll(async () => {
  env = await makeEnv('drill-object-faults', { assets: { model: { kind: 'model' } } });
  ({ client, connection } = await connect(env));
  workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));
  // two snapshots: the second adds a file, so it has packs of its own
  await writeRandomFile(join(env.assetPath('model'), 'a.bin'), 3 * MiB);
  for (const extra of ['b.bin', null]) {
    const r = await client.workflow.execute('backupWorkflow', { taskQueue: env.taskQueue, workflowId: workflowId('backup'), args: [{ asset: 'model', trigger: 'manual' }] });
    snapshots.push((r as { snapshotId: string }).snapshotId);
    if (extra) await writeRandomFile(join(env.assetPath('model'), extra), 3 * MiB);
  }
  const v = (await client.workflow.execute('verifyWorkflow', { taskQueue: env.taskQueue, workflowId: workflowId('verify'), args: [{ asset: 'model' }] })) as { verified: number };
  expect(v.verified).toBe(2);
}, 600_000);

afterAll(async () => {
  for (const id of cleanup) await client?.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined);
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
});

describe('stored-object faults', () => {
  it('corrupt-object: a pack of the newest snapshot is overwritten; deep verify finds it and opens an incident; restore uses the older snapshot; revert restores the bytes', async () => {
    const spec: FaultSpec = { kind: 'corrupt-object', at: '0s', target: { asset: 'model', snapshot: 'newest', object: 'pack' } };
    const ctx = faultContext(env.config, 'drill-obj-1', 'f0-corrupt-object');
    const injected = await corruptObjectFault.inject(ctx, spec, 'f0-corrupt-object');
    const key = String(injected.detail.key);
    const packId = key.split('/').pop()!;
    expect(injected.detail).toMatchObject({ asset: 'model', snapshot: snapshots[1], object: 'pack', sharedWithSnapshots: 0 });
    expect(key).toMatch(/^data\/[0-9a-f]{2}\/[0-9a-f]{64}$/);
    // state (with the original bytes) is on disk; the stored object no longer matches its name
    expect(existsSync(join(ctx.stateDir, 'state.json'))).toBe(true);
    expect(sha(readFileSync(join(ctx.stateDir, 'original.bin')))).toBe(packId);
    const damaged = await stored(key);
    expect(damaged).not.toBe(packId);
    expect(await corruptObjectFault.active(ctx, spec, 'f0-corrupt-object')).toBe(true);
    // idempotent: injecting again changes nothing
    const again = await corruptObjectFault.inject(ctx, spec, 'f0-corrupt-object');
    expect(again).toEqual(injected);
    expect(await stored(key)).toBe(damaged);
    // no file name in what goes to the report
    expect(JSON.stringify(injected)).not.toMatch(/\.bin/);

    // ---- detection: a deep verification fails with IntegrityFailure and opens the integrity-failure incident ----
    const deep = await client.workflow.start('verifyWorkflow', { taskQueue: env.taskQueue, workflowId: workflowId('deep'), args: [{ asset: 'model', mode: 'deep', samplePercent: 100 }] });
    const err = await deep.result().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(applicationFailureOf(err)?.type).toBe('IntegrityFailure');
    const incident = `incident-integrity-failure-model-${snapshots[1]!.slice(0, 12)}`;
    cleanup.push(incident);
    const deadline = Date.now() + 60_000;
    while (!(await client.workflow.getHandle(incident).describe().catch(() => null))) {
      if (Date.now() > deadline) throw new Error(`incident ${incident} was not opened`);
      await new Promise((r) => setTimeout(r, 250));
    }
    await client.workflow.getHandle(incident).terminate('test: the corruption is a drill fault');

    // ---- recovery: the newest verified snapshot not affected is the older one ----
    const target = join(env.dir, 'restored');
    const restored = (await client.workflow.execute('restoreWorkflow', { taskQueue: env.taskQueue, workflowId: workflowId('restore'), args: [{ asset: 'model', target, from: 'last-verified' }] })) as { snapshotId: string; verified: boolean };
    expect(restored).toMatchObject({ snapshotId: snapshots[0], verified: true });
    expect(await sha256File(join(target, 'a.bin'))).toBe(await sha256File(join(env.assetPath('model'), 'a.bin')));
    expect(existsSync(join(target, 'b.bin'))).toBe(false);

    // ---- revert: the original bytes are back (SHA-256 = the pack's name); a second revert is a no-op ----
    const reverted = await corruptObjectFault.revert(ctx, spec, 'f0-corrupt-object');
    expect(reverted).toMatchObject({ faultId: 'f0-corrupt-object', reverted: true, detail: { sha256Verified: true } });
    expect(await stored(key)).toBe(packId);
    expect(await corruptObjectFault.active(ctx, spec, 'f0-corrupt-object')).toBe(false);
    const second = await corruptObjectFault.revert(ctx, spec, 'f0-corrupt-object');
    expect(second.reverted).toBe(false);
    expect(await stored(key)).toBe(packId);
    // and the snapshot checks out again
    const ok = (await client.workflow.execute('verifyWorkflow', { taskQueue: env.taskQueue, workflowId: workflowId('deep-ok'), args: [{ asset: 'model', snapshot: snapshots[1], mode: 'deep', samplePercent: 100 }] })) as { verified: number };
    expect(ok.verified).toBe(1);
  }, 600_000);

  it('delete-object: the newest manifest is deleted by one process and put back by another that has only the state folder', async () => {
    const spec: FaultSpec = { kind: 'delete-object', at: '0s', target: { asset: 'model', snapshot: snapshots[1]!.slice(0, 10), object: 'manifest' } };
    const ctx = faultContext(env.config, 'drill-obj-2', 'f0-delete-object');
    const key = `snapshots/${snapshots[1]}`;
    const original = await stored(key);
    expect(original).not.toBeNull();

    const injected = await faultInChild<InjectedFault>({ configFile: env.configFile, op: 'inject', spec, faultId: 'f0-delete-object', drillId: 'drill-obj-2', stateDir: ctx.stateDir });
    expect(injected).toMatchObject({ kind: 'delete-object', detail: { snapshot: snapshots[1], object: 'manifest', key } });
    expect(await stored(key)).toBeNull();
    const repos = new TenantRepositories(env.config);
    const listed = async () => (await (await repos.repository(env.tenant)).listSnapshots({ asset: 'model' })).map((s) => s.id);
    expect(await listed()).toEqual([snapshots[0]]);
    expect(await deleteObjectFault.active(ctx, spec, 'f0-delete-object')).toBe(true);

    // the injecting process is gone; this one has only the state folder
    const reverted = await deleteObjectFault.revert(ctx, spec, 'f0-delete-object');
    expect(reverted.reverted).toBe(true);
    expect(await stored(key)).toBe(original);
    expect(await listed()).toEqual(snapshots);
    expect(await faultInChild<boolean>({ configFile: env.configFile, op: 'active', spec, faultId: 'f0-delete-object', drillId: 'drill-obj-2', stateDir: ctx.stateDir })).toBe(false);
    const second = await faultInChild<RevertedFault>({ configFile: env.configFile, op: 'revert', spec, faultId: 'f0-delete-object', drillId: 'drill-obj-2', stateDir: ctx.stateDir });
    expect(second.reverted).toBe(false);
  }, 600_000);

  it('refuses a target that is not there, before anything changes', async () => {
    const ctx = faultContext(env.config, 'drill-obj-3', 'f0-corrupt-object');
    const spec: FaultSpec = { kind: 'corrupt-object', at: '0s', target: { asset: 'model', snapshot: 'abcdef123456', object: 'pack' } };
    await expect(corruptObjectFault.inject(ctx, spec, 'f0-corrupt-object')).rejects.toThrow(/target\.snapshot: no snapshot matches abcdef123456/);
    expect(existsSync(join(ctx.stateDir, 'state.json'))).toBe(false);
  });
});
