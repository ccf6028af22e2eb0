/**
 * The audit log of an installation, from its configuration: bucket, origin,
 * signing key, trusted keys and Object Lock settings (`audit` section), and
 * `lifeline audit init`. The signing key is read from its file or variable and
 * never leaves this process; trust comes from the config, never from the bucket.
 */
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { durationMs } from '../config/platform';
import { resolveFromRoot } from '../config/root';
import { readSecret } from '../config/secrets';
import { resolveRoleStorage, resolveStorage, type ResolvedStorage } from '../config/storage';
import type { SecretRef } from '../config/secret-ref';
import { GetObjectCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { S3ObjectStore } from '../engine/backend/s3';
import { writeSecretFile } from '../engine/crypto/key-files';
import { SigningKey } from '../engine/crypto/signing';
import { NoteError, parseVerifierKey, verifierKey } from './checkpoint';
import { AuditLog, type AuditLock, type ObjectVersions } from './log';

export interface ResolvedAudit {
  bucket: string;
  /** key prefix of the log inside the bucket, without a trailing slash */
  prefix: string;
  origin: string;
  lockMode: 'governance' | 'compliance' | 'none';
  lock: AuditLock | null;
  retention: string;
  signingKey: SecretRef;
  /** the signing key's file, when it is one */
  signingKeyFile: string | null;
  /** base64 raw Ed25519 public keys from audit.publicKeys */
  publicKeys: string[];
}

const DEFAULT_KEY_FILE = 'keys/audit-signing.pem';

export function resolveAudit(config: LoadedConfig): ResolvedAudit {
  const a = config.audit;
  const bucket = a.bucket ?? `${config.storage.bucket}-audit`;
  if (bucket.length > 63) {
    throw new UserError(`the default audit bucket name ${bucket} is longer than 63 characters; set audit.bucket`);
  }
  const origin = a.origin ?? `lifeline-audit/${bucket}`;
  const base = config.storage.prefix.replace(/^\/+|\/+$/g, '');
  const signingKey: SecretRef = a.signingKey ?? { file: join(config.devstack.dataDir, DEFAULT_KEY_FILE) };
  const publicKeys = a.publicKeys.map((k, i) => {
    if (/^[A-Za-z0-9+/]{43}=$/.test(k)) return k; // a raw base64 key (it may contain '+'); else a verifier key
    try {
      const v = parseVerifierKey(k);
      if (v.name !== origin) throw new UserError(`audit.publicKeys[${i}]: verifier key is for ${v.name}, but this log's origin is ${origin}`);
      return v.publicKey;
    } catch (err) {
      if (err instanceof NoteError) throw new UserError(`audit.publicKeys[${i}]: ${err.message}`);
      throw err;
    }
  });
  return {
    bucket,
    prefix: base ? `${base}/audit` : 'audit',
    origin,
    lockMode: a.lockMode,
    lock: a.lockMode === 'none' ? null : { mode: a.lockMode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', retentionMs: durationMs(a.retention) },
    retention: a.retention,
    signingKey,
    signingKeyFile: 'file' in signingKey ? resolveFromRoot(signingKey.file, config.source.root) : null,
    publicKeys,
  };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/**
 * The audit signing key. With `optional`, a missing key file gives null (a
 * host that only verifies, with audit.publicKeys); otherwise it is an error
 * that says how to create it.
 */
export async function loadAuditSigningKey(config: LoadedConfig, opts: { optional?: boolean } = {}): Promise<SigningKey | null> {
  const a = resolveAudit(config);
  const where = 'audit.signingKey';
  if (a.signingKeyFile) {
    if (opts.optional && !(await exists(a.signingKeyFile))) return null;
    try {
      return await SigningKey.fromFile(a.signingKeyFile);
    } catch (err) {
      const missing = /not found/.test((err as Error).message);
      throw new UserError(`${where}: ${(err as Error).message}${missing ? ' (create it with `lifeline audit init`)' : ''}`, { cause: err });
    }
  }
  const env = (a.signingKey as { env: string }).env;
  if (opts.optional && !process.env[env]) return null;
  const pem = readSecret(a.signingKey, { source: config.source.file ?? 'built-in defaults', path: where, root: config.source.root });
  // SigningKey reads PEM files: keep the variable's content in a private temporary file only as long as needed.
  const dir = await mkdtemp(join(tmpdir(), 'lifeline-audit-key-'));
  try {
    await writeFile(join(dir, 'key.pem'), pem, { mode: 0o600 });
    return await SigningKey.fromFile(join(dir, 'key.pem'));
  } catch (err) {
    throw new UserError(`${where}: ${(err as Error).message.replace(join(dir, 'key.pem'), `environment variable ${env}`)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function auditStore(storage: ResolvedStorage, audit: ResolvedAudit, logger?: { warn(obj: object, msg: string): void }): S3ObjectStore {
  return new S3ObjectStore({
    endpoint: storage.endpoint,
    region: storage.region,
    bucket: audit.bucket,
    prefix: audit.prefix,
    forcePathStyle: storage.forcePathStyle,
    credentials: storage.credentials,
    logger,
  });
}

/** Versions of the log's objects in its S3 bucket (ListObjectVersions / GetObject by version). */
export function s3Versions(store: S3ObjectStore): ObjectVersions {
  return {
    async list(key) {
      const Key = store.objectKey(key);
      const out: Array<{ versionId: string; latest: boolean; deleteMarker: boolean; time: number }> = [];
      let KeyMarker: string | undefined;
      let VersionIdMarker: string | undefined;
      do {
        const res = await store.client.send(new ListObjectVersionsCommand({ Bucket: store.bucket, Prefix: Key, KeyMarker, VersionIdMarker }));
        for (const v of res.Versions ?? []) if (v.Key === Key && v.VersionId) out.push({ versionId: v.VersionId, latest: !!v.IsLatest, deleteMarker: false, time: v.LastModified?.getTime() ?? 0 });
        for (const d of res.DeleteMarkers ?? []) if (d.Key === Key && d.VersionId) out.push({ versionId: d.VersionId, latest: !!d.IsLatest, deleteMarker: true, time: d.LastModified?.getTime() ?? 0 });
        [KeyMarker, VersionIdMarker] = res.IsTruncated ? [res.NextKeyMarker, res.NextVersionIdMarker] : [undefined, undefined];
      } while (KeyMarker);
      return out.sort((a, b) => b.time - a.time).map(({ time: _, ...v }) => v);
    },
    async get(key, versionId) {
      const res = await store.client.send(new GetObjectCommand({ Bucket: store.bucket, Key: store.objectKey(key), VersionId: versionId }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
  };
}

export interface OpenAuditOptions {
  logger?: { warn(obj: object, msg: string): void };
  storage?: ResolvedStorage;
  /** only reading and verifying: the signing key may be absent (default false: it is required) */
  readOnly?: boolean;
}

/** The installation's audit log (an AuditSink). */
export async function openAuditLog(config: LoadedConfig, opts: OpenAuditOptions = {}): Promise<AuditLog> {
  const a = resolveAudit(config);
  const key = await loadAuditSigningKey(config, { optional: opts.readOnly });
  if (!key && a.publicKeys.length === 0) {
    throw new UserError(
      `no audit key: ${a.signingKeyFile ? `${a.signingKeyFile} does not exist` : 'audit.signingKey is not set'} and audit.publicKeys is empty; run \`lifeline audit init\` or configure the public keys to verify with`,
    );
  }
  // The audit writer's own credentials (append only), not the admin's.
  const storage = opts.storage ?? resolveRoleStorage(config, 'audit');
  const store = auditStore(storage, a, opts.logger);
  return new AuditLog({
    store,
    versions: a.lockMode === 'none' ? undefined : s3Versions(store),
    origin: a.origin,
    signingKey: key ?? undefined,
    trustedKeys: a.publicKeys,
    lock: a.lock,
    logger: opts.logger,
  });
}

export interface AuditInitSummary {
  location: string;
  bucket: string;
  origin: string;
  lockMode: ResolvedAudit['lockMode'];
  retention: string;
  signingKeyFile: string | null;
  keyId: string;
  publicKey: string;
  /** C2SP verifier key, for audit.publicKeys of other hosts and for signed-note tools */
  verifierKey: string;
  created: { keyFile: boolean; log: boolean };
}

/**
 * Creates what is missing — the signing key file (owner-only), the bucket
 * (with Object Lock unless lockMode is none), the log's first entry — and
 * never overwrites a key. Running it twice is harmless.
 */
export async function initAudit(config: LoadedConfig, opts: { logger?: { warn(obj: object, msg: string): void }; actor?: string } = {}): Promise<AuditInitSummary> {
  const a = resolveAudit(config);
  const created = { keyFile: false, log: false };
  if (a.signingKeyFile && !(await exists(a.signingKeyFile))) {
    await writeSecretFile(a.signingKeyFile, SigningKey.generate().toPem());
    created.keyFile = true;
  }
  const key = (await loadAuditSigningKey(config))!;
  const storage = resolveStorage(config);
  await S3ObjectStore.ensureBucket({
    endpoint: storage.endpoint,
    region: storage.region,
    bucket: a.bucket,
    prefix: '',
    forcePathStyle: storage.forcePathStyle,
    credentials: storage.credentials,
    objectLock: a.lockMode !== 'none',
  });
  const log = await openAuditLog(config, { logger: opts.logger, storage });
  let empty = true;
  for await (const _ of log.store.list('entries/')) {
    empty = false;
    break;
  }
  if (empty) {
    await log.append({
      type: 'audit',
      action: 'initialised',
      outcome: 'success',
      actor: { kind: 'user', id: opts.actor ?? safeUserName() },
      details: { keyId: key.keyId, lockMode: a.lockMode, retention: a.retention },
    });
    created.log = true;
  }
  return {
    location: log.store.location,
    bucket: a.bucket,
    origin: a.origin,
    lockMode: a.lockMode,
    retention: a.retention,
    signingKeyFile: a.signingKeyFile,
    keyId: key.keyId,
    publicKey: key.publicKey,
    verifierKey: verifierKey(a.origin, key.publicKey),
    created,
  };
}

/** The OS user running this process (for actor ids of CLI commands). */
export function safeUserName(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return process.env.USER || 'unknown';
  }
}
