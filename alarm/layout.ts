/**
 * The tamper alarm's view of an installation: which buckets it watches, where
 * each tenant's repository lies, and which principals are Lifeline's own.
 * Reads config only (no secrets leave it; the own principals are compared,
 * never printed).
 */
import type { LoadedConfig } from '../config/load';
import type { ResolvedStorage } from '../config/storage';
import { resolveAudit } from '../audit/open';
import { tenantLocation } from '../tenancy/repositories';
import { PROBE_FOLDER, type TenantPrefix, type WatchedBucket } from './tamper';

/** The storage prefix ('' or ending in '/'). */
function storagePrefix(config: LoadedConfig): string {
  const base = config.storage.prefix.replace(/^\/+|\/+$/g, '');
  return base ? `${base}/` : '';
}

/** The repository bucket (storage.bucket) and the audit log's bucket. */
export function watchedBuckets(config: LoadedConfig): WatchedBucket[] {
  const probePrefix = `${storagePrefix(config)}${PROBE_FOLDER}`;
  const audit = resolveAudit(config);
  const out: WatchedBucket[] = [{ bucket: config.storage.bucket, role: 'repository', prefix: storagePrefix(config), probePrefix }];
  if (audit.bucket !== config.storage.bucket) out.push({ bucket: audit.bucket, role: 'audit', prefix: `${audit.prefix}/`, probePrefix });
  return out;
}

export function tenantPrefixes(config: LoadedConfig): TenantPrefix[] {
  return Object.keys(config.tenants).map((tenant) => ({ tenant, prefix: tenantLocation(config, tenant, config.storage).prefix }));
}

/** Lifeline's own principals: the storage credentials' access key, the storage role users' (`roleAccessKeyIds`) and alarm.ownPrincipals. */
export function ownPrincipals(config: LoadedConfig, storage: Pick<ResolvedStorage, 'credentials'>, roleKeys: string[] = []): Set<string> {
  return new Set([storage.credentials.accessKeyId, ...roleKeys, ...config.alarm.ownPrincipals]);
}

/** Every asset of these tenants (a tampered pack may belong to any of them: packs are shared within a tenant). */
export function tenantAssets(config: LoadedConfig, tenants: string[]): string[] {
  return Object.entries(config.assets)
    .filter(([, a]) => tenants.includes(a.tenant))
    .map(([name]) => name)
    .sort();
}
