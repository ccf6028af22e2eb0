/**
 * Activities are Lifeline's adapters to the outside world (object stores,
 * nodes, tools). They are built by a factory from their dependencies, so a
 * worker constructs clients once and workflows only ever see the types.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { LoadedConfig } from '../config/load';
import type { Logger } from '../logging/logger';
import type { TenantRepositories } from '../tenancy/repositories';
import { createSmokeActivities } from './smoke';
import { createBackupActivities } from './backup';
import { createRestoreActivities } from './restore';
import { createVerifyActivities } from './verify';
import { createRetentionActivities } from './retention';
import { createIncidentActivities } from './incident';
import { createTrainingActivities } from './training';
import { createNodeActivities } from './nodes';
import { roleRepositories } from './node-context';
import { createAuditActivities } from './audit';
import type { AuditSink } from '../audit/log';
import { createMbomActivities } from './mbom';

export interface ActivityDeps {
  storage: { s3: S3Client; bucket: string; prefix: string };
  config: LoadedConfig;
  /** tenants' repositories with the admin credentials (activities use roleRepositories(deps, role) instead) */
  repositories: TenantRepositories;
  /** the node this worker runs on (node agents only) */
  nodeId?: string;
  logger: Logger;
  /**
   * The installation's audit log (workers open it from config). Null or
   * absent: not initialised — entries are logged at warn level, not recorded.
   * Activities record with `activityAuditor(deps).record({...})`.
   */
  audit?: AuditSink | null;
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createSmokeActivities(deps.storage),
    ...createBackupActivities(deps),
    ...createRestoreActivities(deps),
    // Each activity group uses its own role's storage credentials (tenancy/storage-roles.ts).
    ...createVerifyActivities({ ...deps, repositories: roleRepositories(deps, 'verifier') }),
    ...createRetentionActivities({ ...deps, repositories: roleRepositories(deps, 'retention') }),
    // Holds and quarantine marks are new records: the backup writer's put-only credentials suffice.
    ...createIncidentActivities({ ...deps, repositories: roleRepositories(deps, 'backup') }),
    ...createTrainingActivities(deps),
    ...createNodeActivities(deps),
    ...createAuditActivities(deps),
    ...createMbomActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { SmokeObject, SmokeVerifyResult, SmokeWriteInput } from './smoke';
