/**
 * Re-encrypting a repository's objects after a key rotation or revocation
 * (FORMAT.md, "Key rotation and revocation"). No Temporal imports.
 *
 * Every function here looks at what is stored and rewrites only what still
 * needs it, so an interrupted run is finished by running it again.
 *
 * - Metadata (manifests, records, index objects) is small: it is decrypted,
 *   re-signed with the current signing key where it is signed, and sealed to
 *   the current recipients. Manifests and records keep their keys (a
 *   snapshot id is the hash of the manifest *body*, which does not change);
 *   an index object is named by the hash of its ciphertext, so it gets a new
 *   name and the old one is deleted.
 * - Packs are named by the hash of their ciphertext, header included, so a
 *   pack sealed to other recipients is a new object with a new id: it is
 *   downloaded, decrypted and encrypted again under a fresh file key (the old
 *   file key is known to whoever holds the revoked identity), indexed, and
 *   only then is the old pack deleted. Blob ids do not change, so manifests
 *   and trees stay valid.
 */
import { createHash } from 'node:crypto';
import { ObjectNotFoundError } from './backend/object-store';
import { parseAgeHeaderLength, sealBytes, unwrapFileKey, type AgeIdentities } from './crypto/age';
import { AgeNoIdentityMatchError } from './crypto/errors';
import { verifySignature, type SigningKey } from './crypto/signing';
import { IntegrityError, RepositoryStateError } from './errors';
import { decodeIndex, type PackRecord } from './index';
import { sha256Hex } from './manifest';
import { isCryptoError } from './records';
import { keys, type Repository } from './repository';

export interface RekeyProgress {
  phase: 'manifests' | 'records' | 'indexes' | 'packs';
  done: number;
  total: number;
}

export interface RekeyWarning {
  key: string;
  reason: string;
}

export interface RewrapOptions {
  /** Anything these identities open is sealed again to the repository's current recipients. */
  stale: AgeIdentities | null;
  /** Every manifest and record not signed by this key is re-signed with it (after its old signature verified). */
  signingKey: SigningKey;
  onProgress?: (p: RekeyProgress) => void;
  onWarning?: (w: RekeyWarning) => void;
}

export interface RewrapReport {
  manifests: number;
  records: number;
  indexes: number;
  /** objects that already were sealed to the current recipients and signed by the current key */
  unchanged: number;
  /** objects left alone because they are not trustworthy (untrusted signer, bad signature, undecryptable) */
  skipped: RekeyWarning[];
}

/** Prefixes of signed records (FORMAT.md, "Records"; Model BOMs are records too, "Model BOM"). */
const RECORD_PREFIXES = ['verifications/', 'holds/', 'quarantine/', 'bom/'] as const;
const MANIFEST_MAGIC = 'lifeline-manifest v1';
const RECORD_MAGIC = 'lifeline-record v1';

/** Does an age file (or its header) open with these identities? Only the header is used. */
export async function opensWith(data: Uint8Array, ids: AgeIdentities | null): Promise<boolean> {
  if (!ids) return false;
  const len = parseAgeHeaderLength(data);
  try {
    (await unwrapFileKey(data.subarray(0, len), ids)).fill(0);
    return true;
  } catch (err) {
    if (err instanceof AgeNoIdentityMatchError) return false;
    throw err;
  }
}

/**
 * The envelope (manifest or record) signed by `key`, keeping the body bytes
 * exactly. Refuses to re-sign anything whose current signature is not by a
 * trusted signer: re-signing must never launder a planted object.
 */
export function resignEnvelope(
  plain: Buffer,
  magic: string,
  trusted: ReadonlyMap<string, string>,
  key: SigningKey,
  expectBodySha256?: string,
): { bytes: Buffer; changed: boolean } | { error: string } {
  const sep = plain.indexOf('\n\n');
  if (sep < 0) return { error: 'envelope is malformed' };
  const head = plain.subarray(0, sep).toString('utf8').split('\n');
  const body = plain.subarray(sep + 2);
  if (head[0] !== magic || head.length !== 3) return { error: `not a ${magic.split(' ')[0]} envelope` };
  const signer = head[1]?.startsWith('signer ') ? head[1].slice(7) : undefined;
  const signature = head[2]?.startsWith('signature ') ? head[2].slice(10) : undefined;
  if (!signer || !signature) return { error: 'envelope is malformed (unsigned?)' };
  const publicKey = trusted.get(signer);
  if (publicKey === undefined) return { error: `signed by untrusted key ${signer}` };
  if (!verifySignature(publicKey, body, signature)) return { error: 'signature is invalid (tampered or forged)' };
  if (expectBodySha256 !== undefined && sha256Hex(body) !== expectBodySha256) return { error: 'body does not hash to its id' };
  if (signer === key.keyId) return { bytes: plain, changed: false };
  const newHead = Buffer.from(`${magic}\nsigner ${key.keyId}\nsignature ${key.sign(body)}\n\n`, 'utf8');
  return { bytes: Buffer.concat([newHead, body]), changed: true };
}

async function listKeys(repo: Repository, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of repo.store.list(prefix)) out.push(o.key);
  return out;
}

async function getOrNull(repo: Repository, key: string): Promise<Buffer | null> {
  try {
    return await repo.store.get(key);
  } catch (err) {
    if (err instanceof ObjectNotFoundError) return null; // forgotten meanwhile
    throw err;
  }
}

/**
 * Seals every manifest, record and index object to the repository's current
 * recipients when `stale` opens it, and re-signs every manifest and record
 * not signed by `signingKey`. The repository must have been opened with the
 * current recipients and with identities that open everything (old and new).
 */
export async function rewrapMetadata(repo: Repository, opts: RewrapOptions): Promise<RewrapReport> {
  const report: RewrapReport = { manifests: 0, records: 0, indexes: 0, unchanged: 0, skipped: [] };
  const skip = (key: string, reason: string) => {
    report.skipped.push({ key, reason });
    opts.onWarning?.({ key, reason });
  };
  const trusted = repo.trustedSigners;

  const envelopes = async (phase: 'manifests' | 'records', list: string[], magic: string) => {
    let done = 0;
    for (const key of list) {
      opts.onProgress?.({ phase, done: done++, total: list.length });
      const sealed = await getOrNull(repo, key);
      if (!sealed) continue;
      let plain: Buffer;
      try {
        plain = await repo.openSealed(sealed);
      } catch (err) {
        if (!isCryptoError(err)) throw err;
        skip(key, `cannot be decrypted with the tenant's identities: ${(err as Error).message}`);
        continue;
      }
      const id = phase === 'manifests' ? key.slice('snapshots/'.length) : undefined;
      const r = resignEnvelope(plain, magic, trusted, opts.signingKey, id);
      if ('error' in r) {
        skip(key, r.error);
        continue;
      }
      if (!r.changed && !(await opensWith(sealed, opts.stale))) {
        report.unchanged++;
        continue;
      }
      // Same key, new content: the snapshot or record keeps its name. With Object Lock the old version stays retained.
      await repo.store.put(key, await sealBytes(r.bytes, repo.recipients), { contentType: 'application/octet-stream', ...repo.lockOptions() });
      report[phase]++;
    }
    opts.onProgress?.({ phase, done, total: list.length });
  };

  await envelopes('manifests', await listKeys(repo, 'snapshots/'), MANIFEST_MAGIC);
  const records: string[] = [];
  for (const prefix of RECORD_PREFIXES) records.push(...(await listKeys(repo, prefix)));
  await envelopes('records', records, RECORD_MAGIC);

  const indexKeys = await listKeys(repo, 'index/');
  let done = 0;
  for (const key of indexKeys) {
    opts.onProgress?.({ phase: 'indexes', done: done++, total: indexKeys.length });
    const sealed = await getOrNull(repo, key);
    if (!sealed) continue;
    if (!(await opensWith(sealed, opts.stale))) {
      report.unchanged++;
      continue;
    }
    const oldId = key.slice('index/'.length);
    if (sha256Hex(sealed) !== oldId) throw new IntegrityError(`${repo.store.location}/${key}: content does not match its name (corrupt or replaced); not re-encrypting it`);
    const packs = decodeIndex(await repo.openSealed(sealed), `${repo.store.location}/${key}`);
    // New object first, then drop the old one: readers always find every pack in some index.
    await repo.writeIndex(packs);
    await repo.store.delete(key);
    repo.forgetIndexFiles([oldId]);
    report.indexes++;
  }
  opts.onProgress?.({ phase: 'indexes', done, total: indexKeys.length });
  return report;
}

export interface ReencryptOptions {
  /** Packs these identities open are encrypted again to the current recipients. */
  stale: AgeIdentities;
  signal?: AbortSignal;
  onProgress?: (p: RekeyProgress & { bytes: number }) => void;
  /** Packs per new index object. */
  packsPerIndex?: number;
}

export interface ReencryptReport {
  packsChecked: number;
  packsReencrypted: number;
  bytesReencrypted: number;
  /** unindexed packs (left by an interrupted earlier run) that the stale identities open: deleted */
  orphansDeleted: number;
  indexesReplaced: number;
}

/**
 * Encrypts every pack `stale` opens again, to the repository's current
 * recipients under a fresh file key, and removes the old ones — crash-safe:
 *
 *   1. each new pack is stored (conditional create, SHA-256 checksum), its
 *      size checked with HEAD, and indexed (an index object every few packs);
 *   2. index objects listing old packs are replaced by ones without them;
 *   3. only then are the old packs deleted.
 *
 * An interrupted run leaves old packs either still indexed (redone next run)
 * or unindexed (deleted next run); a blob may meanwhile be in two packs,
 * which every reader accepts. The caller holds the repository's lease and
 * has waited for older backups (tenancy/keys.ts).
 */
export async function reencryptPacks(repo: Repository, opts: ReencryptOptions): Promise<ReencryptReport> {
  const report: ReencryptReport = { packsChecked: 0, packsReencrypted: 0, bytesReencrypted: 0, orphansDeleted: 0, indexesReplaced: 0 };
  await repo.loadIndex();
  const packKeys = await listKeys(repo, 'data/');
  const replaced = new Map<string, PackRecord>();
  let pending: PackRecord[] = [];
  const perIndex = opts.packsPerIndex ?? 16;
  for (const key of packKeys) {
    opts.signal?.throwIfAborted();
    opts.onProgress?.({ phase: 'packs', done: report.packsChecked, total: packKeys.length, bytes: report.bytesReencrypted });
    report.packsChecked++;
    const packId = key.slice(key.lastIndexOf('/') + 1);
    const rec = repo.packRecord(packId);
    if (!rec) {
      // Not in any index: a leftover of an interrupted revocation (its copy was indexed) — or a pack
      // a backup stored a moment ago and is about to index, which is sealed to the current recipients.
      const head = await repo.store.get(key, { start: 0, end: 64 * 1024 - 1 }).catch((err: unknown) => {
        if (err instanceof ObjectNotFoundError) return null;
        throw err;
      });
      if (head && (await opensWith(head, opts.stale))) {
        await repo.store.delete(key);
        report.orphansDeleted++;
      }
      continue;
    }
    const head = await repo.store.get(key, { start: 0, end: rec.headerBytes + 16 - 1 });
    if (!(await opensWith(head, opts.stale))) continue;
    const sealed = await repo.store.get(key, undefined, opts.signal);
    if (sha256Hex(sealed) !== packId) {
      throw new IntegrityError(
        `pack ${packId} is corrupt (its content does not hash to its name); it was not re-encrypted and nothing was deleted. Find the snapshots that use it with \`lifeline verify <asset> --deep\`, forget or repair them, then run the revocation again`,
      );
    }
    const plain = await repo.openSealed(sealed);
    if (plain.length !== rec.plaintextBytes) throw new IntegrityError(`pack ${packId} decrypts to ${plain.length} bytes, its index says ${rec.plaintextBytes}`);
    const fresh = await sealBytes(plain, repo.recipients);
    plain.fill(0);
    const digest = createHash('sha256').update(fresh).digest();
    const newId = digest.toString('hex');
    await repo.putPack(newId, fresh, digest);
    const stored = await repo.store.head(keys.pack(newId));
    if (!stored || stored.size !== fresh.length) throw new RepositoryStateError(`re-encrypted pack ${newId} is not stored whole (HEAD: ${stored ? `${stored.size} bytes` : 'missing'}); run the revocation again`, false);
    const copy: PackRecord = { id: newId, ciphertextBytes: fresh.length, plaintextBytes: rec.plaintextBytes, headerBytes: parseAgeHeaderLength(fresh), blobs: rec.blobs };
    pending.push(copy);
    replaced.set(packId, copy);
    report.packsReencrypted++;
    report.bytesReencrypted += rec.plaintextBytes;
    if (pending.length >= perIndex) {
      await repo.writeIndex(pending);
      pending = [];
    }
  }
  if (pending.length > 0) await repo.writeIndex(pending);
  opts.onProgress?.({ phase: 'packs', done: report.packsChecked, total: packKeys.length, bytes: report.bytesReencrypted });

  // Index objects that list old packs are replaced by ones without them (as garbage collection's sweep does).
  report.indexesReplaced = (await repo.rewriteIndexWithout(new Set(replaced.keys()))).length;
  for (const packId of replaced.keys()) await repo.store.delete(keys.pack(packId));
  // Blobs that pointed at an old pack now point at its copy.
  repo.index.removePacks(replaced.keys());
  return report;
}
