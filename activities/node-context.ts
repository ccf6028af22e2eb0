/**
 * What backup and restore activities share on one worker: the tenants'
 * repositories (with a store logger that feeds "retrying storage" into
 * progress), the node's work folder, and the check that a node activity
 * really runs on the node that holds the asset.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { resolveStorage } from '../config/storage';
import { TenantRepositories } from '../tenancy/repositories';
import type { StorageRole } from '../tenancy/storage-roles';
import { nodeWorkDir, resolveAsset, type ResolvedAsset } from '../backups/asset';
import { ScanStore } from '../backups/scan';
import type { ActivityDeps } from './index';
import { FailureTypes, toFailure } from './failures';
import { storageRetryLogger } from './progress';

export interface NodeContext {
  deps: ActivityDeps;
  /** opened with the backup writer's credentials */
  repositories: TenantRepositories;
  /** opened with each tenant's own read-only restore credentials */
  restoreRepositories: TenantRepositories;
  /** the asset from config; config problems become non-retryable failures */
  asset(name: string, op: string): ResolvedAsset;
  /** the asset, checked to live on this node agent's node */
  localAsset(name: string, op: string): ResolvedAsset;
  scans(): ScanStore;
  /** this worker's node id, or a failure when the activity reached a worker that is not a node agent */
  nodeId(op: string): string;
}

const contexts = new WeakMap<ActivityDeps, NodeContext>();

export function nodeContext(deps: ActivityDeps): NodeContext {
  let c = contexts.get(deps);
  if (c) return c;
  // Our own repository cache, so the stores' retry warnings also reach progress reports.
  const storage = resolveStorage(deps.config);
  const repositories = new TenantRepositories(deps.config, storage, storageRetryLogger(deps.logger), 'backup');
  const restoreRepositories = new TenantRepositories(deps.config, storage, storageRetryLogger(deps.logger), 'restore');
  let scans: ScanStore | undefined;
  const nodeId = (op: string): string => {
    if (!deps.nodeId) {
      throw ApplicationFailure.nonRetryable(`${op} must run on a node agent, but reached a worker without a node id (task queue routing is wrong)`, FailureTypes.Config);
    }
    return deps.nodeId;
  };
  const asset = (name: string, op: string): ResolvedAsset => {
    try {
      return resolveAsset(deps.config, name);
    } catch (err) {
      throw toFailure(err, { asset: name, node: deps.nodeId, op });
    }
  };
  c = {
    deps,
    repositories,
    restoreRepositories,
    asset,
    localAsset(name, op) {
      const a = asset(name, op);
      const here = nodeId(op);
      if (a.node !== here) {
        throw ApplicationFailure.nonRetryable(
          `asset ${name} lives on node ${a.node}, but this node agent is node ${here}: the node agents' configs disagree about assets.${name}.node`,
          FailureTypes.Config,
        );
      }
      return a;
    },
    scans() {
      scans ??= new ScanStore(nodeWorkDir(deps.config, nodeId('backup')));
      return scans;
    },
    nodeId,
  };
  contexts.set(deps, c);
  return c;
}

const byRole = new WeakMap<ActivityDeps, Map<StorageRole, TenantRepositories>>();

/** Tenants' repositories opened with one role's storage credentials (one cache per worker and role). */
export function roleRepositories(deps: ActivityDeps, role: StorageRole): TenantRepositories {
  let m = byRole.get(deps);
  if (!m) byRole.set(deps, (m = new Map()));
  let r = m.get(role);
  if (!r) m.set(role, (r = new TenantRepositories(deps.config, resolveStorage(deps.config), deps.logger, role)));
  return r;
}
