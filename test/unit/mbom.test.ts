/**
 * The Model BOM on a real repository (in-memory store): made from a model
 * snapshot and the dataset, checkpoint chain and platform config snapshots it
 * came from; valid CycloneDX 1.6; verify passes untouched and names the
 * component when one hash is altered — caught by the signature when not
 * re-signed, by the hash check when re-signed with the tenant's key, and by
 * reading back the stored file when the tree itself is consistent but data is
 * lost.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { backup } from '../../engine/archiver';
import { sealBytes } from '../../engine/crypto/age';
import { encodeRecord } from '../../engine/records';
import type { Repository } from '../../engine/repository';
import { bomKey, contentDigest, generateModelBom, readModelBom, validateCycloneDx, verifyModelBom } from '../../mbom/bom';
import { trainingCodeDigest } from '../../mbom/code';
import { configFromObject } from '../../config/load';
import { makeRepository, tempDir, type TestKeys } from '../support/engine-fixtures';

const card = { version: '1.2', description: 'a tiny MLP', license: 'Apache-2.0', approach: 'supervised' as const, task: 'classification', architectureFamily: 'mlp', modelArchitecture: '2x64', inputs: ['tensor'], outputs: ['label'], useCases: ['demo'], limitations: ['toy data'] };
let dir: string;
let store: MemoryObjectStore;
let repo: Repository;
let keys: TestKeys;
const snaps: Record<string, string> = {};
const ckpts: string[] = [];

async function snap(name: string, kind: 'model' | 'dataset' | 'checkpoint' | 'platform-config', files: Record<string, Buffer | string>, labels: Record<string, string> = {}): Promise<string> {
  const root = join(dir, `${name}-${Object.keys(snaps).length}-${ckpts.length}`);
  for (const [p, data] of Object.entries(files)) {
    await mkdir(join(root, p, '..'), { recursive: true });
    await writeFile(join(root, p), data);
  }
  const r = await backup(repo, { root, asset: { name, kind, tenant: 'acme' }, labels });
  return r.snapshotId;
}

beforeAll(async () => {
  dir = await tempDir('mbom');
  store = new MemoryObjectStore();
  ({ repo, keys } = await makeRepository(store));
  snaps.data = await snap('corpus', 'dataset', { 'train/a.jsonl': randomBytes(5000), 'train/b.jsonl': randomBytes(7000) });
  snaps.config = await snap('platform', 'platform-config', { 'cluster.yaml': 'gpus: 8\n' });
  for (const step of ['100', '200', '300']) ckpts.push(await snap('ckpt', 'checkpoint', { 'weights.bin': randomBytes(3000), 'step.txt': step }, { step }));
  snaps.model = await snap('tiny', 'model', { 'model.safetensors': randomBytes(300_000), 'config.json': '{"layers":2}', 'tokenizer/vocab.txt': 'a\nb\n' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const generate = () =>
  generateModelBom(repo, {
    snapshotId: snaps.model!,
    tenant: 'acme',
    sources: { datasets: ['corpus'], checkpoints: 'ckpt', platformConfig: 'platform' },
    card,
    training: { job: 'ft', command: ['node', 'train.js', '--steps', '300'], sha256: 'ab'.repeat(32), files: 1 },
    by: 'unit-test',
    toolVersion: '0.1.0',
  });

/** Rewrites the stored BOM: alter the body, then seal it again, re-signed with `sign` or with the old signature kept. */
async function tamper(alter: (bom: any) => void, resign: boolean): Promise<void> {
  const plain = await repo.openObject(bomKey(snaps.model!));
  const sep = plain.indexOf('\n\n');
  const head = plain.subarray(0, sep + 2);
  const body = JSON.parse(plain.subarray(sep + 2).toString('utf8'));
  alter(body.bom);
  const bytes = resign ? encodeRecord(body, (d) => keys.signingKey.sign(d), keys.signingKey.keyId) : Buffer.concat([head, Buffer.from(JSON.stringify(body))]);
  await store.put(bomKey(snaps.model!), await sealBytes(bytes, repo.recipients));
}

describe('Model BOM', () => {
  let original: Buffer;

  it('is made for a model snapshot: model, files, datasets, checkpoint chain, config, training job, model card; valid CycloneDX 1.6', async () => {
    const r = await generate();
    expect(r).toMatchObject({ key: `bom/${snaps.model}`, created: true, files: 3, components: 1 + 3 + 1 + 1 });
    original = await store.get(bomKey(snaps.model!));
    const read = await readModelBom(repo, snaps.model!);
    if (!read.ok) throw new Error(read.reason);
    expect(read.signer).toBe(keys.signingKey.keyId);
    const bom = read.record.bom as any;
    expect(await validateCycloneDx(bom)).toEqual([]);
    expect(bom.specVersion).toBe('1.6');
    const model = bom.metadata.component;
    expect(model.type).toBe('machine-learning-model');
    const tree = await repo.loadTree(await repo.loadSnapshot(snaps.model!));
    expect(model.hashes).toEqual([{ alg: 'SHA-256', content: contentDigest(tree) }]);
    expect(model.components.map((c: any) => c.name).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer/vocab.txt']);
    for (const f of model.components) expect(f.hashes[0].content).toBe((tree.find((e) => e.path === f.name) as any).sha256);
    expect(model.modelCard.modelParameters).toMatchObject({ approach: { type: 'supervised' }, task: 'classification', architectureFamily: 'mlp', datasets: [{ ref: `dataset:corpus@${snaps.data}` }] });
    expect(model.modelCard.considerations).toEqual({ useCases: ['demo'], technicalLimitations: ['toy data'] });
    const data = bom.components.filter((c: any) => c.type === 'data');
    expect(data.map((c: any) => c.version)).toEqual([snaps.data, ...ckpts, snaps.config]);
    expect(data.map((c: any) => c.data[0].type)).toEqual(['dataset', 'other', 'other', 'other', 'configuration']);
    const job = bom.components.find((c: any) => c.type === 'application');
    expect(job.hashes[0].content).toBe('ab'.repeat(32));
    expect(job.properties).toContainEqual({ name: 'lifeline:training-command', value: '["node","train.js","--steps","300"]' });
    // The chain: the model depends on the newest checkpoint, each checkpoint on the one before.
    const dep = (ref: string) => bom.dependencies.find((d: any) => d.ref === ref).dependsOn;
    expect(dep(model['bom-ref'])).toContain(`checkpoint:ckpt@${ckpts[2]}`);
    expect(dep(`checkpoint:ckpt@${ckpts[2]}`)).toEqual([`checkpoint:ckpt@${ckpts[1]}`]);
  });

  it('is idempotent: a second run keeps the stored BOM', async () => {
    expect((await generate()).created).toBe(false);
    expect((await store.get(bomKey(snaps.model!))).equals(original)).toBe(true);
  });

  it('verifies untouched: signature, schema, every file read back, every referenced snapshot', async () => {
    const v = await verifyModelBom(repo, snaps.model!);
    expect(v.problems).toEqual([]);
    expect(v.valid).toBe(true);
    expect(v.checked).toMatchObject({ signature: true, schema: true, files: 3, filesRead: 3, snapshots: 5 });
    expect(v.checked.unchecked).toEqual([expect.stringMatching(/^training-job:ft: training code hash/)]);
  });

  it('fails on one altered file hash without re-signing: the signature', async () => {
    await tamper((bom) => (bom.metadata.component.components[0].hashes[0].content = '0'.repeat(64)), false);
    const v = await verifyModelBom(repo, snaps.model!);
    expect(v.valid).toBe(false);
    expect(v.problems).toEqual([{ component: 'bom', problem: expect.stringMatching(/signature is invalid/) }]);
    await store.put(bomKey(snaps.model!), original);
  });

  it('fails on one altered file hash re-signed with the tenant key: the hash, naming the file component', async () => {
    await tamper((bom) => (bom.metadata.component.components.find((c: any) => c.name === 'config.json').hashes[0].content = '0'.repeat(64)), true);
    const v = await verifyModelBom(repo, snaps.model!);
    expect(v.checked.signature).toBe(true);
    expect(v.problems).toEqual([{ component: `file:${snaps.model}:config.json`, problem: expect.stringMatching(/^SHA-256 0{64} differs from the snapshot's [0-9a-f]{64}$/) }]);
    await store.put(bomKey(snaps.model!), original);
  });

  it('fails on an altered dataset hash (re-signed) and on a referenced snapshot that is gone', async () => {
    await tamper((bom) => (bom.components[0].hashes[0].content = 'f'.repeat(64)), true);
    let v = await verifyModelBom(repo, snaps.model!);
    expect(v.problems).toEqual([{ component: `dataset:corpus@${snaps.data}`, problem: expect.stringMatching(/differs from snapshot/) }]);
    await store.put(bomKey(snaps.model!), original);
    const manifest = await store.get(`snapshots/${ckpts[0]}`);
    await store.delete(`snapshots/${ckpts[0]}`);
    v = await verifyModelBom(repo, snaps.model!);
    expect(v.problems).toEqual([{ component: `checkpoint:ckpt@${ckpts[0]}`, problem: `referenced snapshot ${ckpts[0]} does not exist` }]);
    await store.put(`snapshots/${ckpts[0]}`, manifest);
  });

  it('fails on a re-signed BOM that no longer validates against CycloneDX 1.6', async () => {
    await tamper((bom) => (bom.components[0].type = 'dataset'), true);
    const v = await verifyModelBom(repo, snaps.model!);
    expect(v.problems[0]).toEqual({ component: 'bom', problem: expect.stringMatching(/^CycloneDX 1.6 schema: \/components\/0\/type/) });
    await store.put(bomKey(snaps.model!), original);
    expect((await verifyModelBom(repo, snaps.model!)).valid).toBe(true);
  });

  it('refuses a snapshot that is not a model, and a missing dataset snapshot, with clear errors', async () => {
    await expect(generateModelBom(repo, { snapshotId: snaps.data!, tenant: 'acme', sources: { datasets: [] }, card, by: 't', toolVersion: '0' })).rejects.toThrow(/kind dataset: a Model BOM describes model snapshots only/);
    await expect(generateModelBom(repo, { snapshotId: ckpts[0]!.replace(/./, (c) => (c === '0' ? '1' : '0')), tenant: 'acme', sources: { datasets: [] }, card, by: 't', toolVersion: '0' })).rejects.toThrow(/does not exist/);
    const m2 = await snap('tiny2', 'model', { 'w.bin': randomBytes(100) });
    await expect(generateModelBom(repo, { snapshotId: m2, tenant: 'acme', sources: { datasets: ['nope'] }, card, by: 't', toolVersion: '0' })).rejects.toThrow(/dataset asset nope has no snapshot taken before it; back it up first/);
    expect(await store.head(bomKey(m2))).toBeNull();
  });
});

describe('training code digest', () => {
  it('hashes the files the command names (sha256sum layout), and says clearly when there is nothing to hash', async () => {
    const wd = join(dir, 'job');
    await mkdir(join(wd, 'src'), { recursive: true });
    await writeFile(join(wd, 'train.py'), 'print(1)\n');
    await writeFile(join(wd, 'src', 'model.py'), 'x = 1\n');
    const a = await trainingCodeDigest('ft', { command: ['python', 'train.py', '--steps', '3'] }, wd);
    expect(a).toMatchObject({ files: 1, paths: ['train.py'] });
    const b = await trainingCodeDigest('ft', { command: ['python', 'train.py'], code: ['train.py', 'src'] }, wd);
    expect(b.files).toBe(2);
    const { createHash } = await import('node:crypto');
    const h = (s: string) => createHash('sha256').update(s).digest('hex');
    expect(b.sha256).toBe(h(`${h('x = 1\n')}  src/model.py\n${h('print(1)\n')}  train.py\n`));
    await writeFile(join(wd, 'train.py'), 'print(2)\n');
    expect((await trainingCodeDigest('ft', { command: ['python', 'train.py'] }, wd)).sha256).not.toBe(a.sha256);
    await expect(trainingCodeDigest('ft', { command: ['python', '-c', 'print(1)'] }, wd)).rejects.toThrow(/trainingJobs\.ft: no code to hash/);
    await expect(trainingCodeDigest('ft', { command: ['x'], code: ['missing.py'] }, wd)).rejects.toThrow(/trainingJobs\.ft\.code: missing.py does not exist/);
  });
});

describe('assets.NAME.bom config', () => {
  const base = {
    tenants: { acme: { identity: { file: 'a' }, signingKey: { file: 'b' } }, other: { identity: { file: 'c' }, signingKey: { file: 'd' } } },
    nodes: { n1: {} },
  };
  const load = (assets: Record<string, unknown>, trainingJobs: Record<string, unknown> = {}) => configFromObject({ ...base, assets, trainingJobs }, { checkSecrets: false });
  const a = (kind: string, extra: object = {}, tenant = 'acme') => ({ node: 'n1', tenant, kind, path: '/x', ...extra });

  it('accepts a model with its sources and card; refuses wrong kinds, other tenants, unknown assets and jobs, naming the key', () => {
    const ok = load({ m: a('model', { bom: { datasets: ['d'], checkpoints: 'c', platformConfig: 'p', card: { task: 'qa', approach: 'supervised' } } }), d: a('dataset'), c: a('checkpoint'), p: a('platform-config') });
    expect(ok.assets.m!.bom).toMatchObject({ datasets: ['d'], checkpoints: 'c', platformConfig: 'p', card: { task: 'qa', approach: 'supervised', inputs: [] } });
    expect(() => load({ d: a('dataset', { bom: {} }) })).toThrow(/assets\.d\.bom: only allowed for assets of kind model \(this one is dataset\)/);
    expect(() => load({ m: a('model', { bom: { datasets: ['c'] } }), c: a('checkpoint') })).toThrow(/assets\.m\.bom\.datasets\[0\]: asset c is of kind checkpoint; expected an asset of kind dataset/);
    expect(() => load({ m: a('model', { bom: { datasets: ['d'] } }), d: a('dataset', {}, 'other') })).toThrow(/assets\.m\.bom\.datasets\[0\]: asset d belongs to tenant other, but model m to tenant acme/);
    expect(() => load({ m: a('model', { bom: { platformConfig: 'nope' } }) })).toThrow(/assets\.m\.bom\.platformConfig: asset "nope" is not declared under assets/);
    expect(() => load({ m: a('model', { bom: { trainingJob: 'ghost' } }) })).toThrow(/assets\.m\.bom\.trainingJob: training job "ghost" is not declared under trainingJobs/);
    expect(() => load({ m: a('model', { bom: { card: { approach: 'magic' } } }) })).toThrow(/assets\.m\.bom\.card\.approach/);
  });
});

describe('retention', () => {
  it('forgetting a model snapshot deletes its BOM with it', async () => {
    const { forgetUnprotected } = await import('../../engine/verification');
    const m = await snap('tiny3', 'model', { 'w.bin': randomBytes(100) });
    await generateModelBom(repo, { snapshotId: m, tenant: 'acme', sources: { datasets: [] }, card, by: 't', toolVersion: '0' });
    expect(await store.head(bomKey(m))).not.toBeNull();
    expect((await forgetUnprotected(repo, [m])).forgotten).toEqual([m]);
    expect(await store.head(bomKey(m))).toBeNull();
  });
});

describe('key rotation', () => {
  it('re-wraps and re-signs a Model BOM like every record: only the new keys open it, it names the new signer and still verifies', async () => {
    const { opensWith, rewrapMetadata } = await import('../../engine/rekey');
    const { Repository } = await import('../../engine/repository');
    const { AgeIdentities } = await import('../../engine/crypto/age');
    const { makeKeys } = await import('../support/engine-fixtures');
    const st = new MemoryObjectStore();
    const { repo: oldRepo, keys: oldKeys } = await makeRepository(st);
    const root = join(dir, 'rot-model');
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'w.bin'), randomBytes(50_000));
    const id = (await backup(oldRepo, { root, asset: { name: 'm', kind: 'model', tenant: 'acme' } })).snapshotId;
    await generateModelBom(oldRepo, { snapshotId: id, tenant: 'acme', sources: { datasets: [] }, card, by: 't', toolVersion: '0' });

    const newKeys = await makeKeys('x25519');
    const [newRecipient] = await newKeys.identities.recipients();
    const identities = AgeIdentities.merge(newKeys.identities, oldKeys.identities);
    await Repository.rewriteConfig(st, { identities, recipients: [newRecipient!], update: (c) => ({ ...c, signers: [{ keyId: newKeys.signingKey.keyId, publicKey: newKeys.signingKey.publicKey }, ...c.signers] }) });
    const repo2 = await Repository.open(st, { identities, signingKey: newKeys.signingKey, cacheRoot: null });
    const report = await rewrapMetadata(repo2, { stale: oldKeys.identities, signingKey: newKeys.signingKey });
    expect(report.records).toBe(1);
    const sealed = await st.get(bomKey(id));
    expect(await opensWith(sealed, newKeys.identities)).toBe(true);
    expect(await opensWith(sealed, oldKeys.identities)).toBe(false);
    const read = await readModelBom(repo2, id);
    expect(read.ok && read.signer).toBe(newKeys.signingKey.keyId);
    expect((await verifyModelBom(repo2, id)).problems).toEqual([]);
  });
});
