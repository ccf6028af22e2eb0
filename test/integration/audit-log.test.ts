/**
 * The audit log on the real MinIO of the test harness (no mocks): concurrent
 * appenders, Object Lock retention on every object, what a writer can and
 * cannot do to locked entries, and every kind of tampering caught by verify —
 * on a locked bucket (by a principal bypassing governance retention) and on a
 * bucket without Object Lock (where overwrites and deletes simply succeed).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signCheckpoint } from '../../audit/checkpoint';
import { type AuditEntryInput } from '../../audit/entry';
import { AuditLog, type AuditLock, type AuditVerifyReport, checkpointKey, entryKey, proofKey } from '../../audit/log';
import { consistencyProofFromFrontier, frontierOf, frontierRoot, leafHash } from '../../audit/merkle';
import { s3Versions } from '../../audit/open';
import { S3ObjectStore } from '../../engine/backend/s3';
import { SigningKey } from '../../engine/crypto/signing';
import { createTestBucket, testS3Client, testServices } from '../support/services';

const key = SigningKey.generate();
const stranger = SigningKey.generate();
const GOVERNANCE_DAY: AuditLock = { mode: 'GOVERNANCE', retentionMs: 86_400_000 };

let lockedBucket: string;
let plainBucket: string;
const stores: S3ObjectStore[] = [];

beforeAll(async () => {
  [lockedBucket, plainBucket] = await Promise.all([createTestBucket('audit-locked', { objectLock: true }), createTestBucket('audit-plain')]);
});
afterAll(() => {
  for (const s of stores) s.client.destroy();
});

/** A store of its own (its own S3 client), as another process would have. */
function store(bucket: string, prefix: string): S3ObjectStore {
  const { s3 } = testServices();
  const s = new S3ObjectStore({
    endpoint: s3.endpoint,
    region: s3.region,
    bucket,
    prefix,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    retryBudgetMs: 30_000,
  });
  stores.push(s);
  return s;
}

function auditLog(bucket: string, prefix: string, lock: AuditLock | null): AuditLog {
  const s = store(bucket, prefix);
  return new AuditLog({ store: s, origin: `lifeline-audit/${bucket}`, signingKey: key, lock, versions: lock ? s3Versions(s) : undefined });
}

function entry(i: number, over: Partial<AuditEntryInput> = {}): AuditEntryInput {
  return {
    type: (['backup', 'verification', 'restore', 'retention-deletion', 'key-operation', 'incident-step', 'approval', 'drill'] as const)[i % 8]!,
    action: 'completed',
    outcome: i % 5 === 4 ? 'failure' : 'success',
    actor: { kind: 'workflow', id: `wf-${i}`, runId: `run-${i}` },
    tenant: 'acme',
    asset: `asset-${i % 3}`,
    snapshot: createHash('sha256').update(`snap-${i}`).digest('hex'),
    details: { n: i },
    ...over,
  };
}

async function filled(prefix: string, n: number, bucket = plainBucket, lock: AuditLock | null = null): Promise<AuditLog> {
  const l = auditLog(bucket, prefix, lock);
  for (let i = 0; i < n; i++) await l.append(entry(i));
  return l;
}

const s3 = () => testS3Client();
const fullKey = (prefix: string, k: string) => `${prefix}/${k}`;

async function getRaw(bucket: string, prefix: string, k: string, versionId?: string): Promise<Buffer> {
  const res = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: fullKey(prefix, k), VersionId: versionId }));
  return Buffer.from(await res.Body!.transformToByteArray());
}
async function putRaw(bucket: string, prefix: string, k: string, body: Uint8Array): Promise<void> {
  await s3().send(new PutObjectCommand({ Bucket: bucket, Key: fullKey(prefix, k), Body: body, ChecksumAlgorithm: 'SHA256' }));
}
async function deleteRaw(bucket: string, prefix: string, k: string): Promise<void> {
  await s3().send(new DeleteObjectCommand({ Bucket: bucket, Key: fullKey(prefix, k) }));
}
async function versions(bucket: string, prefix: string, k: string) {
  const res = await s3().send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: fullKey(prefix, k) }));
  return (res.Versions ?? []).filter((v) => v.Key === fullKey(prefix, k));
}

const kinds = (r: AuditVerifyReport) =>
  r.problems.map((p) => Object.fromEntries(Object.entries({ kind: p.kind, seq: p.seq, lastSeq: p.lastSeq, checkpoint: p.checkpoint, foundSeq: p.foundSeq }).filter(([, v]) => v !== undefined)));

describe('audit log on MinIO with Object Lock', () => {
  const prefix = 'audit';
  let a: AuditLog;

  it('two appenders at once: no sequence number lost or taken twice, every object locked, the log verifies', async () => {
    a = auditLog(lockedBucket, prefix, GOVERNANCE_DAY);
    const b = auditLog(lockedBucket, prefix, GOVERNANCE_DAY);
    const started = Date.now();
    const [ra, rb] = await Promise.all([
      (async () => {
        const out: number[] = [];
        for (let i = 0; i < 15; i++) out.push((await a.append(entry(i, { actor: { kind: 'workflow', id: 'writer-a' }, details: { n: i } }))).seq);
        return out;
      })(),
      (async () => {
        const out: number[] = [];
        for (let i = 0; i < 15; i++) out.push((await b.append(entry(i, { actor: { kind: 'workflow', id: 'writer-b' }, details: { n: i } }))).seq);
        return out;
      })(),
    ]);
    expect([...ra, ...rb].sort((x, y) => x - y)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    // Each writer's entries are in its own order, and the two writers really interleaved.
    expect(ra).toEqual([...ra].sort((x, y) => x - y));
    expect(ra.some((s, i) => i > 0 && s !== ra[i - 1]! + 1)).toBe(true);
    const records = await a.query();
    expect(records).toHaveLength(30);
    for (const w of ['writer-a', 'writer-b']) {
      expect(records.filter((r) => r.entry.actor.id === w).map((r) => r.entry.details!.n)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    }
    const report = await a.verify();
    expect(report.problems).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(report).toMatchObject({ ok: true, entries: 30 });
    expect(report.checkpoint!.size).toBe(30);

    for (const k of [entryKey(0), entryKey(29), checkpointKey(30), proofKey(30)]) {
      const head = await s3().send(new HeadObjectCommand({ Bucket: lockedBucket, Key: fullKey(prefix, k), ChecksumMode: 'ENABLED' }));
      expect(head.ObjectLockMode, k).toBe('GOVERNANCE');
      const until = head.ObjectLockRetainUntilDate!.getTime();
      expect(until).toBeGreaterThan(started + 86_400_000 - 120_000);
      expect(until).toBeLessThan(Date.now() + 86_400_000 + 120_000);
      // Every put carried its SHA-256 (AWS requires a checksum on locked buckets; MinIO would not complain).
      expect(head.ChecksumSHA256, k).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    }
  });

  it('a writer cannot destroy a locked entry: deleting its version fails, an overwrite or a plain delete only hides it — verify reports both and names the retained version', async () => {
    const [original] = await versions(lockedBucket, prefix, entryKey(2));
    expect(original).toBeDefined();
    await expect(s3().send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: fullKey(prefix, entryKey(2)), VersionId: original!.VersionId }))).rejects.toThrow();
    // S3 semantics: a plain PUT of an existing key adds a version on top; the locked one stays.
    const tampered = (await getRaw(lockedBucket, prefix, entryKey(2))).toString().replace('"outcome":"success"', '"outcome":"denied"');
    await putRaw(lockedBucket, prefix, entryKey(2), Buffer.from(tampered));
    const vs = await versions(lockedBucket, prefix, entryKey(2));
    expect(vs).toHaveLength(2);
    expect((await getRaw(lockedBucket, prefix, entryKey(2), original!.VersionId)).toString()).not.toBe(tampered);
    const report = await a.verify();
    expect(kinds(report)).toEqual([{ kind: 'modified', seq: 2 }]);
    expect(report.problems[0]!.retainedVersion).toBe(original!.VersionId);
    expect(report.problems[0]!.message).toMatch(/the sealed original is still stored as version/);
    // Putting the original back (it is still there, locked) makes the log whole again.
    await putRaw(lockedBucket, prefix, entryKey(2), await getRaw(lockedBucket, prefix, entryKey(2), original!.VersionId));
    expect((await a.verify()).ok).toBe(true);

    // A plain delete only hides the locked version behind a delete marker.
    await deleteRaw(lockedBucket, prefix, entryKey(5));
    const hidden = await a.verify();
    expect(kinds(hidden)).toEqual([{ kind: 'deleted', seq: 5, lastSeq: 5 }]);
    const [kept] = await versions(lockedBucket, prefix, entryKey(5));
    expect(hidden.problems[0]!.retainedVersion).toBe(kept!.VersionId);
    const markers = await s3().send(new ListObjectVersionsCommand({ Bucket: lockedBucket, Prefix: fullKey(prefix, entryKey(5)) }));
    await s3().send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: fullKey(prefix, entryKey(5)), VersionId: markers.DeleteMarkers![0]!.VersionId }));
    expect((await a.verify()).ok).toBe(true);
  });

  it('a principal bypassing governance retention can delete an entry for good; verify reports it deleted', async () => {
    const all = await versions(lockedBucket, prefix, entryKey(7));
    expect(all).toHaveLength(1);
    await expect(s3().send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: fullKey(prefix, entryKey(7)), VersionId: all[0]!.VersionId }))).rejects.toThrow();
    await s3().send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: fullKey(prefix, entryKey(7)), VersionId: all[0]!.VersionId, BypassGovernanceRetention: true }));
    expect(await versions(lockedBucket, prefix, entryKey(7))).toHaveLength(0);
    const report = await a.verify();
    expect(kinds(report)).toEqual([{ kind: 'deleted', seq: 7, lastSeq: 7 }]);
    expect(report.problems[0]!.retainedVersion).toBeUndefined(); // gone for good
  });

  it('in compliance mode not even a principal bypassing governance can delete an entry', async () => {
    const l = await filled('audit-compliance', 2, lockedBucket, { mode: 'COMPLIANCE', retentionMs: 60_000 });
    const [v] = await versions(lockedBucket, 'audit-compliance', entryKey(1));
    const head = await s3().send(new HeadObjectCommand({ Bucket: lockedBucket, Key: fullKey('audit-compliance', entryKey(1)) }));
    expect(head.ObjectLockMode).toBe('COMPLIANCE');
    await expect(
      s3().send(new DeleteObjectCommand({ Bucket: lockedBucket, Key: fullKey('audit-compliance', entryKey(1)), VersionId: v!.VersionId, BypassGovernanceRetention: true })),
    ).rejects.toThrow();
    expect((await l.verify()).ok).toBe(true);
  });
});

describe('audit log on MinIO without Object Lock: tampering is caught', () => {
  it('an untouched log verifies', async () => {
    const l = await filled('untouched', 10);
    expect(await l.verify()).toMatchObject({ ok: true, problems: [], warnings: [], entries: 10, checkpoints: 10 });
  });

  it('a modified entry', async () => {
    const l = await filled('modified', 10);
    const bytes = (await getRaw(plainBucket, 'modified', entryKey(3))).toString().replace('"tenant":"acme"', '"tenant":"evil"');
    await putRaw(plainBucket, 'modified', entryKey(3), Buffer.from(bytes));
    expect(kinds(await l.verify())).toEqual([{ kind: 'modified', seq: 3 }]);
  });

  it('a deleted entry', async () => {
    const l = await filled('deleted', 10);
    await deleteRaw(plainBucket, 'deleted', entryKey(4));
    expect(kinds(await l.verify())).toEqual([{ kind: 'deleted', seq: 4, lastSeq: 4 }]);
  });

  it('two entries swapped', async () => {
    const l = await filled('reordered', 10);
    const [two, five] = await Promise.all([getRaw(plainBucket, 'reordered', entryKey(2)), getRaw(plainBucket, 'reordered', entryKey(5))]);
    await putRaw(plainBucket, 'reordered', entryKey(2), five);
    await putRaw(plainBucket, 'reordered', entryKey(5), two);
    expect(kinds(await l.verify())).toEqual([
      { kind: 'reordered', seq: 2, foundSeq: 5 },
      { kind: 'reordered', seq: 5, foundSeq: 2 },
    ]);
  });

  it('truncation: newest entries deleted; newest entries and checkpoints deleted, caught against the witness', async () => {
    const l = await filled('truncated', 10);
    const witness = (await l.verify()).checkpoint!.note;
    for (const s of [7, 8, 9]) await deleteRaw(plainBucket, 'truncated', entryKey(s));
    expect(kinds(await l.verify())).toEqual([{ kind: 'truncated', seq: 7, lastSeq: 9 }]);
    for (const s of [8, 9, 10]) {
      await deleteRaw(plainBucket, 'truncated', checkpointKey(s));
      await deleteRaw(plainBucket, 'truncated', proofKey(s));
    }
    const alone = await l.verify();
    expect(alone.ok).toBe(true); // an earlier consistent state: only a checkpoint kept elsewhere can tell
    expect(alone.checkpoint!.size).toBe(7);
    const r = await l.verify({ witnesses: [{ note: witness, source: 'witness' }, { size: 10, source: '--expect-size' }] });
    expect(kinds(r)).toEqual([
      { kind: 'truncated', seq: 7, lastSeq: 9 },
      { kind: 'truncated', seq: 7, lastSeq: 9 },
    ]);
    expect(r.witnesses.map((w) => w.ok)).toEqual([false, false]);
  });

  it('a checkpoint replaced by one signed with another key', async () => {
    const l = await filled('forged', 10);
    const note = signCheckpoint({ origin: l.origin, size: 10, rootHash: Buffer.alloc(32, 0xab) }, stranger);
    await putRaw(plainBucket, 'forged', checkpointKey(10), Buffer.from(note));
    const r = await l.verify();
    expect(kinds(r)).toEqual([{ kind: 'bad-signature', checkpoint: 10 }]);
    expect(r.warnings).toEqual([expect.objectContaining({ kind: 'unsealed', seq: 9 })]);
  });

  it('a checkpoint signed with the right key for a forked history', async () => {
    const l = await filled('fork', 10);
    const leaves = await Promise.all(Array.from({ length: 10 }, async (_, i) => leafHash(await getRaw(plainBucket, 'fork', entryKey(i)))));
    const forked = [...leaves.slice(0, 3), leafHash(Buffer.from('a different entry 3')), ...leaves.slice(4), leafHash(Buffer.from('entry 10'))];
    const from = 3;
    const added = forked.slice(from);
    const frontier = frontierOf(forked);
    const b64 = (hs: Buffer[]) => hs.map((h) => h.toString('base64'));
    const proof = { v: 1, size: 11, from, leaves: b64(added), consistency: b64(consistencyProofFromFrontier(from, frontierOf(forked.slice(0, from)), added)), frontier: b64(frontier) };
    await putRaw(plainBucket, 'fork', proofKey(11), Buffer.from(JSON.stringify(proof)));
    await putRaw(plainBucket, 'fork', checkpointKey(11), Buffer.from(signCheckpoint({ origin: l.origin, size: 11, rootHash: frontierRoot(frontier) }, key)));
    const r = await l.verify();
    expect(kinds(r)).toEqual([{ kind: 'inconsistent-checkpoint', checkpoint: 11, seq: 3 }]);
    expect(r.checkpoint!.size).toBe(10);
  });
});
