/**
 * Least privilege and immutable backups on the shared MinIO: one MinIO user
 * per storage role (made with mc, as `lifeline up` does), a repository bucket
 * with Object Lock, and the workers using each role's credentials.
 *
 * The ransomware test backs up an asset, then uses the stolen backup-writer
 * (node agent) and audit-writer credentials to delete and overwrite every
 * committed object of the repository and the audit log: deletes fail,
 * overwrites fail or only stack versions on the locked originals; a full
 * restore afterwards (fresh workers, no local cache) matches every file's
 * SHA-256 and `lifeline verify --deep` passes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { configFromObject } from '../../config/load';
import { retentionWorkflow } from '../../workflows/retention';
import { verifyWorkflow } from '../../workflows/verify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initAudit, openAuditLog, resolveAudit } from '../../audit/open';
import { backupWorkflow, type BackupWorkflowResult } from '../../workflows/backup';
import { restoreWorkflow } from '../../workflows/restore';
import { describeTree, makeAsset } from '../support/engine-fixtures';
import { runCli, cleanEnv, parseJson } from '../support/cli';
import { connect, makeEnv, removeEnv, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { testS3Client } from '../support/services';
import { faultContext } from '../support/faults';
import { corruptObjectFault } from '../../drills/faults/stored-object';
import type { FaultSpec } from '../../drills/scenario';

let env: LifelineEnv;
let client: Client;
let connection: Connection;
let workers: RunningWorker[] = [];
let cacheDir: string;
const savedCacheDir = process.env.LIFELINE_CACHE_DIR;

const FAST = { heartbeatTimeoutSeconds: 20, progressSignalMs: 300, changedRetryDelaySeconds: 1 };

function s3As(c: { accessKeyId: string; secretAccessKey: string }): S3Client {
  return new S3Client({ endpoint: env.s3.endpoint, region: env.s3.region, forcePathStyle: true, credentials: { ...c }, maxAttempts: 1 });
}

/** The error name (S3 code) a request fails with, or 'ok'. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return (e as Error).name;
  }
}

async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

async function versionsOf(bucket: string, key: string) {
  const res = await testS3Client().send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
  return {
    versions: (res.Versions ?? []).filter((v) => v.Key === key),
    deleteMarkers: (res.DeleteMarkers ?? []).filter((d) => d.Key === key),
  };
}

async function sha256Of(bucket: string, key: string, versionId?: string): Promise<string> {
  const res = await testS3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  return createHash('sha256').update(await res.Body!.transformToByteArray()).digest('hex');
}

async function startWorkers(): Promise<void> {
  workers = [await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent')];
}

async function stopWorkers(): Promise<void> {
  for (const w of workers) await w.stop();
  workers = [];
}

beforeAll(async () => {
  // A private local cache, so the restore after the attack cannot be served from decrypted copies on disk.
  cacheDir = await mkdtemp(join(tmpdir(), 'lifeline-immutability-cache-'));
  process.env.LIFELINE_CACHE_DIR = cacheDir;
  env = await makeEnv('immutability', {
    assets: { model: { kind: 'model', policy: 'keep1' }, rival: { kind: 'dataset', tenant: 'globex' } },
    policies: { keep1: { retention: { keepLast: 1, gcGrace: '0s' } } },
    objectLock: true,
    leastPrivilege: true,
    tenants: ['globex'],
  });
  await writeFile(join(env.assetPath('rival'), 'secret-plan.txt'), 'globex only');
  await makeAsset(env.assetPath('model'), { smallFiles: 30, largeFileBytes: 3 * 1024 * 1024 });
  ({ client, connection } = await connect(env));
  await startWorkers();
}, 300_000);

afterAll(async () => {
  await stopWorkers();
  await connection?.close();
  await removeEnv(env);
  if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  if (savedCacheDir === undefined) delete process.env.LIFELINE_CACHE_DIR;
  else process.env.LIFELINE_CACHE_DIR = savedCacheDir;
});

describe('storage roles (least privilege)', () => {
  const probeKey = () => `${env.repoPrefix}data/zz/probe-${randomBytes(4).toString('hex')}`;

  it('the backup role writes new objects but cannot delete them, nor a specific version', async () => {
    const backup = s3As(env.roles!.backup!);
    const key = probeKey();
    const put = await backup.send(new PutObjectCommand({ Bucket: env.bucket, Key: key, Body: 'x', ObjectLockMode: 'GOVERNANCE', ObjectLockRetainUntilDate: new Date(Date.now() + 3_600_000), ChecksumAlgorithm: 'SHA256' }));
    expect(put.VersionId).toBeTruthy();
    expect(await outcome(backup.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: key })))).toBe('AccessDenied');
    expect(await outcome(backup.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: key, VersionId: put.VersionId })))).toBe('AccessDenied');
    // Not even the root user removes the locked version without bypassing governance.
    expect(await outcome(testS3Client().send(new DeleteObjectCommand({ Bucket: env.bucket, Key: key, VersionId: put.VersionId })))).not.toBe('ok');
    // Nor can the backup role shorten the lock.
    expect(await outcome(backup.send(new PutObjectRetentionCommand({ Bucket: env.bucket, Key: key, VersionId: put.VersionId, Retention: { Mode: 'GOVERNANCE', RetainUntilDate: new Date(Date.now() + 1000) } })))).not.toBe('ok');
    expect((await versionsOf(env.bucket, key)).versions).toHaveLength(1);
  });

  it('the verifier cannot write or delete repository objects', async () => {
    const verifier = s3As(env.roles!.verifier!);
    expect(await outcome(verifier.send(new PutObjectCommand({ Bucket: env.bucket, Key: probeKey(), Body: 'x' })))).toBe('AccessDenied');
    expect(await outcome(verifier.send(new PutObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}snapshots/forged`, Body: 'x' })))).toBe('AccessDenied');
    expect(await outcome(verifier.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}config` })))).toBe('AccessDenied');
    // It reads.
    expect(await outcome(verifier.send(new GetObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}config` })))).toBe('ok');
  });

  it("a tenant's restore credentials read its own prefix only", async () => {
    const restore = s3As(env.roles!.restore!.acme!);
    expect(await outcome(restore.send(new GetObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}config` })))).toBe('ok');
    expect(await outcome(restore.send(new GetObjectCommand({ Bucket: env.bucket, Key: 'tenants/globex/config' })))).toBe('AccessDenied');
    expect(await outcome(restore.send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: 'tenants/globex/' })))).toBe('AccessDenied');
    expect(await outcome(restore.send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: '' })))).toBe('AccessDenied');
    expect(await outcome(restore.send(new PutObjectCommand({ Bucket: env.bucket, Key: probeKey(), Body: 'x' })))).toBe('AccessDenied');
  });

  it('retention deletes only in collectable prefixes and never in the audit bucket', async () => {
    const retention = s3As(env.roles!.retention!);
    expect(await outcome(retention.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}config` })))).toBe('AccessDenied');
    expect(await outcome(retention.send(new DeleteObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}holds/x/y/placed` })))).toBe('AccessDenied');
    expect(await outcome(retention.send(new DeleteObjectCommand({ Bucket: resolveAudit(env.config).bucket, Key: 'audit/entries/000000000000' })))).toBe('AccessDenied');
  });
});

const original0 = new Map<string, { versionId: string; sha256: string }>();

describe('ransomware with stolen credentials', () => {
  let backup: BackupWorkflowResult;
  const original = original0;

  it('backs up the asset with the role credentials; every committed object is locked', async () => {
    backup = await client.workflow.execute(backupWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `backup-model-${Date.now()}`,
      args: [{ asset: 'model', trigger: 'manual', options: FAST }],
    });
    expect(backup.stats.files).toBe(35);
    // The audit log, appended with the audit writer's credentials.
    await initAudit(env.config);
    const log = await openAuditLog(env.config);
    await log.record({ type: 'backup', action: 'completed', outcome: 'success', actor: { kind: 'workflow', id: 'test' }, tenant: env.tenant, asset: 'model', snapshot: backup.snapshotId });

    const keys = (await listAll(testS3Client(), env.bucket, env.repoPrefix)).filter((k) => !k.includes('/data/zz/probe-'));
    expect(keys.filter((k) => k.includes('/snapshots/'))).toHaveLength(1);
    expect(keys.filter((k) => k.includes('/data/')).length).toBeGreaterThan(0);
    for (const key of keys) {
      const { versions } = await versionsOf(env.bucket, key);
      expect(versions, key).toHaveLength(1);
      original.set(key, { versionId: versions[0]!.VersionId!, sha256: await sha256Of(env.bucket, key) });
      if (key.includes('/locks/') || key.includes('/tombstones/')) continue;
      const head = await testS3Client().send(new GetObjectCommand({ Bucket: env.bucket, Key: key, Range: 'bytes=0-0' }));
      expect(head.ObjectLockMode, key).toBe('GOVERNANCE');
      expect(head.ObjectLockRetainUntilDate!.getTime(), key).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    }
  }, 300_000);

  it('deletes fail and overwrites only stack versions; the originals stay', async () => {
    const a = resolveAudit(env.config);
    const auditKeys = await listAll(testS3Client(), a.bucket, `${a.prefix}/`);
    expect(auditKeys.length).toBeGreaterThanOrEqual(4);
    const auditOriginal = new Map<string, string>();
    for (const k of auditKeys) auditOriginal.set(k, await sha256Of(a.bucket, k));

    const stolen = [s3As(env.roles!.backup!), s3As(env.roles!.audit!)];
    const results: Record<string, number> = {};
    const count = (what: string, r: string) => (results[`${what}:${r}`] = (results[`${what}:${r}`] ?? 0) + 1);
    const garbage = randomBytes(4096);
    for (const s3 of stolen) {
      for (const [bucket, keys] of [[env.bucket, [...original.keys()]], [a.bucket, auditKeys]] as const) {
        for (const key of keys) {
          const v = bucket === env.bucket ? original.get(key)!.versionId : undefined;
          count('delete', await outcome(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))));
          if (v) count('delete-version', await outcome(s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: v }))));
          count('overwrite', await outcome(s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: garbage }))));
        }
      }
    }
    // Every delete was refused; some overwrites went through (as new versions: checked below).
    expect(Object.keys(results).filter((k) => k.startsWith('delete') && !k.endsWith(':AccessDenied'))).toEqual([]);
    expect(results['overwrite:ok']).toBeGreaterThan(0);

    for (const [key, o] of original) {
      const { versions, deleteMarkers } = await versionsOf(env.bucket, key);
      expect(deleteMarkers, key).toHaveLength(0);
      expect(versions.map((v) => v.VersionId), key).toContain(o.versionId);
      expect(await sha256Of(env.bucket, key, o.versionId), key).toBe(o.sha256);
    }
    // The attack did stack versions on committed objects (so reads must find the originals).
    const overwritten = [...original.keys()].filter((k) => k.includes('/data/'));
    expect((await versionsOf(env.bucket, overwritten[0]!)).versions.length).toBeGreaterThan(1);
    for (const [key, sha] of auditOriginal) {
      const { versions, deleteMarkers } = await versionsOf(a.bucket, key);
      expect(deleteMarkers, key).toHaveLength(0);
      const oldest = versions[versions.length - 1]!;
      expect(await sha256Of(a.bucket, key, oldest.VersionId), key).toBe(sha);
    }
  }, 300_000);

  it('a full restore afterwards matches every file, and deep verification passes', async () => {
    // Fresh processes' view: new workers, no cached index or manifests.
    await stopWorkers();
    await rm(cacheDir, { recursive: true, force: true });
    await startWorkers();
    const target = join(env.dir, 'restored');
    const r = await client.workflow.execute(restoreWorkflow, {
      taskQueue: env.taskQueue,
      workflowId: `restore-model-${Date.now()}`,
      args: [{ asset: 'model', target, options: FAST }],
    });
    expect(r).toMatchObject({ snapshotId: backup.snapshotId, files: 35, verified: true });
    const want = await describeTree(env.assetPath('model'));
    expect(await describeTree(target)).toEqual(want);
    for (const path of Object.keys(want).filter((p) => want[p]!.type === 'file')) {
      const [a, b] = await Promise.all([readFile(join(env.assetPath('model'), path)), readFile(join(target, path))]);
      expect(createHash('sha256').update(b).digest('hex'), path).toBe(createHash('sha256').update(a).digest('hex'));
    }
    // The tampering was noticed and the originals used (a warning names each object).
    expect(workers.map((w) => w.logs()).join('\n')).toContain('storage-tampered');

    const v = await runCli(['--config', env.configFile, 'verify', 'model', '--deep', '--wait', '--json', '--task-queue', env.taskQueue], {
      env: cleanEnv({ LIFELINE_CACHE_DIR: cacheDir }),
      timeoutMs: 240_000,
    });
    expect(v.code, v.stderr).toBe(0);
    expect(parseJson(v)).toMatchObject({ corrupt: 0, verified: 1, problemCount: 0 });
  }, 400_000);
});

describe('retention on an Object Lock bucket', () => {
  it('forgets and collects with the retention role; locked originals stay until their retention ends', async () => {
    const run = (args: Parameters<typeof backupWorkflow>[0]) =>
      client.workflow.execute(backupWorkflow, { taskQueue: env.taskQueue, workflowId: `backup-model-${Date.now()}`, args: [args] });
    const verify = () =>
      client.workflow.execute(verifyWorkflow, { taskQueue: env.taskQueue, workflowId: `verify-model-${Date.now()}`, args: [{ asset: 'model', mode: 'shallow' }] });
    const old = (await listAll(testS3Client(), env.bucket, `${env.repoPrefix}snapshots/`))[0]!;
    // Only new content (no blob shared with the old snapshot), so its pack becomes garbage once it is forgotten.
    await rm(env.assetPath('model'), { recursive: true, force: true });
    await mkdir(env.assetPath('model'), { recursive: true });
    await writeRandomFile(join(env.assetPath('model'), 'new.bin'), 2 * 1024 * 1024);
    await writeRandomFile(join(env.assetPath('model'), 'notes.txt'), 1000);
    const second = await run({ asset: 'model', trigger: 'manual', options: FAST });
    expect((await verify()).verified).toBe(2);
    const retain = (id: string) => client.workflow.execute(retentionWorkflow, { taskQueue: env.taskQueue, workflowId: `retention-model-${id}-${Date.now()}`, args: [{ asset: 'model' }] });
    const first = await retain('a');
    expect(first.retention.forgotten.map((f) => f.id)).toEqual([old.slice(old.lastIndexOf('/') + 1)]);
    // Mark, then sweep in a later run (gcGrace 0s).
    const swept = first.gc && first.gc.deleted > 0 ? first : await retain('b');
    expect(swept.gc!.deleted).toBeGreaterThan(0);
    expect(swept.gc!.deferred).toEqual([]);
    // Forgotten and collected for Lifeline (hidden by delete markers) ...
    expect(await listAll(testS3Client(), env.bucket, old)).toEqual([]);
    const { versions, deleteMarkers } = await versionsOf(env.bucket, old);
    expect(deleteMarkers).toHaveLength(1);
    // ... while the locked original is still stored.
    expect(versions.map((v) => v.VersionId)).toContain(original0.get(old)!.versionId);
    // The remaining snapshot still restores.
    const r = await client.workflow.execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `restore-model-${Date.now()}`, args: [{ asset: 'model', target: join(env.dir, 'restored-2'), options: FAST }] });
    expect(r.snapshotId).toBe(second.snapshotId);
    expect(await describeTree(join(env.dir, 'restored-2'))).toEqual(await describeTree(env.assetPath('model')));
  }, 400_000);
});

describe('cross-tenant restore', () => {
  it("a node agent restores with each tenant's own restore credentials, which cannot read another tenant; the refusal is audited", async () => {
    // The orchestrator records restores in the audit log: make it ready and restart the workers so they open it.
    await initAudit(env.config);
    await stopWorkers();
    await startWorkers();
    const rival = await client.workflow.execute(backupWorkflow, { taskQueue: env.taskQueue, workflowId: `backup-rival-${Date.now()}`, args: [{ asset: 'rival', trigger: 'manual', options: FAST }] });
    expect(rival.tenant).toBe('globex');
    // Sanity: with its own credentials, globex's asset restores.
    await client.workflow.execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `restore-rival-${Date.now()}`, args: [{ asset: 'rival', target: join(env.dir, 'rival-ok'), options: FAST }] });
    expect(await readFile(join(env.dir, 'rival-ok', 'secret-plan.txt'), 'utf8')).toBe('globex only');

    // A node agent whose globex restore identity is acme's: the restore of globex's asset is refused by the store.
    const raw = parse(await readFile(env.configFile, 'utf8'));
    raw.storage.roles.restore.globex = raw.storage.roles.restore.acme;
    const wrongFile = join(env.dir, 'wrong-restore.yaml');
    await writeFile(wrongFile, stringify(raw), { mode: 0o600 });
    const wrong = { ...env, config: configFromObject(raw, { source: wrongFile }) };
    await workers[1]!.stop();
    workers[1] = await startWorker(wrong, 'node-agent');
    const err = await client.workflow
      .execute(restoreWorkflow, { taskQueue: env.taskQueue, workflowId: `restore-rival-x-${Date.now()}`, args: [{ asset: 'rival', target: join(env.dir, 'rival-x'), options: FAST }] })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const messages: string[] = [];
    for (let c: any = err; c; c = c.cause) messages.push(String(c.message));
    expect(messages.join(' | ')).toMatch(/access denied/i);
    // The refusal names no secret.
    for (const c of Object.values(env.roles!.restore!)) expect(messages.join(' ')).not.toContain(c.secretAccessKey);
    // ...and is an audit entry with outcome denied (the store's AccessDenied), next to the earlier successful restore.
    const restores = (await (await openAuditLog(env.config)).query({ tenant: 'globex', type: 'restore', asset: 'rival' })).map((r) => r.entry);
    expect(restores.map((e) => e.outcome)).toEqual(['success', 'denied']);
    expect(restores[1]).toMatchObject({ action: 'refused', details: { failureType: 'StorageAccessDenied' } });
  }, 300_000);
});

describe('drills on an Object Lock bucket', () => {
  it("corrupt-object removes the locked original with the admin's governance bypass, so the damage is real; revert puts it back", async () => {
    const spec: FaultSpec = { kind: 'corrupt-object', at: '0s', target: { asset: 'model', snapshot: 'newest', object: 'pack' } };
    const ctx = faultContext(env.config, 'immutability-drill', 'f0-corrupt-object');
    const injected = await corruptObjectFault.inject(ctx, spec, 'f0-corrupt-object');
    const key = `${env.repoPrefix}${String(injected.detail.key)}`;
    const packId = key.split('/').pop()!;
    const { versions } = await versionsOf(env.bucket, key);
    expect(versions).toHaveLength(1);
    expect(await sha256Of(env.bucket, key)).not.toBe(packId);
    await corruptObjectFault.revert(ctx, spec, 'f0-corrupt-object');
    expect(await sha256Of(env.bucket, key)).toBe(packId);
  }, 120_000);
});
