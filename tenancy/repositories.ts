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
import { resolveStorage, type ResolvedStorage } from '../config/storage';
import type { SecretRef } from '../config/secret-ref';
import { UserError } from '../config/errors';
import type { AssetConfig, TenantConfig } from '../config/platform';
import { S3ObjectStore } from '../engine/backend/s3';
import { AgeIdentities } from '../engine/crypto/age';
import { SigningKey } from '../engine/crypto/signing';
import { Repository } from '../engine/repository';
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
  /** identity and signing key files' identity (inode, size, mtime) when each repository was opened */
  private readonly opened = new Map<string, string>();

  constructor(
    private readonly config: LoadedConfig,
    private readonly storage: ResolvedStorage = resolveStorage(config),
    private readonly logger?: { warn(obj: object, msg: string): void },
  ) {}

  location(tenant: string): TenantLocation {
    return tenantLocation(this.config, tenant, this.storage);
  }

  store(tenant: string): S3ObjectStore {
    return tenantStore(this.storage, this.location(tenant), { logger: this.logger });
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
        return Repository.open(store, { identities, signingKey });
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
