/**
 * The audit log hooked into the workflows, on the shared Temporal and MinIO:
 * a backup, a verification and a restore are audit entries naming their
 * workflow, the log verifies with `lifeline audit verify`, and `audit show`
 * lists them. Cross-tenant: tenant acme's identity cannot decrypt tenant
 * globex's objects, and a restore for acme of globex's asset or snapshot (by
 * id or prefix, through the RestoreWorkflow and through the CLI) is refused
 * naming the tenant mismatch, writes nothing, and is audited as denied.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../audit/entry';
import { openBytes } from '../../engine/crypto/age';
import { loadTenantIdentities, tenantLocation } from '../../tenancy/repositories';
import { modelBomWorkflowId } from '../../workflows/mbom';
import { backupWorkflow, type BackupWorkflowResult } from '../../workflows/backup';
import { restoreWorkflow, type RestoreWorkflowInput } from '../../workflows/restore';
import { verifyWorkflow } from '../../workflows/verify';
import { parseJson, runCli } from '../support/cli';
import { connect, makeEnv, removeEnv, startWorker, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { testS3Client } from '../support/services';

let env: LifelineEnv;
let orchestrator: RunningWorker;
let agent: RunningWorker;
let client: Client;
let connection: Connection;

beforeAll(async () => {
  env = await makeEnv('audit-wf', { tenants: ['globex'], audit: true, assets: { model: { kind: 'model' }, rival: { kind: 'dataset', tenant: 'globex' } } });
  for (const [asset, files] of [
    ['model', { 'weights.bin': 'w'.repeat(5000), 'cfg/model.json': '{"layers":3}' }],
    ['rival', { 'data-0001.jsonl': '{"x":1}\n'.repeat(200) }],
  ] as const) {
    for (const [name, content] of Object.entries(files)) {
      await mkdir(join(env.assetPath(asset), name, '..'), { recursive: true });
      await writeFile(join(env.assetPath(asset), name), content);
    }
  }
  ({ client, connection } = await connect(env));
  orchestrator = await startWorker(env, 'orchestrator');
  agent = await startWorker(env, 'node-agent');
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await orchestrator?.stop();
  await connection?.close();
  await removeEnv(env);
});

const cli = (args: string[]) => runCli(['--config', env.configFile, ...args], { timeoutMs: 180_000 });

async function auditShow(filter: string[]): Promise<AuditEntry[]> {
  const r = await cli(['audit', 'show', ...filter, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return parseJson<Array<{ entry: AuditEntry; signatureValid: boolean }>>(r).map((x) => {
    expect(x.signatureValid).toBe(true);
    return x.entry;
  });
}

async function backup(asset: string): Promise<{ result: BackupWorkflowResult; workflowId: string; runId: string }> {
  const workflowId = `audit-backup-${asset}-${Date.now()}`;
  const handle = await client.workflow.start(backupWorkflow, { taskQueue: env.taskQueue, workflowId, args: [{ asset, trigger: 'manual' }] });
  return { result: await handle.result(), workflowId, runId: handle.firstExecutionRunId };
}

/** The ApplicationFailure a workflow failed with (its own, or its activity's). */
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => {
      throw new Error('expected the workflow to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  let c: unknown = (err as WorkflowFailedError).cause;
  while (c && !(c instanceof ApplicationFailure)) c = (c as { cause?: unknown }).cause;
  expect(c).toBeInstanceOf(ApplicationFailure);
  return c as ApplicationFailure;
}

describe('audit entries from workflows', () => {
  it('a backup, a verification and a restore are entries naming their workflow; the log verifies; audit show lists them', async () => {
    const b = await backup('model');
    const verifyId = `audit-verify-model-${Date.now()}`;
    await client.workflow.execute(verifyWorkflow, { taskQueue: env.taskQueue, workflowId: verifyId, args: [{ asset: 'model' }] });
    const target = join(env.dir, 'restored-model');
    const restoreId = `audit-restore-model-${Date.now()}`;
    const r = await client.workflow.execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: restoreId, args: [{ asset: 'model', target }] });
    expect(await readFile(join(target, 'cfg', 'model.json'), 'utf8')).toBe('{"layers":3}');

    const verified = await cli(['audit', 'verify', '--no-witness', '--json']);
    expect(verified.code, verified.stderr).toBe(0);
    expect(parseJson(verified)).toMatchObject({ ok: true, problems: [] });

    const entries = await auditShow(['--asset', 'model']);
    const brief = entries.map((e) => [e.type, e.action, e.outcome, e.actor.id]);
    expect(brief).toEqual([
      ['backup', 'started', 'started', b.workflowId],
      ['backup', 'completed', 'success', b.workflowId],
      // a model snapshot's BOM is made by its own child workflow
      ['backup', 'model-bom-stored', 'success', modelBomWorkflowId(b.result.snapshotId)],
      ['verification', 'shallow-check', 'success', verifyId],
      ['restore', 'completed', 'success', restoreId],
    ]);
    const [started, completed, bom, verification, restored] = entries as [AuditEntry, AuditEntry, AuditEntry, AuditEntry, AuditEntry];
    expect(bom).toMatchObject({ snapshot: b.result.snapshotId, tenant: 'acme', details: { files: 2, components: 0, workflowType: 'modelBomWorkflow' } });
    expect(started).toMatchObject({ tenant: 'acme', node: env.node, actor: { kind: 'workflow', runId: b.runId }, details: { trigger: 'manual', workflowType: 'backupWorkflow' } });
    expect(completed).toMatchObject({ snapshot: b.result.snapshotId, tenant: 'acme', details: { files: 2, bytes: b.result.stats.totalBytes, attempts: 1 } });
    expect(verification).toMatchObject({ snapshot: b.result.snapshotId, details: { mode: 'shallow', state: 'verified', problems: 0, workflowType: 'verifyWorkflow' } });
    expect(restored).toMatchObject({ snapshot: r.snapshotId, node: env.node, details: { files: 2, bytes: r.bytes, workflowType: 'restoreWorkflow' } });
    // ids only: no file name or path of the asset in any entry
    const text = JSON.stringify(entries);
    for (const name of ['weights.bin', 'model.json', env.assetPath('model'), target]) expect(text).not.toContain(name);
  }, 600_000);
});

describe('cross-tenant refusals', () => {
  let rivalSnapshot: string;
  beforeAll(async () => {
    rivalSnapshot = (await backup('rival')).result.snapshotId;
  }, 300_000);

  it("tenant acme's identity cannot decrypt tenant globex's objects (globex's own can)", async () => {
    const prefix = tenantLocation(env.config, 'globex', env.config.storage).prefix;
    const s3 = testS3Client();
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: `${prefix}snapshots/` }));
    const key = listed.Contents?.[0]?.Key;
    expect(key).toBeDefined();
    const body = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: env.bucket, Key: key! }))).Body!.transformToByteArray());
    await expect(openBytes(body, await loadTenantIdentities(env.config, 'acme'))).rejects.toThrow();
    await expect(openBytes(body, await loadTenantIdentities(env.config, 'globex'))).resolves.toBeInstanceOf(Buffer);
  }, 120_000);

  it("a RestoreWorkflow for acme of globex's asset, or of globex's snapshot by id or prefix, is refused naming the mismatch; nothing is written", async () => {
    const cases: Array<[string, Omit<RestoreWorkflowInput, 'target'>, RegExp]> = [
      ['asset', { asset: 'rival', tenant: 'acme' }, /restore for tenant acme refused: asset rival belongs to tenant globex/],
      ['id', { asset: 'model', from: { snapshotId: rivalSnapshot } }, new RegExp(`restore for tenant acme refused: snapshot ${rivalSnapshot} is not in tenant acme's repository but in tenant globex's`)],
      ['prefix', { asset: 'model', tenant: 'acme', from: { snapshotId: rivalSnapshot.slice(0, 10) } }, /restore for tenant acme refused: snapshot [0-9a-f]{10} is not in tenant acme's repository but in tenant globex's/],
    ];
    for (const [label, input, message] of cases) {
      const target = join(env.dir, `cross-${label}`);
      const f = await failureOf(
        client.workflow.execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `audit-cross-${label}-${Date.now()}`, args: [{ ...input, target }] }),
      );
      expect(f.type, label).toBe('TenantMismatch');
      expect(f.message, label).toMatch(message);
      expect(existsSync(target), label).toBe(false);
    }
  }, 300_000);

  it('the same through the CLI: refused with one line naming the mismatch, nothing written', async () => {
    const t1 = join(env.dir, 'cli-cross-asset');
    const byAsset = await cli(['restore', 'rival', '--tenant', 'acme', '--target', t1, '--task-queue', env.taskQueue]);
    expect(byAsset.code).not.toBe(0);
    expect(byAsset.stderr.trim()).toBe("lifeline: restore for tenant acme refused: asset rival belongs to tenant globex, and a tenant's restore reads only its own snapshots");
    expect(existsSync(t1)).toBe(false);

    const t2 = join(env.dir, 'cli-cross-snapshot');
    const bySnapshot = await cli(['restore', 'model', '--tenant', 'acme', '--snapshot', rivalSnapshot.slice(0, 12), '--target', t2, '--wait', '--task-queue', env.taskQueue]);
    expect(bySnapshot.code).toBe(1);
    expect(bySnapshot.stderr).toMatch(/restore for tenant acme refused: snapshot [0-9a-f]{12} is not in tenant acme's repository but in tenant globex's/);
    expect(existsSync(t2)).toBe(false);

    const unknown = await cli(['restore', 'model', '--tenant', 'initech', '--target', t2]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('unknown tenant "initech"');
  }, 300_000);

  it("every refusal is an audit entry with outcome denied, listed by audit show --tenant acme; globex's entries are not", async () => {
    const denied = (await auditShow(['--tenant', 'acme', '--type', 'restore'])).filter((e) => e.outcome === 'denied');
    // workflows: asset, id, prefix; CLI: asset (recorded by the CLI) and snapshot prefix (recorded by its workflow)
    expect(denied).toHaveLength(5);
    for (const e of denied) expect(e).toMatchObject({ type: 'restore', action: 'refused', tenant: 'acme', details: { failureType: 'TenantMismatch' } });
    expect(denied.filter((e) => e.actor.kind === 'user')).toHaveLength(1);
    expect(denied.filter((e) => e.asset === 'rival').map((e) => e.details?.ownerTenant)).toEqual(['globex', 'globex']);
    expect(denied.some((e) => e.snapshot === rivalSnapshot)).toBe(true);
    const globex = await auditShow(['--tenant', 'globex']);
    expect(globex.length).toBeGreaterThan(0);
    expect(globex.every((e) => e.tenant === 'globex' && e.outcome !== 'denied')).toBe(true);
    const verified = await cli(['audit', 'verify', '--no-witness', '--json']);
    expect(verified.code, verified.stderr).toBe(0);
  }, 300_000);
});
