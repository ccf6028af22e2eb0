/**
 * The storage roles of an installation: their scope (the repository bucket,
 * every tenant's prefix, the audit log) and, for the embedded MinIO, creating
 * their users (`lifeline up`).
 */
import type { LoadedConfig } from '../config/load';
import { resolveStorage, type ResolvedStorage } from '../config/storage';
import { resolveAudit } from '../audit/open';
import { stackLayout, stackSettings } from '../devstack/layout';
import { provisionMinioRoles, type MinioAdmin, type MinioRoleSpec, type RoleCredentialsFile } from '../devstack/minio-roles';
import { tenantLocation } from './repositories';
import { allRolePolicies, type RoleScope } from './storage-roles';

export function roleScope(config: LoadedConfig, storage: Pick<ResolvedStorage, 'bucket' | 'prefix'> = resolveStorage(config)): RoleScope {
  const audit = resolveAudit(config);
  const tenants: Record<string, string> = {};
  for (const t of Object.keys(config.tenants)) tenants[t] = tenantLocation(config, t, storage).prefix;
  const prefix = storage.prefix.replace(/^\/+/, '');
  return { bucket: storage.bucket, storagePrefix: prefix === '' ? '' : prefix.replace(/\/?$/, '/'), tenants, auditBucket: audit.bucket, auditPrefix: `${audit.prefix.replace(/\/?$/, '/')}` };
}

export function minioRoleSpecs(scope: RoleScope, namePrefix = 'lifeline'): MinioRoleSpec[] {
  return allRolePolicies(scope).map((p) => ({
    id: p.tenant ? `restore:${p.tenant}` : p.role,
    policyName: `${namePrefix}-${p.name.replace(/^lifeline-/, '')}`,
    policy: p.policy,
  }));
}

/** `lifeline up` on the embedded MinIO: one user per role and a restore user per tenant (keys in credentials/minio-roles.json). */
export async function provisionEmbeddedRoles(config: LoadedConfig): Promise<RoleCredentialsFile> {
  const storage = resolveStorage(config);
  if (!storage.embedded) throw new TypeError('roles are provisioned only on the embedded MinIO');
  const admin: MinioAdmin = { endpoint: storage.endpoint!, credentials: storage.credentials };
  // Policies are named after the bucket: configs with other buckets on the same MinIO (the demo's) add their own policies to the same role users.
  return provisionMinioRoles(admin, stackLayout(stackSettings(config).dataDir).minioRoles, minioRoleSpecs(roleScope(config, storage), `lifeline-${storage.bucket}`));
}
