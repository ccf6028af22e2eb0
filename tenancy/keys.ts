/**
 * Tenant key management: creating a tenant's identity and signing key (files
 * with owner-only permissions) and initialising its repository.
 */
import { access } from 'node:fs/promises';
import type { LoadedConfig } from '../config/load';
import { resolveFromRoot } from '../config/root';
import { UserError } from '../config/errors';
import { resolveStorage } from '../config/storage';
import { S3ObjectStore, S3StorageError } from '../engine/backend/s3';
import { durationMs } from '../config/platform';
import { generateAgeIdentityFile, writeSecretFile } from '../engine/crypto/key-files';
import { SigningKey } from '../engine/crypto/signing';
import { Repository } from '../engine/repository';
import { loadTenantIdentities, loadTenantSigningKey, tenantConfig, tenantLocation, tenantStore } from './repositories';

export type IdentityKind = 'hybrid' | 'x25519';

export interface TenantKeysSummary {
  tenant: string;
  /** public recipients new data is encrypted to (the current identity's) */
  recipients: string[];
  /** older identities' recipients, kept only to read data written before a rotation */
  readOnlyRecipients: string[];
  signingKeyId: string;
  identityFile: string | null;
  signingKeyFile: string | null;
  repository: string;
  initialised: boolean;
  created: { identity: boolean; signingKey: boolean; repository: boolean };
  /** committed objects are locked (the bucket has Object Lock and storage.objectLock.mode is not none); unknown in listings */
  objectLock?: boolean;
}

export const exists = async (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

export function filePath(config: LoadedConfig, tenant: string, key: 'identity' | 'signingKey', op: 'init' | 'rotate' | 'revoke' = 'init'): string {
  const ref = tenantConfig(config, tenant)[key];
  if (!('file' in ref)) {
    throw new UserError(
      op === 'init'
        ? `tenants.${tenant}.${key} is an environment variable; \`lifeline keys init\` writes files, so reference a file ({ file: … }) or create the key yourself`
        : `tenants.${tenant}.${key} is an environment variable; \`lifeline keys ${op}\` has to rewrite the key file, so reference a file ({ file: … }) with owner-only permissions`,
    );
  }
  return resolveFromRoot(ref.file, config.source.root);
}

/**
 * Creates what is missing — identity file, signing key file, bucket,
 * repository — and never overwrites an existing key (that would make data
 * unreadable). Running it twice is harmless.
 */
export async function initTenant(config: LoadedConfig, tenant: string, opts: { kind?: IdentityKind } = {}): Promise<TenantKeysSummary> {
  const created = { identity: false, signingKey: false, repository: false };
  const identityFile = filePath(config, tenant, 'identity');
  const signingKeyFile = filePath(config, tenant, 'signingKey');
  if (!(await exists(identityFile))) {
    await writeSecretFile(identityFile, await generateAgeIdentityFile(opts.kind ?? 'hybrid'));
    created.identity = true;
  }
  if (!(await exists(signingKeyFile))) {
    await writeSecretFile(signingKeyFile, SigningKey.generate().toPem());
    created.signingKey = true;
  }
  const identities = await loadTenantIdentities(config, tenant);
  const signingKey = await loadTenantSigningKey(config, tenant);
  const storage = resolveStorage(config);
  const loc = tenantLocation(config, tenant, storage);
  const lockMode = config.storage.objectLock.mode;
  // New repository buckets get Object Lock (MinIO can only enable it at creation); an existing bucket is used as it is.
  await S3ObjectStore.ensureBucket({ ...storageOptions(storage), bucket: loc.bucket, prefix: loc.prefix, objectLock: lockMode !== 'none' }).catch((err: unknown) => {
    if (!(err instanceof S3StorageError && err.code === 'ObjectLockConfigurationNotFoundError')) throw err;
  });
  const store = tenantStore(storage, loc);
  const objectLock = lockMode !== 'none' && (await store.objectLockEnabled());
  const recipients = await identities.currentRecipients();
  if (!(await Repository.exists(store))) {
    const lock = objectLock ? { mode: lockMode === 'compliance' ? ('COMPLIANCE' as const) : ('GOVERNANCE' as const), retentionMs: durationMs(config.storage.objectLock.retention) } : undefined;
    await Repository.init(store, { recipients, signingKey, lock });
    created.repository = true;
  } else {
    // Prove the keys open the existing repository before saying all is well.
    await Repository.open(store, { identities, signingKey });
  }
  const readOnlyRecipients = (await identities.recipients()).slice(1);
  return { tenant, recipients, readOnlyRecipients, signingKeyId: signingKey.keyId, identityFile, signingKeyFile, repository: store.location, initialised: true, created, objectLock };
}

/** What each tenant has, without changing anything. */
export async function listTenantKeys(config: LoadedConfig): Promise<TenantKeysSummary[]> {
  const storage = resolveStorage(config);
  const out: TenantKeysSummary[] = [];
  for (const tenant of Object.keys(config.tenants)) {
    const t = tenantConfig(config, tenant);
    const identityFile = 'file' in t.identity ? resolveFromRoot(t.identity.file, config.source.root) : null;
    const signingKeyFile = 'file' in t.signingKey ? resolveFromRoot(t.signingKey.file, config.source.root) : null;
    const store = tenantStore(storage, tenantLocation(config, tenant, storage));
    let recipients: string[] = [];
    let readOnlyRecipients: string[] = [];
    let signingKeyId = '';
    if (!identityFile || (await exists(identityFile))) {
      const all = await (await loadTenantIdentities(config, tenant)).recipients();
      recipients = all.slice(0, 1);
      readOnlyRecipients = all.slice(1);
    }
    if (!signingKeyFile || (await exists(signingKeyFile))) signingKeyId = (await loadTenantSigningKey(config, tenant)).keyId;
    out.push({
      tenant,
      recipients,
      readOnlyRecipients,
      signingKeyId,
      identityFile,
      signingKeyFile,
      repository: store.location,
      initialised: await Repository.exists(store),
      created: { identity: false, signingKey: false, repository: false },
    });
  }
  return out;
}

function storageOptions(storage: ReturnType<typeof resolveStorage>) {
  return {
    endpoint: storage.endpoint,
    region: storage.region,
    forcePathStyle: storage.forcePathStyle,
    credentials: storage.credentials,
  };
}
