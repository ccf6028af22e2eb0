/**
 * Snapshot manifests: the signed record that makes a snapshot exist.
 *
 * The plaintext of `snapshots/<id>` (itself an age file) is an envelope:
 *
 *     lifeline-manifest v1
 *     signer <keyId>
 *     signature <base64 Ed25519 signature over the body bytes>
 *     <empty line>
 *     <body: one JSON object>
 *
 * The snapshot id is the hex SHA-256 of the body bytes, so a manifest cannot be
 * renamed onto another id, and the signature binds the body to a trusted key.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { IntegrityError } from './errors';
import { verifySignature, type SigningKey } from './crypto/signing';

export const ASSET_KINDS = ['model', 'dataset', 'checkpoint', 'platform-config'] as const;
export type AssetKind = (typeof ASSET_KINDS)[number];

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const SnapshotStatsSchema = z
  .object({
    files: z.number().int().nonnegative(),
    dirs: z.number().int().nonnegative(),
    symlinks: z.number().int().nonnegative(),
    /** plaintext bytes of all files in the snapshot */
    totalBytes: z.number().int().nonnegative(),
    /** bytes actually read and hashed (files unchanged since the parent are not read) */
    readBytes: z.number().int().nonnegative(),
    /** plaintext bytes of new blobs stored by this backup */
    newBytes: z.number().int().nonnegative(),
    newBlobs: z.number().int().nonnegative(),
    /** ciphertext bytes uploaded (packs and indexes) */
    uploadedBytes: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
  })
  .strict();
export type SnapshotStats = z.infer<typeof SnapshotStatsSchema>;

export const ManifestBodySchema = z
  .object({
    format: z.literal('lifeline-snapshot'),
    version: z.literal(1),
    repositoryId: z.string().regex(/^[0-9a-f]{32}$/),
    asset: z
      .object({
        name: z.string().min(1),
        kind: z.enum(ASSET_KINDS),
        tenant: z.string().min(1),
        node: z.string().optional(),
      })
      .strict(),
    labels: z.record(z.string(), z.string()),
    startedAt: z.string().datetime(),
    time: z.string().datetime(),
    hostname: z.string(),
    parent: hex64.nullable(),
    /** tree blob ids, in order; concatenated they give every entry sorted by path */
    tree: z.array(hex64),
    stats: SnapshotStatsSchema,
  })
  .strict();
export type ManifestBody = z.infer<typeof ManifestBodySchema>;

export interface SignedManifest {
  id: string;
  signer: string;
  body: ManifestBody;
}

const MAGIC = 'lifeline-manifest v1';

export function encodeManifest(body: ManifestBody, key: SigningKey): { id: string; bytes: Buffer } {
  const bodyBytes = Buffer.from(JSON.stringify(body), 'utf8');
  const signature = key.sign(bodyBytes);
  const head = `${MAGIC}\nsigner ${key.keyId}\nsignature ${signature}\n\n`;
  return { id: sha256Hex(bodyBytes), bytes: Buffer.concat([Buffer.from(head, 'utf8'), bodyBytes]) };
}

/**
 * Parses and authenticates a decrypted manifest. Checks, in this order and
 * before anything else uses it: the envelope, that the signer is trusted, the
 * signature, that the body hashes to the expected id, and the body's schema.
 */
export function decodeManifest(
  bytes: Buffer,
  expectedId: string,
  trustedSigners: ReadonlyMap<string, string>,
): SignedManifest {
  const where = `snapshot ${expectedId}`;
  const sep = bytes.indexOf('\n\n');
  if (sep < 0) throw new IntegrityError(`${where}: manifest envelope is malformed`);
  const head = bytes.subarray(0, sep).toString('utf8').split('\n');
  const bodyBytes = bytes.subarray(sep + 2);
  if (head[0] !== MAGIC) throw new IntegrityError(`${where}: not a lifeline manifest (bad magic line)`);
  const signer = head[1]?.startsWith('signer ') ? head[1].slice(7) : undefined;
  const signature = head[2]?.startsWith('signature ') ? head[2].slice(10) : undefined;
  if (!signer || !signature || head.length !== 3) throw new IntegrityError(`${where}: manifest envelope is malformed`);
  const publicKey = trustedSigners.get(signer);
  if (publicKey === undefined) {
    throw new IntegrityError(`${where}: signed by untrusted key ${signer}; refusing to use it`);
  }
  if (!verifySignature(publicKey, bodyBytes, signature)) {
    throw new IntegrityError(`${where}: manifest signature is invalid (tampered or corrupt)`);
  }
  if (sha256Hex(bodyBytes) !== expectedId) {
    throw new IntegrityError(`${where}: manifest content does not match its id`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(bodyBytes.toString('utf8'));
  } catch {
    throw new IntegrityError(`${where}: manifest body is not valid JSON`);
  }
  const parsed = ManifestBodySchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new IntegrityError(`${where}: manifest field ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return { id: expectedId, signer, body: parsed.data };
}

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
