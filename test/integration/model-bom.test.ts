/**
 * The Model BOM and the Temporal payload codec end to end on the shared
 * Temporal and MinIO, with in-process orchestrator and node agent whose config
 * turns payload encryption ON:
 *  - a model backup makes the signed CycloneDX 1.6 ML-BOM of its snapshot
 *    (dataset, checkpoint chain, platform config, training job code hash);
 *  - `lifeline mbom verify` passes on it, `mbom export` writes a document the
 *    library's validator accepts;
 *  - one altered hash in the stored BOM fails verify (exit 3): on the
 *    signature when not re-signed, on the hash — naming the component — when
 *    re-signed with the tenant's key;
 *  - `lifeline mbom generate` makes a missing BOM again and keeps a stored one;
 *  - a failing workflow's message is readable with the key and only an
 *    encoded failure in the raw history;
 *  - every payload in the raw histories of the backup and its BOM child is
 *    `binary/encrypted`, and no asset file name appears in them.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, type Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../config/load';
import { sealBytes } from '../../engine/crypto/age';
import { writeSecretFile } from '../../engine/crypto/key-files';
import { encodeRecord } from '../../engine/records';
import { bomKey, validateCycloneDx } from '../../mbom/bom';
import { loadTenantSigningKey, TenantRepositories } from '../../tenancy/repositories';
import { generatePayloadKey } from '../../workers/codec';
import { connectClient } from '../../workers/temporal';
import { backupWorkflow, type BackupWorkflowResult } from '../../workflows/backup';
import { modelBomWorkflow, modelBomWorkflowId } from '../../workflows/mbom';
import { runCli } from '../support/cli';
import { connect, makeEnv, removeEnv, startWorker, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';

let env: LifelineEnv;
let orchestrator: RunningWorker;
let agent: RunningWorker;
let client: Client;
let connection: Connection;
const FAST = { heartbeatTimeoutSeconds: 20, progressSignalMs: 300, changedRetryDelaySeconds: 1 };
const SECRET_FILE = 'confidential-weights-7f3a.safetensors';

beforeAll(async () => {
  env = await makeEnv('model-bom', { assets: { tiny: { kind: 'model' }, corpus: { kind: 'dataset' }, ckpt: { kind: 'checkpoint', checkpoint: { completion: 'event' } }, platform: { kind: 'platform-config' } } });
  // The makeEnv config plus: the model's BOM sources, a training job, and payload encryption ON.
  const raw = parse(await readFile(env.configFile, 'utf8'));
  const jobDir = join(env.dir, 'job');
  await mkdir(join(jobDir, 'lib'), { recursive: true });
  await writeFile(join(jobDir, 'train.js'), 'console.log("training")\n');
  await writeFile(join(jobDir, 'lib', 'model.js'), 'module.exports = 1\n');
  const keyFile = join(env.dir, 'secrets', 'temporal-payload.key');
  await writeSecretFile(keyFile, generatePayloadKey());
  raw.temporal.payloadEncryption = { key: { file: keyFile } }; // auto: on (production is the default environment)
  raw.trainingJobs = { ft: { node: env.node, command: ['node', 'train.js', '--steps', '10'], workingDir: jobDir, checkpointAsset: 'ckpt', code: ['train.js', 'lib'] } };
  raw.assets.tiny.bom = { datasets: ['corpus'], checkpoints: 'ckpt', platformConfig: 'platform', trainingJob: 'ft', card: { version: '0.3', task: 'classification', approach: 'supervised', limitations: ['test data only'] } };
  await writeFile(env.configFile, stringify(raw), { mode: 0o600 });
  env.config = loadConfig({ configPath: env.configFile, env: {} });

  await writeFile(join(env.assetPath('corpus'), 'train.jsonl'), randomBytes(20_000));
  await writeFile(join(env.assetPath('platform'), 'cluster.yaml'), 'gpus: 2\n');
  await writeFile(join(env.assetPath('tiny'), SECRET_FILE), randomBytes(400_000));
  await writeFile(join(env.assetPath('tiny'), 'config.json'), '{"layers":2}');
  ({ client, connection } = await connectClient(env.config));
  orchestrator = await startWorker(env, 'orchestrator');
  agent = await startWorker(env, 'node-agent');
}, 300_000);

afterAll(async () => {
  await agent?.stop();
  await orchestrator?.stop();
  await connection?.close();
  await removeEnv(env);
});

const backup = (asset: string): Promise<BackupWorkflowResult> =>
  client.workflow.execute(backupWorkflow, { taskQueue: env.taskQueue, workflowId: `backup-${asset}-${Date.now()}-${randomBytes(3).toString('hex')}`, args: [{ asset, trigger: 'manual', options: FAST }] });

const cli = (...args: string[]) => runCli(['--config', env.configFile, '--log-level', 'error', ...args], { timeoutMs: 180_000 });

/** Every Payload (an object with metadata and data) anywhere in a history event. */
function payloadsIn(v: unknown, out: Array<{ metadata: Record<string, Uint8Array>; data?: Uint8Array }> = []): typeof out {
  if (!v || typeof v !== 'object' || v instanceof Uint8Array) return out;
  const o = v as Record<string, unknown>;
  if (o.metadata && typeof o.metadata === 'object' && 'data' in o) out.push(o as any);
  for (const x of Object.values(o)) payloadsIn(x, out);
  return out;
}

describe('Model BOM of a real model snapshot, with Temporal payloads encrypted', () => {
  let model: BackupWorkflowResult;
  let modelWorkflowId: string;

  it('a model backup stores the signed BOM of its snapshot', async () => {
    await backup('corpus');
    await backup('platform');
    await writeFile(join(env.assetPath('ckpt'), 'step-1.bin'), randomBytes(5000));
    await backup('ckpt');
    await writeFile(join(env.assetPath('ckpt'), 'step-2.bin'), randomBytes(5000));
    await backup('ckpt');
    const handle = await client.workflow.start(backupWorkflow, { taskQueue: env.taskQueue, workflowId: `backup-tiny-${Date.now()}`, args: [{ asset: 'tiny', trigger: 'manual', options: FAST }] });
    modelWorkflowId = handle.workflowId;
    model = await handle.result();
    expect(model.bom).toEqual({ key: bomKey(model.snapshotId), created: true, files: 2, components: 5 });
  });

  it('lifeline mbom verify passes; mbom export writes a CycloneDX 1.6 document the validator accepts', async () => {
    const v = await cli('mbom', 'verify', model.snapshotId.slice(0, 12));
    expect(v.stderr).toBe('');
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(`Model BOM of snapshot ${model.snapshotId}: VALID`);
    expect(v.stdout).toMatch(/checked +2 model file hash\(es\) \(2 read back from storage\), 4 referenced snapshot\(s\)/);
    const file = join(env.dir, 'bom.json');
    const e = await cli('mbom', 'export', model.snapshotId, '--out', file);
    expect(e.code).toBe(0);
    const bom = JSON.parse(await readFile(file, 'utf8'));
    expect(await validateCycloneDx(bom)).toEqual([]);
    expect(bom.metadata.component).toMatchObject({ type: 'machine-learning-model', name: 'tiny', version: '0.3' });
    expect(bom.components.map((c: any) => `${c.type}:${c.name}`)).toEqual(['data:corpus', 'data:ckpt', 'data:ckpt', 'data:platform', 'application:ft']);
    expect(bom.components[4].hashes[0].content).toMatch(/^[0-9a-f]{64}$/);
  });

  it('fails on one altered hash: on the signature when not re-signed, on the hash (naming the component) when re-signed', async () => {
    const repo = await new TenantRepositories(env.config).repository(env.tenant);
    const key = bomKey(model.snapshotId);
    const original = await repo.store.get(key);
    const plain = await repo.openObject(key);
    const sep = plain.indexOf('\n\n');
    const body = JSON.parse(plain.subarray(sep + 2).toString('utf8'));
    const file = body.bom.metadata.component.components.find((c: any) => c.name === SECRET_FILE);
    file.hashes[0].content = '0'.repeat(64);
    try {
      // Not re-signed: the old envelope head over an altered body.
      await repo.store.put(key, await sealBytes(Buffer.concat([plain.subarray(0, sep + 2), Buffer.from(JSON.stringify(body))]), repo.recipients));
      const a = await cli('mbom', 'verify', model.snapshotId);
      expect(a.code).toBe(3);
      expect(a.stdout).toMatch(/PROBLEM bom: signature\/envelope: signature is invalid/);
      // Re-signed with the tenant's own key (a thief of the signing key): the hash check catches it.
      const signer = await loadTenantSigningKey(env.config, env.tenant);
      await repo.store.put(key, await sealBytes(encodeRecord(body, (d) => signer.sign(d), signer.keyId), repo.recipients));
      const b = await cli('mbom', 'verify', model.snapshotId, '--json');
      expect(b.code).toBe(3);
      const r = JSON.parse(b.stdout);
      expect(r.checked.signature).toBe(true);
      expect(r.problems).toEqual([{ component: `file:${model.snapshotId}:${SECRET_FILE}`, problem: expect.stringMatching(/^SHA-256 0{64} differs from the snapshot's [0-9a-f]{64}$/) }]);
    } finally {
      await repo.store.put(key, original);
    }
    expect((await cli('mbom', 'verify', model.snapshotId)).code).toBe(0);
  });

  it('lifeline mbom generate makes a missing BOM again (through the encrypted client) and keeps an existing one', async () => {
    const repo = await new TenantRepositories(env.config).repository(env.tenant);
    const key = bomKey(model.snapshotId);
    const original = await repo.store.get(key);
    await repo.store.delete(key);
    const g = await cli('mbom', 'generate', model.snapshotId.slice(0, 12), '--task-queue', env.taskQueue, '--json');
    expect(g.code, g.stderr).toBe(0);
    expect(JSON.parse(g.stdout)).toMatchObject({ workflowId: modelBomWorkflowId(model.snapshotId), created: true, key, files: 2, components: 5 });
    expect((await repo.store.get(key)).equals(original)).toBe(false);
    const again = await cli('mbom', 'generate', model.snapshotId, '--task-queue', env.taskQueue);
    expect(again.stdout).toContain('was already stored');
    expect((await cli('mbom', 'verify', model.snapshotId, '--no-data')).code).toBe(0);
  });

  it('every payload in the raw histories of the backup and its BOM child is binary/encrypted, and no file name is there', async () => {
    // A plain connection with no codec: what the Temporal server stores and shows.
    const plain = await connect(env);
    try {
      for (const workflowId of [modelWorkflowId, modelBomWorkflowId(model.snapshotId)]) {
        const history = await plain.client.workflow.getHandle(workflowId).fetchHistory();
        const payloads = payloadsIn(history.events);
        expect(payloads.length, workflowId).toBeGreaterThan(4);
        const encodings = new Set(payloads.map((p) => new TextDecoder().decode(p.metadata.encoding)));
        expect([...encodings], workflowId).toEqual(['binary/encrypted']);
        const bytes = Buffer.from(JSON.stringify(history, (_k, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : v)), 'latin1');
        expect(bytes.includes(SECRET_FILE), workflowId).toBe(false);
        expect(bytes.includes('classification'), workflowId).toBe(false);
      }
      // Without the key, the result cannot be read.
      await expect(plain.client.workflow.getHandle(modelWorkflowId).result()).rejects.toThrow();
    } finally {
      await plain.connection.close();
    }
  });

  it('a failing workflow: the keyed client reads the failure message, the raw history holds only an encoded failure', async () => {
    const corpus = (await backup('corpus')).snapshotId;
    const workflowId = `mbom-wrong-kind-${Date.now()}`;
    const handle = await client.workflow.start(modelBomWorkflow, { taskQueue: env.taskQueue, workflowId, args: [{ asset: 'corpus', snapshotId: corpus }] });
    const err = await handle.result().then(
      () => null,
      (e: unknown) => e as Error,
    );
    const chain: string[] = [];
    for (let c: unknown = err; c instanceof Error; c = c.cause) chain.push(c.message);
    expect(chain.join(' | ')).toMatch(/kind dataset: a Model BOM describes model snapshots only/);
    const plain = await connect(env);
    try {
      const raw = JSON.stringify(await plain.client.workflow.getHandle(workflowId).fetchHistory());
      expect(raw).toContain('Encoded failure');
      expect(raw).not.toContain('describes model snapshots');
    } finally {
      await plain.connection.close();
    }
  });
});
