/**
 * Least-privilege storage roles: which credentials each part of Lifeline uses
 * and the IAM policy each role gets. The same JSON documents are MinIO
 * policies (`mc admin policy create`) and AWS IAM policies (README shows them).
 * No Temporal imports, no I/O: unit-testable.
 */

/** Roles with their own storage credentials. `admin` is `storage.credentials` (bucket creation, `keys init`, `status`, the smoke test). */
export const STORAGE_ROLES = ['backup', 'verifier', 'retention', 'audit'] as const;
export type SharedStorageRole = (typeof STORAGE_ROLES)[number];
/** `restore` credentials are per tenant: one restore user per tenant, reading only its prefix. */
export type StorageRole = SharedStorageRole | 'restore' | 'admin';

/** Where the policies point: the repository bucket with each tenant's prefix, and the audit log. */
export interface RoleScope {
  bucket: string;
  /** storage.prefix ('' or ending in '/'): the smoke test writes under `<prefix>smoke/` */
  storagePrefix?: string;
  /** tenant → repository prefix inside `bucket`, ending in '/' */
  tenants: Record<string, string>;
  auditBucket: string;
  /** key prefix of the audit log inside `auditBucket`, ending in '/' */
  auditPrefix: string;
}

export interface IamPolicy {
  Version: '2012-10-17';
  Statement: Array<{
    Sid?: string;
    Effect: 'Allow' | 'Deny';
    Action: string[];
    Resource: string[];
    Condition?: Record<string, Record<string, string[]>>;
  }>;
}

/** Repository prefixes garbage collection may delete in (FORMAT.md); `verifications/` and `bom/` hold records of forgotten snapshots. */
export const COLLECTABLE_PREFIXES = ['data/', 'index/', 'snapshots/', 'tombstones/', 'locks/', 'verifications/', 'bom/'] as const;
/** What a backup (with its Model BOM) and an incident's hold / quarantine record write. */
const BACKUP_WRITES = ['data/', 'index/', 'snapshots/', 'locks/', 'holds/', 'quarantine/', 'bom/'] as const;

const arn = (bucket: string, key = '') => `arn:aws:s3:::${bucket}${key === '' ? '' : `/${key}`}`;
const READ = ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectRetention', 's3:GetObjectLegalHold'];
const LIST = ['s3:ListBucket', 's3:ListBucketVersions', 's3:GetBucketLocation', 's3:GetBucketObjectLockConfiguration', 's3:GetBucketVersioning'];
const WRITE = ['s3:PutObject', 's3:PutObjectRetention', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'];
/** What no role may ever do: remove locked versions, weaken the lock, or change the bucket. */
const NEVER = [
  's3:DeleteObjectVersion',
  's3:BypassGovernanceRetention',
  's3:PutBucketObjectLockConfiguration',
  's3:PutBucketVersioning',
  's3:PutBucketPolicy',
  's3:DeleteBucket',
  's3:PutLifecycleConfiguration',
];

function policy(statements: IamPolicy['Statement']): IamPolicy {
  // A statement without resources (no tenants yet) is invalid IAM: leave it out.
  const real = statements.filter((s) => s.Resource.length > 0);
  return { Version: '2012-10-17', Statement: [...real, { Sid: 'NeverWeakenLocks', Effect: 'Deny', Action: NEVER, Resource: ['arn:aws:s3:::*'] }] };
}

const tenantPrefixes = (s: RoleScope) => Object.values(s.tenants);
const under = (s: RoleScope, subs: readonly string[]) => tenantPrefixes(s).flatMap((p) => subs.map((sub) => arn(s.bucket, `${p}${sub}*`)));
const readAll = (s: RoleScope): IamPolicy['Statement'] => [
  { Sid: 'List', Effect: 'Allow', Action: LIST, Resource: [arn(s.bucket)] },
  { Sid: 'Read', Effect: 'Allow', Action: READ, Resource: tenantPrefixes(s).map((p) => arn(s.bucket, `${p}*`)) },
];

/** The IAM policy of a shared role over every tenant's repository (or the audit log). */
export function rolePolicy(role: SharedStorageRole, s: RoleScope): IamPolicy {
  switch (role) {
    case 'backup':
      // Writes new objects; may delete only its own leases. Overwrites of committed keys only stack versions on locked originals.
      return policy([
        ...readAll(s),
        { Sid: 'WriteNew', Effect: 'Allow', Action: WRITE, Resource: under(s, BACKUP_WRITES) },
        { Sid: 'ReleaseLeases', Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: under(s, ['locks/']) },
        // `lifeline demo` writes, reads and deletes one object here: node-agent hosts need no other credentials.
        { Sid: 'Smoke', Effect: 'Allow', Action: ['s3:PutObject', 's3:GetObject', 's3:DeleteObject'], Resource: [arn(s.bucket, `${s.storagePrefix ?? ''}smoke/*`)] },
      ]);
    case 'verifier':
      // Reads everything; writes (and prunes) only its own verification records.
      return policy([
        ...readAll(s),
        { Sid: 'Records', Effect: 'Allow', Action: [...WRITE, 's3:DeleteObject'], Resource: under(s, ['verifications/']) },
      ]);
    case 'retention':
      // Forgets snapshots and collects garbage: deletes (delete markers on a versioned bucket) only in the collectable prefixes.
      return policy([
        ...readAll(s),
        { Sid: 'Tombstones', Effect: 'Allow', Action: WRITE, Resource: under(s, ['tombstones/', 'index/']) },
        { Sid: 'Collect', Effect: 'Allow', Action: ['s3:DeleteObject'], Resource: under(s, COLLECTABLE_PREFIXES) },
      ]);
    case 'audit':
      // Appends to the audit log: read and create, never delete.
      return policy([
        { Sid: 'List', Effect: 'Allow', Action: LIST, Resource: [arn(s.auditBucket)] },
        { Sid: 'Append', Effect: 'Allow', Action: [...READ, 's3:PutObject', 's3:PutObjectRetention'], Resource: [arn(s.auditBucket, `${s.auditPrefix}*`)] },
      ]);
  }
}

/** A tenant's restore role: read-only, and only that tenant's prefix (listing included). */
export function restorePolicy(tenant: string, s: RoleScope): IamPolicy {
  const p = s.tenants[tenant];
  if (p === undefined) throw new Error(`unknown tenant ${JSON.stringify(tenant)}`);
  return policy([
    {
      Sid: 'ListOwnPrefix',
      Effect: 'Allow',
      Action: ['s3:ListBucket', 's3:ListBucketVersions'],
      Resource: [arn(s.bucket)],
      Condition: { StringLike: { 's3:prefix': [`${p}*`] } },
    },
    { Sid: 'Bucket', Effect: 'Allow', Action: ['s3:GetBucketLocation', 's3:GetBucketObjectLockConfiguration', 's3:GetBucketVersioning'], Resource: [arn(s.bucket)] },
    { Sid: 'ReadOwnPrefix', Effect: 'Allow', Action: READ, Resource: [arn(s.bucket, `${p}*`)] },
  ]);
}

/** Every role's policy, named as `lifeline up` names them on MinIO. */
export function allRolePolicies(s: RoleScope): Array<{ role: SharedStorageRole | 'restore'; tenant?: string; name: string; policy: IamPolicy }> {
  return [
    ...STORAGE_ROLES.map((role) => ({ role, name: `lifeline-${role}`, policy: rolePolicy(role, s) })),
    ...Object.keys(s.tenants).map((tenant) => ({ role: 'restore' as const, tenant, name: `lifeline-restore-${tenant}`, policy: restorePolicy(tenant, s) })),
  ];
}
