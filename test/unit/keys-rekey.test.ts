/**
 * Re-keying a repository (engine/rekey.ts) on the in-memory store: after a
 * rotation, metadata opens only with the new identity and is signed by the
 * new key while packs stay with the old one; after re-encrypting the packs,
 * the old identity opens nothing and both snapshots restore and deep-check
 * with the new identity alone — also when the re-encryption crashed halfway
 * and was run again. Planted objects are never re-signed.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { checkSnapshots } from '../../engine/checker';
import { AgeIdentities, openBytes, sealBytes } from '../../engine/crypto/age';
import { identityFileWithout } from '../../engine/crypto/key-files';
import { SigningKey } from '../../engine/crypto/signing';
import { encodeRecord } from '../../engine/records';
import { opensWith, reencryptPacks, resignEnvelope, rewrapMetadata } from '../../engine/rekey';
import { Repository } from '../../engine/repository';
import { Lease } from '../../engine/leases';
import { collectGarbage, KEY_REVOCATION_LEASE, KEY_ROTATION_LEASE } from '../../engine/retention';
import { restore } from '../../engine/restorer';
import { listHolds, placeHold } from '../../engine/verification';
import { objectsOpenedBy } from '../../tenancy/key-rotation';
import { describeTree, makeAsset, makeKeys, makeRepository, tempDir } from '../support/engine-fixtures';

const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});
const dir = async (l: string) => {
  const d = await tempDir(l);
  cleanup.push(d);
  return d;
};
const asset = { name: 'llama', kind: 'model' as const, tenant: 'acme' };

async function objectKeys(store: MemoryObjectStore, prefix: string): Promise<string[]> {
  return store.keys().filter((k) => k.startsWith(prefix));
}

/** Old repository with snapshot S1 and a hold on it; then the engine side of `keys rotate`. */
async function rotated(store: MemoryObjectStore) {
  const { repo: oldRepo, keys: oldKeys } = await makeRepository(store, { packSize: 256 * 1024 });
  const src1 = await dir('rekey-src1');
  await makeAsset(src1, { smallFiles: 10, largeFileBytes: 700_000 });
  const s1 = (await backup(oldRepo, { root: src1, asset })).snapshotId;
  await placeHold(oldRepo, { snapshotId: s1, id: 'case-1', reason: 'legal' });

  const newKeys = await makeKeys('hybrid');
  const [newRecipient] = await newKeys.identities.recipients();
  const identities = AgeIdentities.merge(newKeys.identities, oldKeys.identities);
  await Repository.rewriteConfig(store, {
    identities,
    recipients: [newRecipient!],
    update: (c) => ({ ...c, signers: [{ keyId: newKeys.signingKey.keyId, publicKey: newKeys.signingKey.publicKey }, ...c.signers] }),
  });
  const repo = await Repository.open(store, { identities, signingKey: newKeys.signingKey, cacheRoot: null });
  expect(repo.recipients).toEqual([newRecipient]);
  const report = await rewrapMetadata(repo, { stale: oldKeys.identities, signingKey: newKeys.signingKey });
  return { repo, oldKeys, newKeys, identities, s1, src1, report };
}

describe('key rotation in the engine', () => {
  it('re-wraps and re-signs metadata, leaves packs, and new data uses only the new recipient', async () => {
    const store = new MemoryObjectStore();
    const { repo, oldKeys, newKeys, s1, report } = await rotated(store);
    expect(report.manifests).toBe(1);
    expect(report.records).toBe(1);
    expect(report.indexes).toBeGreaterThan(0);
    expect(report.skipped).toEqual([]);

    for (const key of ['config', ...(await objectKeys(store, 'snapshots/')), ...(await objectKeys(store, 'holds/')), ...(await objectKeys(store, 'index/'))]) {
      const sealed = await store.get(key);
      expect(await opensWith(sealed, newKeys.identities), key).toBe(true);
      expect(await opensWith(sealed, oldKeys.identities), key).toBe(false);
    }
    // The manifest keeps its id (the hash of its body) and is now signed by the new key.
    const plain = await openBytes(await store.get(`snapshots/${s1}`), newKeys.identities);
    expect(plain.toString('utf8')).toContain(`signer ${newKeys.signingKey.keyId}\n`);
    // Packs are untouched: their ids are their ciphertext hashes.
    const packsBefore = await objectKeys(store, 'data/');
    for (const key of packsBefore) expect(await opensWith(await store.get(key), oldKeys.identities)).toBe(true);

    // Running it again changes nothing (idempotent).
    const again = await rewrapMetadata(repo, { stale: oldKeys.identities, signingKey: newKeys.signingKey });
    expect(again.manifests + again.records + again.indexes).toBe(0);

    const src2 = await dir('rekey-src2');
    await makeAsset(src2, { smallFiles: 5, largeFileBytes: 300_000 });
    const s2 = (await backup(repo, { root: src2, asset })).snapshotId;
    const newPacks = (await objectKeys(store, 'data/')).filter((k) => !packsBefore.includes(k));
    expect(newPacks.length).toBeGreaterThan(0);
    for (const key of [...newPacks, `snapshots/${s2}`]) {
      const sealed = await store.get(key);
      expect(await opensWith(sealed, newKeys.identities), key).toBe(true);
      expect(await opensWith(sealed, oldKeys.identities), key).toBe(false);
    }
  });

  it('after re-encrypting the packs the old identity opens nothing; both snapshots restore and deep-check with the new identity alone, also after a crash halfway', async () => {
    let failDeletes = true;
    const store = new MemoryObjectStore({
      // The first pack deletion "crashes" the run: new packs and indexes are stored, old packs still exist.
      fault: async (op, key) => {
        if (failDeletes && op === 'delete' && key.startsWith('data/')) {
          failDeletes = false;
          throw new Error('simulated crash');
        }
      },
    });
    const { repo, oldKeys, newKeys, s1, src1 } = await rotated(store);
    const src2 = await dir('rekey-src2b');
    await makeAsset(src2, { smallFiles: 5, largeFileBytes: 300_000 });
    const s2 = (await backup(repo, { root: src2, asset })).snapshotId;
    const oldPacks = (await objectsOpenedBy(repo, oldKeys.identities)).packs;
    expect(oldPacks).toBeGreaterThan(1);

    await expect(reencryptPacks(repo, { stale: oldKeys.identities, packsPerIndex: 2 })).rejects.toThrow('simulated crash');
    // Crash state: every snapshot is still readable (blobs in old and new packs).
    const mid = await Repository.open(store, { identities: AgeIdentities.merge(newKeys.identities, oldKeys.identities), cacheRoot: null });
    expect((await checkSnapshots(mid, { snapshotIds: [s1, s2], mode: 'shallow' })).problems).toEqual([]);

    const second = await reencryptPacks(mid, { stale: oldKeys.identities, packsPerIndex: 2 });
    expect(second.packsReencrypted + second.orphansDeleted).toBeGreaterThan(0);
    const left = await objectsOpenedBy(mid, oldKeys.identities);
    expect(left).toEqual({ config: 0, manifests: 0, records: 0, indexes: 0, packs: 0 });

    // The new identity alone (and only the new signer trusted) reads everything.
    await Repository.rewriteConfig(store, {
      identities: newKeys.identities,
      recipients: await newKeys.identities.recipients(),
      update: (c) => ({ ...c, signers: c.signers.filter((s) => s.keyId === newKeys.signingKey.keyId) }),
    });
    const fresh = await Repository.open(store, { identities: newKeys.identities, signingKey: newKeys.signingKey, cacheRoot: null });
    expect(fresh.config.signers.map((s) => s.keyId)).toEqual([newKeys.signingKey.keyId]);
    const deep = await checkSnapshots(fresh, { snapshotIds: [s1, s2], mode: 'deep' });
    expect(deep.problems).toEqual([]);
    expect(deep.snapshots.every((s) => s.ok)).toBe(true);
    for (const [snap, src] of [
      [s1, src1],
      [s2, src2],
    ] as const) {
      const target = await dir('rekey-restore');
      await restore(fresh, snap, { target: join(target, 'out') });
      expect(await describeTree(join(target, 'out'))).toEqual(await describeTree(src));
    }
    expect((await listHolds(fresh)).map((h) => h.id)).toEqual(['case-1']);
    // With the old identity the repository does not even open.
    await expect(Repository.open(store, { identities: oldKeys.identities, cacheRoot: null })).rejects.toThrow();
  });
});

describe('garbage collection and key revocation', () => {
  it.each([
    [KEY_REVOCATION_LEASE, 'key revocation'],
    [KEY_ROTATION_LEASE, 'key rotation'],
  ])('collection defers while a %s lease is live, and runs again once it is released', async (purpose, words) => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const lease = await Lease.acquire(store, purpose);
    const deferred = await collectGarbage(repo, { graceMs: 0 });
    expect(deferred.deferred).toEqual([{ tombstone: '*', reason: `a ${words} (lease ${lease.record.id}) is re-encrypting this repository; collection runs next time` }]);
    await lease.release();
    expect((await collectGarbage(repo, { graceMs: 0 })).deferred).toEqual([]);
    // Collection's own lease is gone afterwards.
    expect(store.keys().filter((k) => k.startsWith('locks/'))).toEqual([]);
  });
});

describe('re-signing', () => {
  it('never re-signs a planted record (untrusted signer) and keeps the body bytes of a trusted one', async () => {
    const trustedKey = SigningKey.generate();
    const newKey = SigningKey.generate();
    const attacker = SigningKey.generate();
    const trusted = new Map([[trustedKey.keyId, trustedKey.publicKey]]);
    const body = { format: 'lifeline-hold', id: 'x' };
    const good = encodeRecord(body, (d) => trustedKey.sign(d), trustedKey.keyId);
    const planted = encodeRecord(body, (d) => attacker.sign(d), attacker.keyId);
    const r = resignEnvelope(good, 'lifeline-record v1', trusted, newKey);
    expect('bytes' in r && r.changed).toBe(true);
    if ('bytes' in r) {
      expect(r.bytes.toString()).toContain(`signer ${newKey.keyId}`);
      expect(r.bytes.subarray(r.bytes.indexOf('\n\n') + 2).equals(good.subarray(good.indexOf('\n\n') + 2))).toBe(true);
    }
    expect(resignEnvelope(planted, 'lifeline-record v1', trusted, newKey)).toEqual({ error: `signed by untrusted key ${attacker.keyId}` });
    const tampered = Buffer.from(good.toString().replace('"x"', '"y"'));
    expect(resignEnvelope(tampered, 'lifeline-record v1', trusted, newKey)).toEqual({ error: 'signature is invalid (tampered or forged)' });
  });

  it('a planted object in the repository is reported and left alone by the re-wrap', async () => {
    const store = new MemoryObjectStore();
    const { repo, newKeys } = await rotated(store);
    const attacker = SigningKey.generate();
    const body = encodeRecord({ format: 'lifeline-hold' }, (d) => attacker.sign(d), attacker.keyId);
    await store.put('holds/abc/evil/placed', await sealBytes(body, repo.recipients));
    const before = await store.get('holds/abc/evil/placed');
    const r = await rewrapMetadata(repo, { stale: null, signingKey: newKeys.signingKey });
    expect(r.skipped).toEqual([{ key: 'holds/abc/evil/placed', reason: `signed by untrusted key ${attacker.keyId}` }]);
    expect((await store.get('holds/abc/evil/placed')).equals(before)).toBe(true);
  });
});

describe('identity files', () => {
  it('drops exactly the revoked identity with its comment lines', async () => {
    const a = await makeKeys('hybrid');
    const b = await makeKeys('x25519');
    const [ra] = await a.identities.recipients();
    const [rb] = await b.identities.recipients();
    const text = `# created: 2026-01-01T00:00:00Z\n# public key: ${ra}\n${a.identityStrings[0]}\n# created: 2025-01-01T00:00:00Z\n# public key: ${rb}\n${b.identityStrings[0]}\n`;
    const { text: kept, removed } = await identityFileWithout(text, new Set([rb!]));
    expect(removed).toBe(1);
    expect(kept).toBe(`# created: 2026-01-01T00:00:00Z\n# public key: ${ra}\n${a.identityStrings[0]}\n`);
    expect(kept).not.toContain(b.identityStrings[0]!);
    await expect(identityFileWithout('AGE-SECRET-KEY-1NOTAKEY\n', new Set())).rejects.toThrow(/line 1: malformed age secret key$/);
  });

  it('the current identity is the first: new data is sealed to it only', async () => {
    const a = await makeKeys('x25519');
    const b = await makeKeys('x25519');
    const both = AgeIdentities.merge(a.identities, b.identities);
    expect(await both.currentRecipients()).toEqual(await a.identities.recipients());
    const rest = await both.select((_, i) => i > 0);
    expect(await rest!.recipients()).toEqual(await b.identities.recipients());
  });
});
