/**
 * Verification, hold and quarantine records (engine/verification.ts): only
 * signed records of this repository count, the newest check decides (except
 * that a corrupt verdict is sticky), "last verified" skips corrupt and
 * quarantined snapshots, and retention never forgets a held one.
 */
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { checkSnapshots } from '../../engine/checker';
import { sealBytes } from '../../engine/crypto/age';
import { SigningKey } from '../../engine/crypto/signing';
import { encodeRecord, type RecordWarning } from '../../engine/records';
import { keys, type Repository } from '../../engine/repository';
import { applyKeepPolicy } from '../../engine/retention';
import {
  forgetUnprotected,
  lastVerifiedSnapshot,
  listHolds,
  listQuarantined,
  listVerifications,
  placeHold,
  protectedSnapshots,
  pruneVerifications,
  quarantine,
  recordKeys,
  locateUnreadableTrees,
  recordVerification,
  releaseHold,
  releaseQuarantine,
  snapshotStatuses,
  verificationInputs,
  verificationState,
  type RecordVerificationInput,
  type VerificationBody,
} from '../../engine/verification';
import { makeKeys, makeRepository, tempDir } from '../support/engine-fixtures';

const asset = { name: 'llm', kind: 'model' as const, tenant: 'acme' };
const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});

/** A repository with `n` snapshots of one asset (distinct content each), oldest first. */
async function repoWithSnapshots(n: number): Promise<{ repo: Repository; store: MemoryObjectStore; ids: string[] }> {
  const store = new MemoryObjectStore();
  const { repo } = await makeRepository(store);
  const src = await tempDir('verif-src');
  cleanup.push(src);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    await writeFile(join(src, 'weights.bin'), randomBytes(40_000 + i));
    ids.push((await backup(repo, { root: src, asset, labels: { step: String(i) } })).snapshotId);
    // Manifest times are milliseconds: keep them strictly increasing.
    await new Promise((r) => setTimeout(r, 3));
  }
  return { repo, store, ids };
}

const check = (snapshotId: string, over: Partial<RecordVerificationInput> = {}): RecordVerificationInput => ({
  snapshotId,
  asset: asset.name,
  mode: 'shallow',
  samplePercent: 0,
  packsChecked: 1,
  bytesDownloaded: 0,
  durationMs: 5,
  problems: [],
  ...over,
});
const bad = [{ path: 'weights.bin', object: 'data/ab/ab12', problem: 'pack content does not match its name (corrupt or overwritten)' }];
const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

describe('verification records', () => {
  let repo: Repository;
  let store: MemoryObjectStore;
  let ids: string[];
  beforeAll(async () => ({ repo, store, ids } = await repoWithSnapshots(3)));

  it('a check of a real snapshot is recorded per snapshot, encrypted, and read back signed', async () => {
    const report = await checkSnapshots(repo, { snapshotIds: [ids[0]!], mode: 'deep', samplePercent: 100 });
    const [input] = verificationInputs(report, () => asset.name, 'unit-test');
    const rec = await recordVerification(repo, input!);
    expect(rec.key.startsWith(`verifications/${ids[0]}/`)).toBe(true);
    // Encrypted: the stored object is an age file, no JSON in sight.
    const raw = await store.get(rec.key);
    expect(raw.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(raw.includes(Buffer.from('lifeline-verification'))).toBe(false);
    const back = await listVerifications(repo, { snapshotId: ids[0]! });
    expect(back).toHaveLength(1);
    expect(back[0]!.body).toMatchObject({ snapshotId: ids[0], result: 'passed', mode: 'deep', samplePercent: 100, problemCount: 0, by: 'unit-test' });
    expect(back[0]!.signer).toBe(repo.signingKey!.keyId);
    const [status] = (await snapshotStatuses(repo)).filter((s) => s.id === ids[0]);
    expect(status!.verification.state).toBe('verified');
    expect(status!.verification.lastPassed).toMatchObject({ mode: 'deep', samplePercent: 100 });
  });

  it('unsigned, foreign-signed, tampered, moved and undecryptable records are ignored with a warning', async () => {
    const target = ids[1]!;
    await recordVerification(repo, check(target, { problems: bad, mode: 'deep', samplePercent: 100, time: at(1) }));
    const body: VerificationBody = {
      format: 'lifeline-verification',
      version: 1,
      repositoryId: repo.id,
      snapshotId: target,
      asset: asset.name,
      time: new Date().toISOString(),
      mode: 'deep',
      samplePercent: 100,
      result: 'passed',
      packsChecked: 1,
      bytesDownloaded: 1,
      durationMs: 1,
      problemCount: 0,
      problems: [],
    };
    const seal = (b: Buffer) => sealBytes(b, repo.recipients);
    const plant = async (name: string, bytes: Buffer) => store.put(recordKeys.verification(target, name), bytes);
    // 1. no envelope at all: the bare body
    await plant('forged-unsigned', await seal(Buffer.from(JSON.stringify(body))));
    // 2. a well-formed envelope signed by a key the repository does not trust
    const stranger = SigningKey.generate();
    await plant('forged-stranger', await seal(encodeRecord(body, (d) => stranger.sign(d), stranger.keyId)));
    // 3. signed by the tenant, then altered: a failed check rewritten as passed
    const signed = encodeRecord({ ...body, result: 'failed', problemCount: 1, problems: bad }, (d) => repo.signingKey!.sign(d), repo.signingKey!.keyId);
    await plant('tampered', await seal(Buffer.from(signed.toString('utf8').replace('"result":"failed"', '"result":"passed"'))));
    // 4. a genuine passing record of another snapshot, copied under this one
    const other = await recordVerification(repo, check(ids[2]!, { mode: 'deep', samplePercent: 100 }));
    await plant('moved', await store.get(other.key));
    // 5. encrypted to someone else
    const foreign = await makeKeys();
    await plant('foreign', await sealBytes(encodeRecord(body, (d) => repo.signingKey!.sign(d), repo.signingKey!.keyId), await foreign.identities.recipients()));

    const warnings: RecordWarning[] = [];
    const records = await listVerifications(repo, { snapshotId: target, onWarning: (w) => warnings.push(w) });
    expect(records).toHaveLength(1);
    expect(records[0]!.body.result).toBe('failed');
    const reasons = Object.fromEntries(warnings.map((w) => [w.key.split('/').pop(), w.reason]));
    expect(Object.keys(reasons).sort()).toEqual(['foreign', 'forged-stranger', 'forged-unsigned', 'moved', 'tampered']);
    expect(reasons['forged-unsigned']).toMatch(/malformed|magic/);
    expect(reasons['forged-stranger']).toMatch(/untrusted key/);
    expect(reasons['tampered']).toMatch(/signature is invalid/);
    expect(reasons['moved']).toMatch(/is about snapshot/);
    expect(reasons['foreign']).toMatch(/cannot be decrypted/);
    // The forged "passed" records changed nothing: still corrupt.
    const status = (await snapshotStatuses(repo)).find((s) => s.id === target)!;
    expect(status.verification.state).toBe('corrupt');
    expect(status.verification.lastFailed!.problems[0]!.object).toBe('data/ab/ab12');
  });
});

describe('state rules', () => {
  const rec = (key: string, time: Date, over: Partial<VerificationBody>) => ({
    key,
    signer: 'k',
    body: {
      format: 'lifeline-verification' as const,
      version: 1 as const,
      repositoryId: 'r',
      snapshotId: 'a'.repeat(64),
      asset: 'x',
      time: time.toISOString(),
      mode: 'shallow' as const,
      samplePercent: 0,
      result: 'passed' as const,
      packsChecked: 1,
      bytesDownloaded: 0,
      durationMs: 1,
      problemCount: 0,
      problems: [],
      ...over,
    },
  });

  it('no records: unverified; the newest check decides regardless of storage order', () => {
    expect(verificationState([]).state).toBe('unverified');
    const passed = rec('v/2', at(2), {});
    const failed = rec('v/1', at(1), { result: 'failed', problemCount: 1, problems: bad });
    // Listed in key order, the failure comes first but is older: the later pass wins only if it clears it (below).
    expect(verificationState([passed]).state).toBe('verified');
    expect(verificationState([failed]).state).toBe('corrupt');
    expect(verificationState([passed, failed]).lastPassed!.time).toBe(at(2).toISOString());
  });

  it('a corrupt verdict is sticky until a full deep check passes', () => {
    const failed = rec('v/1', at(1), { mode: 'deep', samplePercent: 10, result: 'failed', problemCount: 1, problems: bad });
    const shallow = rec('v/2', at(2), {});
    const sampled = rec('v/3', at(3), { mode: 'deep', samplePercent: 50 });
    const full = rec('v/4', at(4), { mode: 'deep', samplePercent: 100 });
    expect(verificationState([failed, shallow]).state).toBe('corrupt');
    expect(verificationState([sampled, failed, shallow]).state).toBe('corrupt');
    expect(verificationState([full, failed, shallow, sampled]).state).toBe('verified');
    // A full pass *before* the failure does not clear it.
    expect(verificationState([rec('v/0', at(0), { mode: 'deep', samplePercent: 100 }), failed]).state).toBe('corrupt');
  });

  it('checks in the same millisecond order by key', () => {
    const a = rec('v/2026-01-01T00-00-05-000Z-00000001', at(5), { result: 'failed', problemCount: 1, problems: bad });
    const b = rec('v/2026-01-01T00-00-05-000Z-00000002', at(5), { mode: 'deep', samplePercent: 100 });
    expect(verificationState([b, a]).state).toBe('verified');
    expect(verificationState([a, { ...b, key: 'v/2026-01-01T00-00-05-000Z-00000000' }]).state).toBe('corrupt');
  });
});

describe('last verified, quarantine and holds', () => {
  it('last verified is the newest verified snapshot that is not quarantined', async () => {
    const { repo, ids } = await repoWithSnapshots(4);
    const [s0, s1, s2, s3] = ids as [string, string, string, string];
    expect(await lastVerifiedSnapshot(repo, asset.name)).toBeNull();
    await recordVerification(repo, check(s0, { time: at(1) }));
    await recordVerification(repo, check(s1, { time: at(2) }));
    await recordVerification(repo, check(s2, { mode: 'deep', samplePercent: 100, problems: bad, time: at(3) }));
    // s3 is newest but unverified; s2 is corrupt.
    expect((await lastVerifiedSnapshot(repo, asset.name))!.id).toBe(s1);
    expect(await lastVerifiedSnapshot(repo, 'another-asset')).toBeNull();

    const mark = await quarantine(repo, { snapshotId: s1, reason: 'suspected ransomware', id: 'inc-7' });
    expect((await listQuarantined(repo)).map((q) => [q.snapshotId, q.id])).toEqual([[s1, 'inc-7']]);
    expect((await lastVerifiedSnapshot(repo, asset.name))!.id).toBe(s0);

    await releaseQuarantine(repo, { snapshotId: s1, id: mark.id, reason: 'false alarm' });
    expect(await listQuarantined(repo)).toEqual([]);
    expect((await lastVerifiedSnapshot(repo, asset.name))!.id).toBe(s1);

    // A full deep pass repairs s2's verdict; verifying s3 makes it the last verified.
    await recordVerification(repo, check(s2, { mode: 'deep', samplePercent: 100, time: at(4) }));
    expect((await lastVerifiedSnapshot(repo, asset.name))!.id).toBe(s2);
    await recordVerification(repo, check(s3, { time: at(5) }));
    expect((await lastVerifiedSnapshot(repo, asset.name))!.id).toBe(s3);
  });

  it('holds: placed, idempotent, released with history; a snapshot must exist to be held', async () => {
    const { repo, store, ids } = await repoWithSnapshots(2);
    const h = await placeHold(repo, { snapshotId: ids[0]!, reason: 'litigation 42', id: 'case-42', by: 'legal' });
    expect(h).toMatchObject({ kind: 'hold', snapshotId: ids[0], id: 'case-42', reason: 'litigation 42', by: 'legal' });
    const again = await placeHold(repo, { snapshotId: ids[0]!, reason: 'litigation 42', id: 'case-42' });
    expect(again.placedAt).toBe(h.placedAt);
    expect(await listHolds(repo)).toHaveLength(1);
    expect((await listHolds(repo, { snapshotId: ids[1]! }))).toEqual([]);

    await expect(placeHold(repo, { snapshotId: 'f'.repeat(64), reason: 'x' })).rejects.toThrow(/does not exist/);
    await expect(placeHold(repo, { snapshotId: ids[0]!, reason: '  ' })).rejects.toThrow(/needs a reason/);
    await expect(placeHold(repo, { snapshotId: ids[0]!, reason: 'x', id: '../etc' })).rejects.toThrow(/not a valid hold id/);
    await expect(releaseHold(repo, { snapshotId: ids[0]!, id: 'nope', reason: 'x' })).rejects.toThrow(/no hold nope/);

    await releaseHold(repo, { snapshotId: ids[0]!, id: 'case-42', reason: 'case closed' });
    await releaseHold(repo, { snapshotId: ids[0]!, id: 'case-42', reason: 'case closed' }); // idempotent
    expect(await listHolds(repo)).toEqual([]);
    await expect(placeHold(repo, { snapshotId: ids[0]!, reason: 'again', id: 'case-42' })).rejects.toThrow(/was released; use a new id/);
    // Both records stay as history.
    expect(store.keys().filter((k) => k.startsWith(`holds/${ids[0]}/case-42/`))).toEqual([
      `holds/${ids[0]}/case-42/placed`,
      `holds/${ids[0]}/case-42/released`,
    ]);
  });

  it('a forged hold protects nothing, and a forged release does not lift a real hold', async () => {
    const { repo, store, ids } = await repoWithSnapshots(2);
    await placeHold(repo, { snapshotId: ids[1]!, reason: 'real', id: 'real' });
    const stranger = SigningKey.generate();
    const forge = async (key: string, body: object) =>
      store.put(key, await sealBytes(encodeRecord(body, (d) => stranger.sign(d), stranger.keyId), repo.recipients));
    const base = { version: 1, repositoryId: repo.id, time: new Date().toISOString(), reason: 'forged' };
    await forge(recordKeys.holdReleased(ids[1]!, 'real'), { ...base, format: 'lifeline-hold', snapshotId: ids[1], id: 'real', action: 'released' });
    await forge(recordKeys.holdPlaced(ids[0]!, 'fake'), { ...base, format: 'lifeline-hold', snapshotId: ids[0], id: 'fake', action: 'placed' });
    const warnings: RecordWarning[] = [];
    const holds = await listHolds(repo, { onWarning: (w) => warnings.push(w) });
    expect(holds.map((h) => [h.snapshotId, h.id])).toEqual([[ids[1], 'real']]);
    expect(warnings.map((w) => w.key).sort()).toEqual([recordKeys.holdPlaced(ids[0]!, 'fake'), recordKeys.holdReleased(ids[1]!, 'real')].sort());
  });

  it('retention protects held, quarantined and last-verified snapshots and never forgets a held one', async () => {
    const { repo, store, ids } = await repoWithSnapshots(5);
    const [s0, s1, s2, s3, s4] = ids as [string, string, string, string, string];
    await placeHold(repo, { snapshotId: s0, reason: 'audit', id: 'audit-1' });
    await quarantine(repo, { snapshotId: s1, reason: 'suspect' });
    await recordVerification(repo, check(s2, { time: at(1) }));
    await recordVerification(repo, check(s4, { problems: bad, time: at(2) }));
    const statuses = await snapshotStatuses(repo, { asset: asset.name });
    const protect = protectedSnapshots(statuses);
    expect([...protect.keys()].sort()).toEqual([s0, s1, s2].sort());
    expect(protect.get(s0)).toBe('hold audit-1: audit');
    expect(protect.get(s2)).toBe('newest verified snapshot');
    const decision = applyKeepPolicy(statuses, { keepLast: 1 }, protect);
    expect(decision.forget).toEqual([s3]);

    // Even when asked directly (a hold placed after the decision), a held snapshot is not deleted.
    await placeHold(repo, { snapshotId: s3, reason: 'late hold', id: 'late' });
    const res = await forgetUnprotected(repo, [s3, s4]);
    expect(res.forgotten).toEqual([s4]);
    expect(res.kept).toEqual([{ id: s3, reason: 'hold late: late hold' }]);
    expect(await store.head(keys.snapshot(s3))).not.toBeNull();
    expect(await store.head(keys.snapshot(s4))).toBeNull();
    // The forgotten snapshot's verification records went with it.
    expect(store.keys().filter((k) => k.startsWith(`verifications/${s4}/`))).toEqual([]);
  });

  it('pruning keeps the records the verdict rests on', async () => {
    const { repo, ids } = await repoWithSnapshots(1);
    const id = ids[0]!;
    await recordVerification(repo, check(id, { mode: 'deep', samplePercent: 100, time: at(0) }));
    await recordVerification(repo, check(id, { problems: bad, time: at(1) }));
    for (let i = 2; i < 8; i++) await recordVerification(repo, check(id, { time: at(i) }));
    expect(verificationState(await listVerifications(repo, { snapshotId: id })).state).toBe('corrupt');
    const deleted = await pruneVerifications(repo, id, 3);
    const left = await listVerifications(repo, { snapshotId: id });
    // 8 records, keep the newest 3 plus the pinned failure and full deep pass among the older ones.
    expect(deleted).toBe(3);
    expect(left.map((r) => r.body.time)).toEqual([0, 1, 5, 6, 7].map((s) => at(s).toISOString()));
    expect(verificationState(left).state).toBe('corrupt');
  });
});

describe('naming damaged objects', () => {
  it('a damaged pack holding a snapshot\'s file list is named, not just the manifest', async () => {
    const { repo, store, ids } = await repoWithSnapshots(2);
    // The newest snapshot's pack holds both its data and its tree (small asset).
    const manifest = await repo.loadSnapshot(ids[1]!);
    const packKey = keys.pack(repo.index.lookup(manifest.body.tree[0]!)!.packId);
    store.corrupt(packKey, 200);
    const report = await checkSnapshots(repo, { snapshotIds: ids, mode: 'shallow' });
    expect(report.problems.map((p) => p.object)).toEqual([keys.snapshot(ids[1]!)]);
    const located = await locateUnreadableTrees(repo, report);
    expect(located.problems).toHaveLength(1);
    expect(located.problems[0]).toMatchObject({ snapshotId: ids[1], object: packKey });
    expect(located.problems[0]!.problem).toMatch(/^pack holding the snapshot's file list does not match its name \(corrupt or overwritten\): /);
    // A manifest that is itself gone stays blamed on the manifest.
    await store.delete(keys.snapshot(ids[0]!));
    const again = await locateUnreadableTrees(repo, await checkSnapshots(repo, { snapshotIds: [ids[0]!], mode: 'shallow' }));
    expect(again.problems.map((p) => p.object)).toEqual([keys.snapshot(ids[0]!)]);
  });
});
