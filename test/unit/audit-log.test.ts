/**
 * AuditLog on the in-memory object store: appends (also from two instances at
 * once), queries, and every kind of tampering verify must report with its
 * kind and position. The same scenarios run against MinIO, with Object Lock,
 * in test/integration/audit-log.test.ts.
 */
import { generateX25519Identity } from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { signCheckpoint } from '../../audit/checkpoint';
import { encodeEntry, parseEntryInput, type AuditEntryInput } from '../../audit/entry';
import { AuditLog, type AuditVerifyReport, checkpointKey, entryKey, proofKey } from '../../audit/log';
import { consistencyProofFromFrontier, frontierOf, frontierRoot, leafHash, rootOf } from '../../audit/merkle';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { SigningKey } from '../../engine/crypto/signing';

const ORIGIN = 'lifeline-audit/unit';
const key = SigningKey.generate();
const stranger = SigningKey.generate();
const DAY = 86_400_000;

function log(store: MemoryObjectStore, opts: Partial<ConstructorParameters<typeof AuditLog>[0]> = {}): AuditLog {
  return new AuditLog({ store, origin: ORIGIN, signingKey: key, lock: { mode: 'GOVERNANCE', retentionMs: DAY }, ...opts });
}

function entry(i: number, over: Partial<AuditEntryInput> = {}): AuditEntryInput {
  return {
    type: i % 3 === 0 ? 'verification' : 'backup',
    action: 'completed',
    outcome: 'success',
    actor: { kind: 'workflow', id: `lifeline-backup:asset-${i % 2}:${i}`, runId: `run-${i}` },
    tenant: 'acme',
    asset: i % 2 ? 'llama' : 'mistral',
    snapshot: `${(i + 10).toString(16).padStart(2, '0')}`.repeat(32),
    details: { bytes: 1000 * i, files: i },
    ...over,
  };
}

async function filled(n: number): Promise<{ store: MemoryObjectStore; log: AuditLog }> {
  const store = new MemoryObjectStore();
  const l = log(store);
  for (let i = 0; i < n; i++) await l.append(entry(i));
  return { store, log: l };
}

const kinds = (r: AuditVerifyReport) => r.problems.map((p) => ({ kind: p.kind, seq: p.seq, lastSeq: p.lastSeq, checkpoint: p.checkpoint, foundSeq: p.foundSeq }));
const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

async function get(store: MemoryObjectStore, k: string): Promise<Buffer> {
  return store.get(k);
}

/** A proof object as the log writes it. */
function proofObject(size: number, from: number, leaves: Buffer[], consistency: Buffer[], frontier: Buffer[]): Buffer {
  const b64 = (hs: Buffer[]) => hs.map((h) => h.toString('base64'));
  return Buffer.from(JSON.stringify({ v: 1, size, from, leaves: b64(leaves), consistency: b64(consistency), frontier: b64(frontier) }));
}

async function storedLeaves(store: MemoryObjectStore, n: number): Promise<Buffer[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => leafHash(await get(store, entryKey(i)))));
}

describe('appending', () => {
  it('numbers entries from 0, seals each with a checkpoint and locks every object', async () => {
    const { store, log: l } = await filled(5);
    expect(store.keys().filter((k) => k.startsWith('entries/'))).toEqual([0, 1, 2, 3, 4].map(entryKey));
    expect(store.keys().filter((k) => k.startsWith('checkpoints/'))).toEqual([1, 2, 3, 4, 5].map(checkpointKey));
    expect(store.keys().filter((k) => k.startsWith('proofs/'))).toEqual([1, 2, 3, 4, 5].map(proofKey));
    for (const k of store.keys()) {
      const lock = store.objectLock(k)!;
      expect(lock.retention!.mode, k).toBe('GOVERNANCE');
      expect(lock.retention!.until.getTime() - Date.now()).toBeGreaterThan(DAY - 60_000);
    }
    const r = await l.verify();
    expect(r).toMatchObject({ ok: true, entries: 5, checkpoints: 5, problems: [], warnings: [] });
    expect(r.checkpoint!.size).toBe(5);
    expect(r.checkpoint!.rootHash).toBe(rootOf(await storedLeaves(store, 5)).toString('base64'));
    expect(r.checkpoint!.note).toBe((await get(store, checkpointKey(5))).toString());
  });

  it('returns the sequence number and leaf hash; entries are signed JSON with ids only', async () => {
    const store = new MemoryObjectStore();
    const l = log(store, { now: () => new Date('2026-01-02T03:04:05.678Z') });
    const res = await l.append(entry(1));
    const bytes = await get(store, entryKey(0));
    expect(res).toEqual({ seq: 0, leafHash: leafHash(bytes).toString('hex'), checkpoint: 1 });
    const json = JSON.parse(bytes.toString());
    expect(Object.keys(json)).toEqual(['v', 'seq', 'id', 'time', 'type', 'action', 'outcome', 'actor', 'tenant', 'asset', 'snapshot', 'details', 'signer', 'signature']);
    expect(json).toMatchObject({ v: 1, seq: 0, time: '2026-01-02T03:04:05.678Z', type: 'backup', outcome: 'success', signer: key.keyId });
  });

  it('two instances appending at once lose and duplicate nothing, and the log verifies', async () => {
    const store = new MemoryObjectStore();
    const a = log(store);
    const b = log(store);
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).append(entry(i, { details: { n: i } }))));
    const seqs = results.map((r) => r.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const records = await a.query();
    expect(records.map((r) => r.entry.details!.n).sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    const r = await a.verify();
    expect(r.problems).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.checkpoint!.size).toBe(40);
  });

  it('a new instance continues from the newest checkpoint without reading the old entries', async () => {
    const { store } = await filled(30);
    const gets = store.stats.gets;
    const later = log(store);
    expect((await later.append(entry(30))).seq).toBe(30);
    expect(store.stats.gets - gets).toBeLessThanOrEqual(2); // the newest checkpoint and its proof
    expect((await later.verify()).ok).toBe(true);
  });

  it('seals entries a crashed appender left unsealed', async () => {
    const { store, log: l } = await filled(3);
    store.rawPut(entryKey(3), encodeEntry(parseEntryInput(entry(3)), 3, key));
    const before = await l.verify();
    expect(before.ok).toBe(true);
    expect(before.warnings).toEqual([expect.objectContaining({ kind: 'unsealed', seq: 3, lastSeq: 3 })]);
    expect((await log(store).append(entry(4))).seq).toBe(4);
    const after = await l.verify();
    expect(after).toMatchObject({ ok: true, warnings: [], problems: [] });
    expect(after.checkpoint!.size).toBe(5);
  });

  it('refuses without a signing key, and refuses entries holding secrets or bad ids', async () => {
    const store = new MemoryObjectStore();
    await expect(new AuditLog({ store, origin: ORIGIN, trustedKeys: [key.publicKey] }).append(entry(0))).rejects.toThrow(/no signing key/);
    await expect(log(store).append(entry(0, { details: { note: await generateX25519Identity() } }))).rejects.toThrow(/details.note: audit details must not hold secrets/);
    await expect(log(store).append(entry(0, { details: { password: 'x' } }))).rejects.toThrow(/must not hold secrets/);
    await expect(log(store).append(entry(0, { asset: '../etc/passwd' }))).rejects.toThrow(/asset/);
    await expect(log(store).append({ ...entry(0), type: 'nonsense' as 'backup' })).rejects.toThrow(/type/);
    expect(store.keys()).toEqual([]);
  });
});

describe('query', () => {
  it('filters by asset, tenant, type, snapshot and time range', async () => {
    const store = new MemoryObjectStore();
    const l = log(store);
    const hour = (h: number) => new Date(Date.parse('2026-03-01T00:00:00Z') + h * 3_600_000);
    for (let i = 0; i < 8; i++) await l.append(entry(i, { time: hour(i + 1), ...(i === 7 ? { tenant: 'globex' } : {}) }));
    expect((await l.query()).map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect((await l.query({ asset: 'llama' })).map((r) => r.seq)).toEqual([1, 3, 5, 7]);
    expect((await l.query({ tenant: 'globex' })).map((r) => r.seq)).toEqual([7]);
    expect((await l.query({ type: 'verification' })).map((r) => r.seq)).toEqual([0, 3, 6]);
    expect((await l.query({ snapshot: '0d0d0d0d' })).map((r) => r.seq)).toEqual([3]);
    expect((await l.query({ since: new Date('2026-03-01T03:00:00Z'), until: new Date('2026-03-01T05:00:00Z') })).map((r) => r.seq)).toEqual([2, 3]);
    expect((await l.query({ asset: 'llama', type: 'backup', since: new Date('2026-03-01T04:00:00Z') })).map((r) => r.seq)).toEqual([5, 7]);
    expect((await l.query()).every((r) => r.signatureValid)).toBe(true);
  });
});

describe('verify catches tampering', () => {
  it('an untouched log verifies', async () => {
    const { log: l } = await filled(10);
    expect(await l.verify()).toMatchObject({ ok: true, problems: [], warnings: [], entries: 10, checkpoints: 10 });
  });

  it('a modified entry', async () => {
    const { store, log: l } = await filled(10);
    const bytes = (await get(store, entryKey(3))).toString().replace('"outcome":"success"', '"outcome":"failure"');
    store.rawPut(entryKey(3), Buffer.from(bytes));
    const r = await l.verify();
    expect(r.ok).toBe(false);
    expect(kinds(r).map(clean)).toEqual([{ kind: 'modified', seq: 3 }]);
    expect(r.problems[0]!.message).toMatch(/signature does not verify/);
  });

  it('a modified entry re-signed by the key holder is still caught by the checkpoints', async () => {
    const { store, log: l } = await filled(10);
    const original = JSON.parse((await get(store, entryKey(6))).toString());
    store.rawPut(entryKey(6), encodeEntry(parseEntryInput({ ...entry(6), outcome: 'failure', time: original.time }), 6, key, { id: original.id }));
    expect(kinds(await l.verify()).map(clean)).toEqual([{ kind: 'modified', seq: 6 }]);
  });

  it('a deleted entry', async () => {
    const { store, log: l } = await filled(10);
    await store.delete(entryKey(4));
    expect(kinds(await l.verify()).map(clean)).toEqual([{ kind: 'deleted', seq: 4, lastSeq: 4 }]);
  });

  it('reordered entries', async () => {
    const { store, log: l } = await filled(10);
    const [two, five] = [await get(store, entryKey(2)), await get(store, entryKey(5))];
    store.rawPut(entryKey(2), five);
    store.rawPut(entryKey(5), two);
    expect(kinds(await l.verify()).map(clean)).toEqual([
      { kind: 'reordered', seq: 2, foundSeq: 5 },
      { kind: 'reordered', seq: 5, foundSeq: 2 },
    ]);
  });

  it('a truncated log: newest entries deleted', async () => {
    const { store, log: l } = await filled(10);
    for (const s of [7, 8, 9]) await store.delete(entryKey(s));
    expect(kinds(await l.verify()).map(clean)).toEqual([{ kind: 'truncated', seq: 7, lastSeq: 9 }]);
  });

  it('a truncated log: newest entries and checkpoints deleted, caught against a witness', async () => {
    const { store, log: l } = await filled(10);
    const witnessed = await l.verify();
    expect(witnessed.ok).toBe(true);
    for (const s of [7, 8, 9]) await store.delete(entryKey(s));
    for (const s of [8, 9, 10]) {
      await store.delete(checkpointKey(s));
      await store.delete(proofKey(s));
    }
    // Without anything kept outside the log, an earlier consistent state cannot be told apart.
    expect((await l.verify()).ok).toBe(true);
    const byNote = await l.verify({ witnesses: [{ note: witnessed.checkpoint!.note, source: 'the witness file' }] });
    expect(kinds(byNote).map(clean)).toEqual([{ kind: 'truncated', seq: 7, lastSeq: 9 }]);
    expect(byNote.witnesses).toEqual([{ size: 10, source: 'the witness file', ok: false }]);
    const bySize = await l.verify({ witnesses: [{ size: 10, source: '--expect-size' }] });
    expect(kinds(bySize).map(clean)).toEqual([{ kind: 'truncated', seq: 7, lastSeq: 9 }]);
    expect((await l.verify({ witnesses: [{ size: 7, source: '--expect-size' }] })).ok).toBe(true);
  });

  it('a checkpoint signed by another key', async () => {
    const { store, log: l } = await filled(10);
    const leaves = await storedLeaves(store, 10);
    leaves[9] = leafHash(Buffer.from('forged'));
    store.rawPut(checkpointKey(10), Buffer.from(signCheckpoint({ origin: ORIGIN, size: 10, rootHash: rootOf(leaves) }, stranger)));
    const r = await l.verify();
    expect(kinds(r).map(clean)).toEqual([{ kind: 'bad-signature', checkpoint: 10 }]);
    expect(r.problems[0]!.message).toMatch(/not signed by a trusted key/);
    expect(r.checkpoint!.size).toBe(9);
    expect(r.warnings).toEqual([expect.objectContaining({ kind: 'unsealed', seq: 9 })]);
  });

  it('a checkpoint signed by the right key for a forked history', async () => {
    const { store, log: l } = await filled(10);
    // The forger rewrites entry 3 and publishes checkpoint 11 over the forked history.
    const leaves = await storedLeaves(store, 10);
    const forked = [...leaves.slice(0, 3), leafHash(Buffer.from('forged entry 3')), ...leaves.slice(4), leafHash(Buffer.from('entry 10'))];
    const from = 2;
    const frontier2 = frontierOf(forked.slice(0, from));
    const added = forked.slice(from);
    const frontier11 = frontierOf(forked);
    store.rawPut(proofKey(11), proofObject(11, from, added, consistencyProofFromFrontier(from, frontier2, added), frontier11));
    store.rawPut(checkpointKey(11), Buffer.from(signCheckpoint({ origin: ORIGIN, size: 11, rootHash: frontierRoot(frontier11) }, key)));
    const r = await l.verify();
    expect(kinds(r).map(clean)).toEqual([{ kind: 'inconsistent-checkpoint', checkpoint: 11, seq: 3 }]);
    expect(r.problems[0]!.message).toMatch(/not consistent with checkpoint 4/);
    expect(r.checkpoint!.size).toBe(10);
  });

  it('a checkpoint whose consistency proof does not verify', async () => {
    const { store, log: l } = await filled(10);
    const proof = JSON.parse((await get(store, proofKey(10))).toString());
    proof.consistency[0] = Buffer.alloc(32, 9).toString('base64');
    store.rawPut(proofKey(10), Buffer.from(JSON.stringify(proof)));
    const r = await l.verify();
    expect(kinds(r).map(clean)).toEqual([{ kind: 'inconsistent-checkpoint', checkpoint: 10 }]);
    expect(r.problems[0]!.message).toMatch(/consistency proof from checkpoint 9 does not verify/);
  });

  it('a history rewritten by the key holder is caught against a witness', async () => {
    const { store, log: l } = await filled(10);
    const witness = (await l.verify()).checkpoint!.note;
    // Rewrite entry 9 and re-seal it: checkpoint 10 and its proof replaced coherently.
    const original = JSON.parse((await get(store, entryKey(9))).toString());
    store.rawPut(entryKey(9), encodeEntry(parseEntryInput({ ...entry(9), outcome: 'failure' }), 9, key, { id: original.id }));
    const leaves = await storedLeaves(store, 10);
    const f9 = frontierOf(leaves.slice(0, 9));
    store.rawPut(proofKey(10), proofObject(10, 9, [leaves[9]!], consistencyProofFromFrontier(9, f9, [leaves[9]!]), frontierOf(leaves)));
    store.rawPut(checkpointKey(10), Buffer.from(signCheckpoint({ origin: ORIGIN, size: 10, rootHash: rootOf(leaves) }, key)));
    expect((await l.verify()).ok).toBe(true);
    const r = await l.verify({ witnesses: [{ note: witness, source: 'witness' }] });
    expect(kinds(r).map(clean)).toEqual([{ kind: 'inconsistent-checkpoint', checkpoint: 10 }]);
    expect(r.problems[0]!.message).toMatch(/history was rewritten/);
  });

  it('an injected entry that is not signed is reported, sealed or not', async () => {
    const { store, log: l } = await filled(4);
    store.rawPut(entryKey(4), encodeEntry(parseEntryInput(entry(4)), 4, stranger));
    expect(kinds(await l.verify()).map(clean)).toEqual([{ kind: 'bad-signature', seq: 4 }]);
    await log(store).append(entry(5)); // the next append seals it (it cannot know), verify still names it
    const r = await l.verify();
    expect(kinds(r).map(clean)).toEqual([{ kind: 'bad-signature', seq: 4 }]);
    expect(r.problems[0]!.message).toMatch(/was sealed but is not validly signed/);
  });

  it('a deleted checkpoint proof and a deleted middle checkpoint', async () => {
    const { store, log: l } = await filled(10);
    await store.delete(proofKey(10));
    await store.delete(checkpointKey(5));
    const r = await l.verify();
    expect(kinds(r).map(clean)).toEqual([
      { kind: 'deleted', checkpoint: 5 },
      { kind: 'deleted', checkpoint: 10 },
    ]);
    expect(r.checkpoint!.size).toBe(10); // the entries still reproduce its root
    // An appender falls back to the newest checkpoint it can use.
    expect((await log(store).append(entry(10))).seq).toBe(10);
  });
});
