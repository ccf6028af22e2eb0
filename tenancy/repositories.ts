/**
 * Opening a tenant's repository from configuration: its storage location
 * (bucket and prefix), its age identities and signing key. Secrets are read
 * from the files or variables the config references and never leave this
 * process: workflows only ever see tenant and asset names.
 */
import { stat } from 'node:fs/promises';
import type { LoadedConfig } from '../config/load';
import { resolveFromRoot } from '../config/root';
import { readSecret } from '../config/secrets';
import { resolveRoleStorage, resolveStorage, type ResolvedStorage } from '../config/storage';
import { durationMs } from '../config/platform';
import type { StorageRole } from './storage-roles';
import type { SecretRef } from '../config/secret-ref';
import { UserError } from '../config/errors';
import type { AssetConfig, TenantConfig } from '../config/platform';
import { S3ObjectStore } from '../engine/backend/s3';
import { AgeIdentities } from '../engine/crypto/age';
import { SigningKey } from '../engine/crypto/signing';
import { Repository, type ObjectLockPolicy, type TamperedObject } from '../engine/repository';
import { registerSecret } from '../logging/redact';

export interface TenantLocation {
  tenant: string;
  bucket: string;
  /** key prefix of the repository inside the bucket, ending in '/' */
  prefix: string;
}

export function tenantConfig(config: LoadedConfig, tenant: string): TenantConfig {
  const t = config.tenants[tenant];
  if (!t) {
    throw new UserError(`unknown tenant ${JSON.stringify(tenant)} (declared: ${Object.keys(config.tenants).join(', ') || 'none'})`);
  }
  return t;
}

export function assetConfig(config: LoadedConfig, asset: string): AssetConfig {
  const a = config.assets[asset];
  if (!a) throw new UserError(`unknown asset ${JSON.stringify(asset)} (declared: ${Object.keys(config.assets).join(', ') || 'none'})`);
  return a;
}

export function tenantLocation(config: LoadedConfig, tenant: string, storage: Pick<ResolvedStorage, 'bucket' | 'prefix'>): TenantLocation {
  const t = tenantConfig(config, tenant);
  const own = t.prefix ?? `tenants/${tenant}/`;
  const join = (a: string, b: string) => (a === '' ? b : `${a.replace(/\/+$/, '')}/${b.replace(/^\/+/, '')}`);
  return { tenant, bucket: storage.bucket, prefix: join(storage.prefix, own).replace(/\/?$/, '/') };
}

/** The tenant's age identities: from a file (owner-only permissions required) or an environment variable. */
export async function loadTenantIdentities(config: LoadedConfig, tenant: string): Promise<AgeIdentities> {
  const ref = tenantConfig(config, tenant).identity;
  const where = `tenants.${tenant}.identity`;
  if ('file' in ref) {
    try {
      return await AgeIdentities.fromFile(resolveFromRoot(ref.file, config.source.root));
    } catch (err) {
      throw new UserError(`${where}: ${(err as Error).message}${(err as NodeJS.ErrnoException).code === 'ENOENT' ? ` (create it with \`lifeline keys init ${tenant}\`)` : ''}`, { cause: err });
    }
  }
  const text = readSecret(ref, { source: config.source.file ?? 'built-in defaults', path: where, root: config.source.root });
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  for (const l of lines) registerSecret(l);
  return AgeIdentities.fromStrings(lines);
}

export async function loadTenantSigningKey(config: LoadedConfig, tenant: string): Promise<SigningKey> {
  const ref: SecretRef = tenantConfig(config, tenant).signingKey;
  const where = `tenants.${tenant}.signingKey`;
  if ('file' in ref) {
    const path = resolveFromRoot(ref.file, config.source.root);
    try {
      return await SigningKey.fromFile(path);
    } catch (err) {
      throw new UserError(`${where}: ${(err as Error).message}${(err as NodeJS.ErrnoException).code === 'ENOENT' ? ` (create it with \`lifeline keys init ${tenant}\`)` : ''}`, { cause: err });
    }
  }
  const pem = readSecret(ref, { source: config.source.file ?? 'built-in defaults', path: where, root: config.source.root });
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  // SigningKey reads PEM files; keep the variable's content in a private temporary file only as long as needed.
  const dir = await mkdtemp(join(tmpdir(), 'lifeline-key-'));
  try {
    await writeFile(join(dir, 'key.pem'), pem, { mode: 0o600 });
    return await SigningKey.fromFile(join(dir, 'key.pem'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function tenantStore(storage: ResolvedStorage, loc: TenantLocation, opts: { logger?: { warn(obj: object, msg: string): void } } = {}): S3ObjectStore {
  return new S3ObjectStore({
    endpoint: storage.endpoint,
    endpointRoute: storage.route,
    region: storage.region,
    bucket: loc.bucket,
    prefix: loc.prefix.replace(/\/$/, ''),
    forcePathStyle: storage.forcePathStyle,
    credentials: storage.credentials,
    logger: opts.logger,
  });
}

/**
 * Opens tenants' repositories on demand and keeps them open (their indexes
 * are loaded once per process and refreshed by the operations that need it).
 */
export class TenantRepositories {
  private readonly open = new Map<string, Promise<Repository>>();
  private readonly lockChecks = new Map<string, Promise<boolean>>();
  /** identity and signing key files' identity (inode, size, mtime) when each repository was opened */
  private readonly opened = new Map<string, string>();

  /**
   * `role` picks the storage credentials (least privilege, tenancy/storage-roles.ts):
   * backup for backups and incident records, verifier, retention, restore (per
   * tenant); `admin` (storage.credentials) when not given.
   */
  constructor(
    private readonly config: LoadedConfig,
    private readonly storage: ResolvedStorage = resolveStorage(config),
    private readonly logger?: { warn(obj: object, msg: string): void },
    readonly role: StorageRole = 'admin',
  ) {}

  location(tenant: string): TenantLocation {
    return tenantLocation(this.config, tenant, this.storage);
  }

  store(tenant: string): S3ObjectStore {
    const storage = resolveRoleStorage(this.config, this.role, { tenant, base: this.storage });
    if (storage.rootFallback && !this.warnedRootFallback) {
      this.warnedRootFallback = true;
      this.logger?.warn({ role: this.role }, `the embedded MinIO has no ${this.role} user yet: using its root credentials; run \`lifeline up\` to create the least-privilege users`);
    }
    return tenantStore(storage, this.location(tenant), { logger: this.logger });
  }

  private warnedRootFallback = false;

  /** The Object Lock retention new objects get: the configured one, when the bucket has Object Lock (warned once otherwise). */
  private async lockPolicy(store: S3ObjectStore): Promise<ObjectLockPolicy | undefined> {
    const l = this.config.storage.objectLock;
    if (l.mode === 'none') return undefined;
    let check = this.lockChecks.get(store.bucket);
    if (!check) {
      check = store.objectLockEnabled().then((enabled) => {
        if (!enabled) {
          this.logger?.warn(
            { bucket: store.bucket, objectLock: l.mode },
            `bucket ${store.bucket} has no Object Lock: committed objects are written without retention and an attacker with write access can destroy them; create the repository in a new bucket (lifeline keys init creates it with Object Lock) or set storage.objectLock.mode: none`,
          );
        }
        return enabled;
      });
      this.lockChecks.set(store.bucket, check);
      check.catch(() => this.lockChecks.delete(store.bucket));
    }
    return (await check) ? { mode: l.mode === 'compliance' ? 'COMPLIANCE' : 'GOVERNANCE', retentionMs: durationMs(l.retention) } : undefined;
  }

  /** The tenant's repository, opened with its keys; fails clearly when it has not been initialised. */
  async repository(tenant: string): Promise<Repository> {
    // A key rotation replaces the key files: the next operation opens the repository with the new keys
    // (new data uses only the new recipient at once, without restarting the worker).
    const stamp = await keyFilesStamp(this.config, tenant);
    if (this.opened.get(tenant) !== stamp) {
      this.open.delete(tenant);
      this.opened.set(tenant, stamp);
    }
    let r = this.open.get(tenant);
    if (!r) {
      r = (async () => {
        const store = this.store(tenant);
        const [identities, signingKey] = await Promise.all([loadTenantIdentities(this.config, tenant), loadTenantSigningKey(this.config, tenant)]);
        if (!(await Repository.exists(store))) {
          throw new UserError(`tenant ${tenant} has no repository at ${store.location}; run \`lifeline keys init ${tenant}\``);
        }
        const lock = this.role === 'restore' ? undefined : await this.lockPolicy(store);
        const onTampered = (t: TamperedObject) =>
          this.logger?.warn(
            { event: 'storage-tampered', tenant, object: t.key, versionId: t.versionId, problem: t.problem },
            `object ${t.key} of tenant ${tenant} was overwritten or deleted; reading its original (version ${t.versionId}) instead`,
          );
        return Repository.open(store, { identities, signingKey, lock, onTampered });
      })();
      this.open.set(tenant, r);
      r.catch(() => this.open.delete(tenant));
    }
    return r;
  }

  /** Forget cached repositories (to force a fresh index). */
  reset(): void {
    this.open.clear();
  }
}

/** Changes whenever a tenant's key files are replaced (environment-variable keys never change in a process). */
async function keyFilesStamp(config: LoadedConfig, tenant: string): Promise<string> {
  const t = tenantConfig(config, tenant);
  const parts: string[] = [];
  for (const ref of [t.identity, t.signingKey]) {
    if (!('file' in ref)) continue;
    const st = await stat(resolveFromRoot(ref.file, config.source.root)).catch(() => null);
    parts.push(st ? `${st.ino}:${st.size}:${st.mtimeMs}` : 'missing');
  }
  return parts.join('|');
}
