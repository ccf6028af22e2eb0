/**
 * The Model Bill of Materials: a CycloneDX 1.6 ML-BOM for one model snapshot,
 * signed with the tenant's signing key and stored encrypted next to the
 * snapshot (`bom/<snapshotId>`, FORMAT.md "Model BOM").
 *
 * It records the model (a `machine-learning-model` component whose hash is
 * the snapshot's content digest, with one `file` component and SHA-256 per
 * file), the snapshots it came from — datasets, the checkpoint chain, the
 * platform configuration — as `data` components with their snapshot ids and
 * content digests, the training job's command and code hash, and the model
 * card fields from config. Verification checks the signature, the CycloneDX
 * schema and every hash against what the repository stores.
 *
 * Plain module: no Temporal imports (activities and the CLI call it).
 */
import { createHash } from 'node:crypto';
import { Enums, Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { z } from 'zod';
import type { ModelBomConfig } from '../config/platform';
import { ObjectNotFoundError } from '../engine/backend/object-store';
import { AgeAuthError, AgeFormatError, AgeHeaderIncompleteError, AgeNoIdentityMatchError } from '../engine/crypto/errors';
import { InputError, IntegrityError } from '../engine/errors';
import type { AssetKind, SignedManifest } from '../engine/manifest';
import { decodeRecord, writeRecord } from '../engine/records';
import { keys, SnapshotNotFoundError, type Repository, type SnapshotSummary } from '../engine/repository';
import type { TreeEntry } from '../engine/tree';

export const bomKey = keys.bom;

/** How many checkpoint snapshots (the newest ones up to the model's time) the chain lists. */
export const CHECKPOINT_CHAIN_LIMIT = 100;

const P = 'lifeline:'; // property namespace

// ---- content digest ---------------------------------------------------------------

/**
 * SHA-256 of a snapshot's content, independent of keys and packing: one line
 * per file (`file <sha256> <size> <JSON path>`) and symlink
 * (`symlink <JSON target> <JSON path>`), in tree order. Folders, modes and
 * times are not content. Anyone with the files can recompute it.
 */
export function contentDigest(entries: readonly TreeEntry[]): string {
  const h = createHash('sha256');
  for (const e of entries) {
    if (e.type === 'file') h.update(`file ${e.sha256} ${e.size} ${JSON.stringify(e.path)}\n`);
    else if (e.type === 'symlink') h.update(`symlink ${JSON.stringify(e.target)} ${JSON.stringify(e.path)}\n`);
  }
  return h.digest('hex');
}

// ---- building ---------------------------------------------------------------------

export interface SnapshotRef {
  asset: string;
  kind: AssetKind;
  snapshotId: string;
  time: string;
  labels: Record<string, string>;
  digest: string;
  files: number;
  bytes: number;
}

export interface TrainingCode {
  job: string;
  /** the job's argv, as configured */
  command: string[];
  /** SHA-256 over the code files (see trainingCodeDigest) */
  sha256: string;
  files: number;
}

export interface ModelBomInput {
  repositoryId: string;
  tenant: string;
  model: SnapshotRef & { entries: Array<{ path: string; sha256: string; size: number }> };
  datasets: SnapshotRef[];
  /** oldest first; the last one is the checkpoint the model came from */
  checkpoints: SnapshotRef[];
  platformConfig?: SnapshotRef;
  training?: TrainingCode;
  card: ModelBomConfig['card'];
  generatedAt: string;
  toolVersion: string;
}

type Json = Record<string, unknown>;

/** A UUID (v4 layout) derived from the snapshot id, so a regenerated BOM keeps its serial number. */
function serialFor(snapshotId: string): string {
  const h = createHash('sha256').update(`lifeline-mbom:${snapshotId}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const sha256Hash = (content: string) => [{ alg: Enums.HashAlgorithm['SHA-256'], content }];
const prop = (name: string, value: string | number) => ({ name: `${P}${name}`, value: String(value) });
const labelProps = (labels: Record<string, string>) => Object.entries(labels).map(([k, v]) => prop(`label:${k}`, v));

const DATA_TYPE: Record<AssetKind, string> = { dataset: 'dataset', 'platform-config': 'configuration', checkpoint: 'other', model: 'other' };

function refOf(r: SnapshotRef): string {
  return `${r.kind}:${r.asset}@${r.snapshotId}`;
}

function dataComponent(r: SnapshotRef, description: string): Json {
  return {
    type: Enums.ComponentType.Data,
    'bom-ref': refOf(r),
    name: r.asset,
    version: r.snapshotId,
    description,
    hashes: sha256Hash(r.digest),
    data: [{ type: DATA_TYPE[r.kind], name: r.asset, description }],
    properties: [prop('asset', r.asset), prop('kind', r.kind), prop('snapshot', r.snapshotId), prop('snapshot-time', r.time), prop('files', r.files), prop('bytes', r.bytes), ...labelProps(r.labels)],
  };
}

/** The CycloneDX 1.6 JSON document (validate it with validateCycloneDx before storing). */
export function buildModelBom(input: ModelBomInput): Json {
  const m = input.model;
  const card = input.card;
  const modelRef = refOf(m);
  const fileComponents = m.entries.map((f) => ({
    type: Enums.ComponentType.File,
    'bom-ref': `file:${m.snapshotId}:${f.path}`,
    name: f.path,
    hashes: sha256Hash(f.sha256),
    properties: [prop('size', f.size)],
  }));
  const components: Json[] = [
    ...input.datasets.map((d) => dataComponent(d, 'dataset the model was trained on')),
    ...input.checkpoints.map((c, i) => dataComponent(c, i === input.checkpoints.length - 1 ? 'training checkpoint the model came from' : 'earlier training checkpoint')),
    ...(input.platformConfig ? [dataComponent(input.platformConfig, 'platform configuration')] : []),
  ];
  const jobRef = input.training ? `training-job:${input.training.job}` : undefined;
  if (input.training) {
    components.push({
      type: Enums.ComponentType.Application,
      'bom-ref': jobRef,
      name: input.training.job,
      description: 'training job that produced the model',
      hashes: sha256Hash(input.training.sha256),
      properties: [prop('training-command', JSON.stringify(input.training.command)), prop('code-files', input.training.files)],
    });
  }
  const modelParameters: Json = {
    ...(card.approach ? { approach: { type: card.approach } } : {}),
    ...(card.task ? { task: card.task } : {}),
    ...(card.architectureFamily ? { architectureFamily: card.architectureFamily } : {}),
    ...(card.modelArchitecture ? { modelArchitecture: card.modelArchitecture } : {}),
    ...(input.datasets.length ? { datasets: input.datasets.map((d) => ({ ref: refOf(d) })) } : {}),
    ...(card.inputs.length ? { inputs: card.inputs.map((format) => ({ format })) } : {}),
    ...(card.outputs.length ? { outputs: card.outputs.map((format) => ({ format })) } : {}),
  };
  const considerations: Json = {
    ...(card.useCases.length ? { useCases: card.useCases } : {}),
    ...(card.limitations.length ? { technicalLimitations: card.limitations } : {}),
  };
  const model: Json = {
    type: Enums.ComponentType.MachineLearningModel,
    'bom-ref': modelRef,
    name: m.asset,
    version: card.version ?? m.snapshotId,
    ...(card.description ? { description: card.description } : {}),
    ...(card.license ? { licenses: [{ license: { name: card.license } }] } : {}),
    hashes: sha256Hash(m.digest),
    properties: [prop('asset', m.asset), prop('tenant', input.tenant), prop('snapshot', m.snapshotId), prop('snapshot-time', m.time), prop('files', m.files), prop('bytes', m.bytes), ...labelProps(m.labels)],
    modelCard: {
      ...(Object.keys(modelParameters).length ? { modelParameters } : {}),
      ...(Object.keys(considerations).length ? { considerations } : {}),
    },
    components: fileComponents,
  };
  const newestCheckpoint = input.checkpoints.at(-1);
  const dependsOn = [...input.datasets.map(refOf), ...(newestCheckpoint ? [refOf(newestCheckpoint)] : []), ...(input.platformConfig ? [refOf(input.platformConfig)] : []), ...(jobRef ? [jobRef] : [])];
  const dependencies: Json[] = [{ ref: modelRef, dependsOn }];
  input.checkpoints.forEach((c, i) => dependencies.push({ ref: refOf(c), dependsOn: i > 0 ? [refOf(input.checkpoints[i - 1]!)] : [] }));
  for (const d of input.datasets) dependencies.push({ ref: refOf(d), dependsOn: [] });
  if (input.platformConfig) dependencies.push({ ref: refOf(input.platformConfig), dependsOn: [] });
  if (jobRef) dependencies.push({ ref: jobRef, dependsOn: [] });
  return {
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    serialNumber: serialFor(m.snapshotId),
    version: 1,
    metadata: {
      timestamp: input.generatedAt,
      tools: { components: [{ type: Enums.ComponentType.Application, name: 'lifeline', version: input.toolVersion }] },
      component: model,
      properties: [prop('repository', input.repositoryId)],
    },
    components,
    dependencies,
  };
}

/** Problems of a document against the CycloneDX 1.6 JSON schema (strict), or [] when it is valid. */
export async function validateCycloneDx(bom: unknown): Promise<string[]> {
  const err = await new Validation.JsonStrictValidator(Spec.Version.v1dot6).validate(JSON.stringify(bom));
  if (err === null) return [];
  const list = Array.isArray(err) ? err : [err];
  return list.slice(0, 10).map((e: any) => `${e?.instancePath || '/'} ${e?.message ?? JSON.stringify(e)}`.trim());
}

// ---- storing ----------------------------------------------------------------------

const BomRecordSchema = z
  .object({
    format: z.literal('lifeline-mbom'),
    version: z.literal(1),
    repositoryId: z.string(),
    snapshotId: z.string().regex(/^[0-9a-f]{64}$/),
    time: z.string(),
    by: z.string(),
    bom: z.record(z.string(), z.unknown()),
  })
  .strict();
export type BomRecord = z.infer<typeof BomRecordSchema>;

/** Signs, encrypts and stores the BOM of a snapshot (written once, like every record). */
export async function storeModelBom(repo: Repository, snapshotId: string, bom: Json, by: string): Promise<string> {
  const problems = await validateCycloneDx(bom);
  if (problems.length) throw new IntegrityError(`the Model BOM of snapshot ${snapshotId} does not validate against CycloneDX 1.6: ${problems.join('; ')}`);
  const body: BomRecord = { format: 'lifeline-mbom', version: 1, repositoryId: repo.id, snapshotId, time: new Date().toISOString(), by, bom };
  await writeRecord(repo, bomKey(snapshotId), body);
  return bomKey(snapshotId);
}

export type ReadBomResult = { ok: true; signer: string; record: BomRecord } | { ok: false; missing: boolean; reason: string };

/** The stored BOM, authenticated (decrypts with the tenant's identity, trusted signer, valid signature, bound to this snapshot). */
export async function readModelBom(repo: Repository, snapshotId: string): Promise<ReadBomResult> {
  let plain: Buffer;
  try {
    plain = await repo.openObject(bomKey(snapshotId));
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return { ok: false, missing: true, reason: `no Model BOM is stored for snapshot ${snapshotId} (${bomKey(snapshotId)})` };
    if (err instanceof AgeFormatError || err instanceof AgeAuthError || err instanceof AgeNoIdentityMatchError || err instanceof AgeHeaderIncompleteError) {
      return { ok: false, missing: false, reason: `cannot be decrypted with the tenant's identity: ${err.message}` };
    }
    throw err;
  }
  const trusted = new Map(repo.config.signers.map((s) => [s.keyId, s.publicKey]));
  const r = decodeRecord(plain, trusted, BomRecordSchema);
  if (!r.ok) return { ok: false, missing: false, reason: r.reason };
  if (r.body.repositoryId !== repo.id) return { ok: false, missing: false, reason: `belongs to repository ${r.body.repositoryId}, not ${repo.id}` };
  if (r.body.snapshotId !== snapshotId) return { ok: false, missing: false, reason: `describes snapshot ${r.body.snapshotId}, not ${snapshotId} (moved)` };
  return { ok: true, signer: r.signer, record: r.body };
}

// ---- generating -------------------------------------------------------------------

export interface GenerateOptions {
  snapshotId: string;
  tenant: string;
  sources: Pick<ModelBomConfig, 'datasets' | 'checkpoints' | 'platformConfig'>;
  card: ModelBomConfig['card'];
  training?: TrainingCode;
  /** workflow id or user that made it */
  by: string;
  toolVersion: string;
}

export interface GenerateResult {
  key: string;
  snapshotId: string;
  /** false when a valid BOM was already stored (idempotent) */
  created: boolean;
  files: number;
  components: number;
}

/** A snapshot as a BOM reference: its content digest comes from its tree. */
async function refFor(repo: Repository, s: SnapshotSummary): Promise<SnapshotRef> {
  const manifest = await repo.loadSnapshot(s.id, { useCache: true });
  const tree = await repo.loadTree(manifest);
  return { asset: s.asset.name, kind: s.asset.kind, snapshotId: s.id, time: s.time, labels: s.labels, digest: contentDigest(tree), files: s.stats.files, bytes: s.stats.totalBytes };
}

/**
 * Makes, validates, signs and stores the BOM of a model snapshot. Idempotent:
 * a valid stored BOM is kept; a stored one that does not verify is an error
 * (it is evidence and is never overwritten).
 */
export async function generateModelBom(repo: Repository, opts: GenerateOptions): Promise<GenerateResult> {
  const existing = await readModelBom(repo, opts.snapshotId);
  if (existing.ok) {
    const bom = existing.record.bom as { metadata?: { component?: { components?: unknown[] } }; components?: unknown[] };
    return { key: bomKey(opts.snapshotId), snapshotId: opts.snapshotId, created: false, files: bom.metadata?.component?.components?.length ?? 0, components: bom.components?.length ?? 0 };
  }
  if (!existing.missing) throw new IntegrityError(`a Model BOM is already stored for snapshot ${opts.snapshotId} but is not trustworthy (${existing.reason}); it is kept as evidence — investigate before removing ${bomKey(opts.snapshotId)}`);

  const manifest = await repo.loadSnapshot(opts.snapshotId);
  if (manifest.body.asset.kind !== 'model') throw new InputError(`snapshot ${opts.snapshotId} is of asset ${manifest.body.asset.name}, kind ${manifest.body.asset.kind}: a Model BOM describes model snapshots only`);
  const tree = await repo.loadTree(manifest);
  const all = await repo.listSnapshots();
  const upTo = (asset: string) => all.filter((s) => s.asset.name === asset && s.time <= manifest.body.time);
  const newest = async (asset: string, what: string): Promise<SnapshotRef> => {
    const s = upTo(asset).at(-1);
    if (!s) throw new InputError(`model snapshot ${opts.snapshotId.slice(0, 12)} of ${manifest.body.asset.name}: ${what} asset ${asset} has no snapshot taken before it; back it up first (lifeline backup run ${asset}), then make the BOM again`);
    return refFor(repo, s);
  };
  const datasets: SnapshotRef[] = [];
  for (const d of opts.sources.datasets) datasets.push(await newest(d, 'dataset'));
  const checkpoints: SnapshotRef[] = [];
  if (opts.sources.checkpoints) {
    const chain = upTo(opts.sources.checkpoints).slice(-CHECKPOINT_CHAIN_LIMIT);
    if (chain.length === 0) await newest(opts.sources.checkpoints, 'checkpoint'); // throws the clear error
    for (const s of chain) checkpoints.push(await refFor(repo, s));
  }
  const platformConfig = opts.sources.platformConfig ? await newest(opts.sources.platformConfig, 'platform-config') : undefined;
  const files = tree.filter((e) => e.type === 'file');
  const bom = buildModelBom({
    repositoryId: repo.id,
    tenant: opts.tenant,
    model: {
      asset: manifest.body.asset.name,
      kind: 'model',
      snapshotId: manifest.id,
      time: manifest.body.time,
      labels: manifest.body.labels,
      digest: contentDigest(tree),
      files: manifest.body.stats.files,
      bytes: manifest.body.stats.totalBytes,
      entries: files.map((f) => ({ path: f.path, sha256: f.sha256, size: f.size })),
    },
    datasets,
    checkpoints,
    platformConfig,
    training: opts.training,
    card: opts.card,
    generatedAt: new Date().toISOString(),
    toolVersion: opts.toolVersion,
  });
  const key = await storeModelBom(repo, opts.snapshotId, bom, opts.by);
  return { key, snapshotId: opts.snapshotId, created: true, files: files.length, components: (bom.components as unknown[]).length };
}

// ---- verifying --------------------------------------------------------------------

export interface BomProblem {
  /** the component (bom-ref) or `bom` for the document itself */
  component: string;
  problem: string;
}

export interface BomVerification {
  snapshotId: string;
  valid: boolean;
  signer?: string;
  problems: BomProblem[];
  checked: { signature: boolean; schema: boolean; files: number; filesRead: number; snapshots: number; unchecked: string[] };
}

type Component = { 'bom-ref'?: string; type?: string; name?: string; hashes?: Array<{ alg?: string; content?: string }>; properties?: Array<{ name?: string; value?: string }>; components?: Component[] };

const sha256Of = (c: Component) => c.hashes?.find((h) => h.alg === 'SHA-256')?.content;
const propOf = (c: Component, name: string) => c.properties?.find((p) => p.name === `${P}${name}`)?.value;

/** SHA-256 of a file as stored: its chunks read back (each checked against its keyed id) and hashed. */
async function storedFileSha256(repo: Repository, chunks: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const c of chunks) h.update(await repo.readBlob(c));
  return h.digest('hex');
}

/**
 * Checks a stored BOM: envelope and signature, the CycloneDX 1.6 schema, the
 * model's digest and every file hash against the snapshot (and, with
 * `readData`, against the file content read back from storage), and every
 * referenced snapshot's existence, asset and digest. Each problem names the
 * component it is about.
 */
export async function verifyModelBom(repo: Repository, snapshotId: string, opts: { readData?: boolean } = {}): Promise<BomVerification> {
  const problems: BomProblem[] = [];
  const checked: BomVerification['checked'] = { signature: false, schema: false, files: 0, filesRead: 0, snapshots: 0, unchecked: [] };
  const done = (signer?: string): BomVerification => ({ snapshotId, valid: problems.length === 0, ...(signer ? { signer } : {}), problems, checked });

  const read = await readModelBom(repo, snapshotId);
  if (!read.ok) {
    problems.push({ component: 'bom', problem: read.missing ? read.reason : `signature/envelope: ${read.reason}` });
    return done();
  }
  checked.signature = true;
  const bom = read.record.bom as { metadata?: { component?: Component }; components?: Component[] };
  for (const p of await validateCycloneDx(bom)) problems.push({ component: 'bom', problem: `CycloneDX 1.6 schema: ${p}` });
  checked.schema = problems.length === 0;

  // The model itself: the snapshot's digest and every file.
  const model = bom.metadata?.component;
  let manifest: SignedManifest | undefined;
  try {
    manifest = await repo.loadSnapshot(snapshotId);
  } catch (err) {
    if (!(err instanceof SnapshotNotFoundError)) throw err;
    problems.push({ component: model?.['bom-ref'] ?? 'model', problem: `snapshot ${snapshotId} no longer exists` });
  }
  if (!model || model.type !== 'machine-learning-model') {
    problems.push({ component: 'bom', problem: 'metadata.component is not a machine-learning-model component' });
  } else if (manifest) {
    const ref = model['bom-ref'] ?? model.name ?? 'model';
    if (propOf(model, 'snapshot') !== snapshotId) problems.push({ component: ref, problem: `names snapshot ${propOf(model, 'snapshot')}, not ${snapshotId}` });
    const tree = await repo.loadTree(manifest);
    const digest = contentDigest(tree);
    if (sha256Of(model) !== digest) problems.push({ component: ref, problem: `SHA-256 ${sha256Of(model)} differs from the snapshot's content digest ${digest}` });
    const stored = new Map(tree.filter((e) => e.type === 'file').map((e) => [e.path, e] as const));
    const listed = new Set<string>();
    for (const f of model.components ?? []) {
      const fref = f['bom-ref'] ?? f.name ?? '?';
      const entry = f.name !== undefined ? stored.get(f.name) : undefined;
      checked.files++;
      if (!entry || entry.type !== 'file') {
        problems.push({ component: fref, problem: `file ${JSON.stringify(f.name)} is not in snapshot ${snapshotId.slice(0, 12)}` });
        continue;
      }
      listed.add(entry.path);
      const want = sha256Of(f);
      if (want !== entry.sha256) {
        problems.push({ component: fref, problem: `SHA-256 ${want} differs from the snapshot's ${entry.sha256}` });
        continue;
      }
      if (opts.readData !== false) {
        const actual = await storedFileSha256(repo, entry.chunks);
        checked.filesRead++;
        if (actual !== want) problems.push({ component: fref, problem: `stored content hashes to ${actual}, not ${want}` });
      }
    }
    for (const path of stored.keys()) if (!listed.has(path)) problems.push({ component: ref, problem: `snapshot file ${JSON.stringify(path)} is missing from the BOM` });
  }

  // Everything it came from: each referenced snapshot exists, is of the named asset and has the recorded digest.
  for (const c of bom.components ?? []) {
    const ref = c['bom-ref'] ?? c.name ?? '?';
    const sid = propOf(c, 'snapshot');
    if (!sid) {
      checked.unchecked.push(`${ref}: ${c.type === 'application' ? 'training code hash (the code is not stored in the repository)' : 'no snapshot to check against'}`);
      continue;
    }
    checked.snapshots++;
    let m: SignedManifest;
    try {
      // Never from the cache: the question is whether the store still holds it.
      m = await repo.loadSnapshot(sid);
    } catch (err) {
      if (err instanceof SnapshotNotFoundError || err instanceof InputError) {
        problems.push({ component: ref, problem: `referenced snapshot ${sid} does not exist` });
        continue;
      }
      throw err;
    }
    if (m.body.asset.name !== propOf(c, 'asset')) problems.push({ component: ref, problem: `snapshot ${sid.slice(0, 12)} is of asset ${m.body.asset.name}, not ${propOf(c, 'asset')}` });
    const digest = contentDigest(await repo.loadTree(m));
    if (sha256Of(c) !== digest) problems.push({ component: ref, problem: `SHA-256 ${sha256Of(c)} differs from snapshot ${sid.slice(0, 12)}'s content digest ${digest}` });
  }
  return done(read.signer);
}
