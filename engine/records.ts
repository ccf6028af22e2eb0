/**
 * Signed records: small, immutable facts stored next to snapshots —
 * verification results, legal holds, quarantine marks (FORMAT.md, "Records").
 *
 * A record is an age file (it may name file paths) whose plaintext is an
 * envelope like a manifest's:
 *
 *     lifeline-record v1
 *     signer <keyId>
 *     signature <base64 Ed25519 signature over the body bytes>
 *     <empty line>
 *     <body: one JSON object with a `format` field>
 *
 * Anyone with write access to the bucket can plant an object, so a record is
 * believed only when it decrypts with the tenant's identity, is signed by one
 * of the repository's signers and its body names the repository and the key it
 * is stored under. Anything else is reported as a warning and ignored — never
 * trusted, never fatal (a planted object must not stop verification or
 * retention).
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { z } from 'zod';
import { ObjectNotFoundError } from './backend/object-store';
import { sealBytes } from './crypto/age';
import { AgeAuthError, AgeFormatError, AgeHeaderIncompleteError, AgeNoIdentityMatchError } from './crypto/errors';
import { verifySignature } from './crypto/signing';
import { RepositoryStateError } from './errors';
import type { Repository } from './repository';

const MAGIC = 'lifeline-record v1';

/** Why a stored object was not accepted as a record. */
export interface RecordWarning {
  key: string;
  reason: string;
}

export type RecordWarningSink = (w: RecordWarning) => void;

export interface StoredRecord<T> {
  key: string;
  signer: string;
  body: T;
}

/** `2026-11-26T07-02-41-123Z-<8 hex>`: sorts by time, unique without coordination. */
export function recordName(time: Date): string {
  return `${time.toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
}

/** Envelope bytes of a record body signed with the repository's signing key. */
export function encodeRecord(body: object, sign: (data: Uint8Array) => string, keyId: string): Buffer {
  const bodyBytes = Buffer.from(JSON.stringify(body), 'utf8');
  const head = `${MAGIC}\nsigner ${keyId}\nsignature ${sign(bodyBytes)}\n\n`;
  return Buffer.concat([Buffer.from(head, 'utf8'), bodyBytes]);
}

/** Signs, encrypts and stores a record under a key that must not exist yet. */
export async function writeRecord(repo: Repository, key: string, body: object): Promise<void> {
  const signer = repo.signingKey;
  if (!signer) throw new RepositoryStateError('a signing key is needed to write records');
  const bytes = encodeRecord(body, (d) => signer.sign(d), signer.keyId);
  await repo.store.put(key, await sealBytes(bytes, repo.recipients), { ifNoneMatch: true, contentType: 'application/octet-stream', ...repo.lockOptions() });
}

/** The repository's signers (config.signers): the only keys whose records are believed. */
function trustedSigners(repo: Repository): Map<string, string> {
  return new Map(repo.config.signers.map((s) => [s.keyId, s.publicKey]));
}

/**
 * Decrypts and authenticates one record. Returns a reason instead of throwing
 * when the object is not a trustworthy record of this repository.
 */
export function decodeRecord<T>(
  plain: Buffer,
  trusted: ReadonlyMap<string, string>,
  schema: z.ZodType<T>,
): { ok: true; signer: string; body: T } | { ok: false; reason: string } {
  const sep = plain.indexOf('\n\n');
  if (sep < 0) return { ok: false, reason: 'record envelope is malformed' };
  const head = plain.subarray(0, sep).toString('utf8').split('\n');
  const bodyBytes = plain.subarray(sep + 2);
  if (head[0] !== MAGIC) return { ok: false, reason: 'not a lifeline record (bad magic line)' };
  const signer = head[1]?.startsWith('signer ') ? head[1].slice(7) : undefined;
  const signature = head[2]?.startsWith('signature ') ? head[2].slice(10) : undefined;
  if (!signer || !signature || head.length !== 3) return { ok: false, reason: 'record envelope is malformed (unsigned?)' };
  const publicKey = trusted.get(signer);
  if (publicKey === undefined) return { ok: false, reason: `signed by untrusted key ${signer}` };
  if (!verifySignature(publicKey, bodyBytes, signature)) return { ok: false, reason: 'signature is invalid (tampered or forged)' };
  let raw: unknown;
  try {
    raw = JSON.parse(bodyBytes.toString('utf8'));
  } catch {
    return { ok: false, reason: 'record body is not valid JSON' };
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { ok: false, reason: `record field ${issue.path.join('.') || '(root)'}: ${issue.message}` };
  }
  return { ok: true, signer, body: parsed.data };
}

export interface ReadRecordsOptions<T> {
  schema: z.ZodType<T>;
  /** Checks that bind the body to where it is stored (repository id, snapshot id in the key, …). */
  belongs: (key: string, body: T) => string | null;
  onWarning?: RecordWarningSink;
  /** Only keys this returns true for are read (cheap filtering on names before decrypting). */
  filterKey?: (key: string) => boolean;
}

/** Every trustworthy record under `prefix`, in key order; everything else goes to `onWarning`. */
export async function readRecords<T>(repo: Repository, prefix: string, opts: ReadRecordsOptions<T>): Promise<Array<StoredRecord<T>>> {
  const trusted = trustedSigners(repo);
  const out: Array<StoredRecord<T>> = [];
  const warn = (key: string, reason: string) => opts.onWarning?.({ key, reason });
  const keys: string[] = [];
  for await (const obj of repo.store.list(prefix)) if (!opts.filterKey || opts.filterKey(obj.key)) keys.push(obj.key);
  // Small objects, one GET each: read several at once, keep key order in the result.
  const limit = pLimit(8);
  const read = await Promise.all(
    keys.map((key) =>
      limit(async (): Promise<StoredRecord<T> | null> => {
        let plain: Buffer;
        try {
          plain = await repo.openObject(key);
        } catch (err) {
          // Deleted between list and get (a concurrent forget): it no longer exists.
          if (err instanceof ObjectNotFoundError) return null;
          // Only a bad object is ignored. A storage failure must not make a hold look absent: let it fail.
          if (!isCryptoError(err)) throw err;
          warn(key, `cannot be decrypted with the tenant's identity: ${(err as Error).message}`);
          return null;
        }
        const r = decodeRecord(plain, trusted, opts.schema);
        if (!r.ok) {
          warn(key, r.reason);
          return null;
        }
        const mismatch = opts.belongs(key, r.body);
        if (mismatch) {
          warn(key, mismatch);
          return null;
        }
        return { key, signer: r.signer, body: r.body };
      }),
    ),
  );
  for (const r of read) if (r) out.push(r);
  return out;
}

/** An object that is not a readable age file for these identities (as opposed to a storage failure). */
export function isCryptoError(err: unknown): boolean {
  return err instanceof AgeFormatError || err instanceof AgeAuthError || err instanceof AgeNoIdentityMatchError || err instanceof AgeHeaderIncompleteError;
}
