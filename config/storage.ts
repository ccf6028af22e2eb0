import { readMinioCredentials, stackLayout, stackSettings, minioEndpoint } from '../devstack/layout';
import { processStorageRoute } from '../drills/storage-route';
import { UserError } from './errors';
import type { LoadedConfig } from './load';
import { readSecret } from './secrets';
import { readRoleCredentialsFile } from '../devstack/minio-roles';
import type { StorageRole } from '../tenancy/storage-roles';

/** Storage settings with secrets read: what an S3 client is built from. Never log it whole. */
export interface ResolvedStorage {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** true when this is the embedded MinIO of the devstack. */
  embedded: boolean;
  /** where requests go instead of `endpoint` right now (a drill's fault proxy; drills/storage-route.ts), asked per request */
  route?: () => string | undefined;
  /** a role asked for on an embedded MinIO without role users (`lifeline up` makes them): these are the root credentials */
  rootFallback?: boolean;
}

/**
 * Resolve the storage section: an external endpoint with its secret
 * references read, or the embedded MinIO with its generated root credentials
 * (which exist once `lifeline up` has run).
 */
export function resolveStorage(config: LoadedConfig, env: NodeJS.ProcessEnv = process.env): ResolvedStorage {
  const s = config.storage;
  const source = config.source.file ?? 'built-in defaults';
  if (s.endpoint) {
    const c = s.credentials!;
    return {
      endpoint: s.endpoint,
      region: s.region,
      bucket: s.bucket,
      prefix: s.prefix,
      forcePathStyle: s.forcePathStyle,
      credentials: {
        accessKeyId: readSecret(c.accessKeyId, { source, path: 'storage.credentials.accessKeyId', env, root: config.source.root }),
        secretAccessKey: readSecret(c.secretAccessKey, { source, path: 'storage.credentials.secretAccessKey', env, root: config.source.root }),
      },
      embedded: false,
      route: processStorageRoute(config),
    };
  }
  const settings = stackSettings(config);
  const file = stackLayout(settings.dataDir).minioCredentials;
  const creds = readMinioCredentials(file);
  if (!creds) throw new UserError(`embedded MinIO credentials not found at ${file}; run \`lifeline up\` first`);
  return {
    endpoint: minioEndpoint(settings),
    region: s.region,
    bucket: s.bucket,
    prefix: s.prefix,
    forcePathStyle: s.forcePathStyle,
    credentials: creds,
    embedded: true,
    route: processStorageRoute(config),
  };
}

/** A printable description of the storage target (no secrets). */
export function describeStorage(r: Pick<ResolvedStorage, 'endpoint' | 'bucket' | 'prefix'>): string {
  return `s3://${r.bucket}/${r.prefix}${r.endpoint ? ` at ${r.endpoint}` : ''}`;
}

/**
 * The storage settings with the credentials of one role (least privilege,
 * tenancy/storage-roles.ts): `restore` needs the tenant. External S3: the
 * role's `storage.roles.*` credentials, else `storage.credentials`. Embedded
 * MinIO: the users `lifeline up` created; without any (a stack started by
 * devstack code alone) the root credentials, flagged `rootFallback`; a role or
 * tenant missing from the file is an error that says to run `lifeline up`.
 */
export function resolveRoleStorage(
  config: LoadedConfig,
  role: StorageRole,
  opts: { tenant?: string; base?: ResolvedStorage; env?: NodeJS.ProcessEnv } = {},
): ResolvedStorage {
  const base = opts.base ?? resolveStorage(config, opts.env);
  if (role === 'admin') return base;
  if (role === 'restore' && !opts.tenant) throw new TypeError('restore credentials are per tenant: give the tenant');
  const label = role === 'restore' ? `restore.${opts.tenant}` : role;
  if (!base.embedded) {
    const roles = config.storage.roles;
    const c = role === 'restore' ? roles.restore[opts.tenant!] : roles[role];
    if (!c) return base;
    const source = config.source.file ?? 'built-in defaults';
    const ctx = (k: string) => ({ source, path: `storage.roles.${label}.${k}`, env: opts.env ?? process.env, root: config.source.root });
    return { ...base, credentials: { accessKeyId: readSecret(c.accessKeyId, ctx('accessKeyId')), secretAccessKey: readSecret(c.secretAccessKey, ctx('secretAccessKey')) } };
  }
  const file = stackLayout(stackSettings(config).dataDir).minioRoles;
  const all = readRoleCredentialsFile(file);
  // A stack brought up without role users (devstack `up()` alone): the root, as before roles existed; callers warn.
  if (!all) return { ...base, rootFallback: true };
  const c = role === 'restore' ? all.restore?.[opts.tenant!] : all[role];
  if (!c) {
    throw new UserError(`no ${label} credentials for the embedded MinIO in ${file}; run \`lifeline up\` (it creates one user per role and a restore user per tenant)`);
  }
  return { ...base, credentials: c };
}

/**
 * The access key ids of every storage role this installation has (the role
 * users `lifeline up` made, or `storage.roles`): Lifeline's own principals
 * besides `storage.credentials`, e.g. for the storage tamper alarm.
 */
export function roleAccessKeyIds(config: LoadedConfig, base: ResolvedStorage = resolveStorage(config)): string[] {
  const ids = new Set<string>();
  const add = (role: StorageRole, tenant?: string) => {
    const r = resolveRoleStorage(config, role, { base, tenant });
    if (!r.rootFallback) ids.add(r.credentials.accessKeyId);
  };
  if (base.embedded) {
    const all = readRoleCredentialsFile(stackLayout(stackSettings(config).dataDir).minioRoles);
    for (const c of [all?.backup, all?.verifier, all?.retention, all?.audit, ...Object.values(all?.restore ?? {})]) if (c) ids.add(c.accessKeyId);
  } else {
    for (const role of ['backup', 'verifier', 'retention', 'audit'] as const) add(role);
    for (const tenant of Object.keys(config.storage.roles.restore)) add('restore', tenant);
  }
  ids.delete(base.credentials.accessKeyId);
  return [...ids];
}
