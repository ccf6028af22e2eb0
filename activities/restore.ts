/**
 * Restore activities: choose the snapshot (orchestrator, storage only), check
 * the target and restore into it (on the node that should receive the files).
 * The engine checks every age chunk, every blob and every file's SHA-256
 * before a file is renamed into place, so a completed restore is verified.
 *
 * A restore that cannot write some files fails with the count, the reasons and
 * the first path; the full list goes to a report file on the node (file names
 * are the tenant's plaintext and stay on the node).
 */
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { restore as engineRestore, RestoreIncompleteError } from '../engine/restorer';
import { loadTenantIdentities } from '../tenancy/repositories';
import { openIncludes } from '../backups/include';
import type { ActivityDeps } from './index';
import { FailureTypes, toFailure } from './failures';
import { nodeContext } from './node-context';
import { ProgressReporter } from './progress';

export interface SnapshotChoice {
  snapshotId: string;
  time: string;
  files: number;
  bytes: number;
  labels: Record<string, string>;
}

export interface RestoreResolveInput {
  asset: string;
  /** 'latest', or a full snapshot id or unique prefix */
  from: 'latest' | { snapshotId: string };
  /** the tenant the restore is for (default: the asset's); another tenant's asset or snapshot is refused */
  tenant?: string;
}

export interface RestorePrepareInput {
  asset: string;
  target: string;
  overwrite?: boolean;
}

export interface RestoreSnapshotInput {
  asset: string;
  snapshotId: string;
  target: string;
  /** age-sealed include list (see backups/include.ts) */
  includeSealed?: string;
  /** progress updates are matched against it */
  restoreId: string;
  signalEveryMs?: number;
}

export interface RestoreSummary {
  snapshotId: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  durationMs: number;
}

const TEMP_PREFIX = '.lifeline-restore-';

/** Removes temporary files an interrupted restore attempt left in the target. */
async function removeRestoreLeftovers(dir: string): Promise<number> {
  let removed = 0;
  let names;
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const d of names) {
    if (d.isDirectory()) removed += await removeRestoreLeftovers(join(dir, d.name));
    else if (d.isFile() && d.name.startsWith(TEMP_PREFIX)) {
      await rm(join(dir, d.name), { force: true });
      removed++;
    }
  }
  return removed;
}

export function createRestoreActivities(deps: ActivityDeps) {
  const nc = nodeContext(deps);

  /** The other tenant whose repository has a snapshot matching `ref`, if any (ids only; nothing is decrypted). */
  const otherTenantHolding = async (ref: string, own: string): Promise<string | null> => {
    for (const t of Object.keys(deps.config.tenants)) {
      if (t === own) continue;
      const store = nc.repositories.store(t);
      for await (const obj of store.list('snapshots/')) if (obj.key.slice('snapshots/'.length).startsWith(ref)) return t;
    }
    return null;
  };

  return {
    /** Orchestrator: the snapshot to restore (newest of the asset, or a full id / unique prefix). */
    async restoreResolveSnapshot(input: RestoreResolveInput): Promise<SnapshotChoice> {
      const asset = nc.asset(input.asset, 'choose a snapshot');
      const ctx = { asset: asset.name, tenant: asset.tenant, op: 'choose the snapshot to restore' };
      const tenant = input.tenant ?? asset.tenant;
      if (tenant !== asset.tenant) {
        throw ApplicationFailure.nonRetryable(`restore for tenant ${tenant} refused: asset ${asset.name} belongs to tenant ${asset.tenant}`, FailureTypes.TenantMismatch);
      }
      try {
        const repo = await nc.restoreRepositories.repository(asset.tenant);
        let id: string;
        if (input.from === 'latest') {
          const snaps = await repo.listSnapshots({ asset: asset.name });
          if (snaps.length === 0) {
            throw ApplicationFailure.nonRetryable(`asset ${asset.name} has no snapshots yet (run \`lifeline backup run ${asset.name}\`)`, FailureTypes.InvalidInput);
          }
          id = snaps[snaps.length - 1]!.id;
        } else {
          const ref = input.from.snapshotId;
          id = await repo.resolveSnapshotId(ref).catch(async (err: unknown) => {
            // Only this tenant's repository is searched; say so when the id is another tenant's.
            const owner = await otherTenantHolding(ref, asset.tenant);
            if (owner) {
              throw ApplicationFailure.nonRetryable(
                `restore for tenant ${tenant} refused: snapshot ${ref} is not in tenant ${tenant}'s repository but in tenant ${owner}'s, and a tenant's restore reads only its own snapshots`,
                FailureTypes.TenantMismatch,
              );
            }
            throw err;
          });
        }
        const m = await repo.loadSnapshot(id);
        if (m.body.asset.name !== asset.name) {
          throw ApplicationFailure.nonRetryable(`snapshot ${id} belongs to asset ${m.body.asset.name}, not ${asset.name}`, FailureTypes.InvalidInput);
        }
        return { snapshotId: id, time: m.body.time, files: m.body.stats.files, bytes: m.body.stats.totalBytes, labels: m.body.labels };
      } catch (err) {
        throw toFailure(err, ctx);
      }
    },

    /** Node: the target must be an absolute folder, empty unless overwriting was asked for. */
    async restorePrepareTarget(input: RestorePrepareInput): Promise<{ existingEntries: number }> {
      const node = nc.nodeId('restore');
      const ctx = { asset: input.asset, node, op: 'prepare the restore target', target: input.target };
      if (!isAbsolute(input.target)) {
        throw ApplicationFailure.nonRetryable(`restore target ${JSON.stringify(input.target)} must be an absolute path on node ${node}`, FailureTypes.InvalidInput);
      }
      try {
        const st = await lstat(input.target).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') return null;
          throw err;
        });
        if (st === null) {
          await mkdir(input.target, { recursive: true, mode: 0o700 });
          return { existingEntries: 0 };
        }
        if (!st.isDirectory()) {
          throw ApplicationFailure.nonRetryable(`restore target ${input.target} on node ${node} exists and is not a folder; choose another --target`, FailureTypes.InvalidInput);
        }
        const existing = (await readdir(input.target)).length;
        if (existing > 0 && !input.overwrite) {
          throw ApplicationFailure.nonRetryable(
            `restore target ${input.target} on node ${node} is not empty (${existing} entries); choose an empty or new folder, or pass --overwrite to replace files of the same name`,
            FailureTypes.TargetNotEmpty,
          );
        }
        return { existingEntries: existing };
      } catch (err) {
        throw toFailure(err, ctx);
      }
    },

    /** Node: restore (and verify) a snapshot into the target. */
    async restoreSnapshot(input: RestoreSnapshotInput): Promise<RestoreSummary> {
      const asset = nc.asset(input.asset, 'restore');
      const node = nc.nodeId('restore');
      const ctx = { asset: asset.name, node, tenant: asset.tenant, op: 'restore', target: input.target };
      const activity = Context.current();
      const signal = activity.cancellationSignal;
      const reporter = new ProgressReporter({ opId: input.restoreId, step: 0, phase: 'restoring', signalEveryMs: input.signalEveryMs });
      try {
        if (activity.info.attempt > 1) {
          const removed = await removeRestoreLeftovers(input.target);
          if (removed > 0) log.info('removed leftovers of an interrupted restore attempt', { asset: asset.name, removed });
        }
        const repo = await nc.restoreRepositories.repository(asset.tenant);
        await repo.loadIndex();
        const include = input.includeSealed ? await openIncludes(input.includeSealed, await loadTenantIdentities(deps.config, asset.tenant)) : undefined;
        const r = await engineRestore(repo, input.snapshotId, {
          target: input.target,
          include,
          signal,
          onProgress: (p) => {
            reporter.filesDone = p.filesDone;
            reporter.bytesDone = p.bytesDone;
            reporter.filesTotal = p.filesTotal;
            reporter.bytesTotal = p.bytesTotal;
          },
        });
        reporter.tick(true);
        log.info('snapshot restored', { asset: asset.name, snapshotId: r.snapshotId, files: r.files, bytes: r.bytes });
        return { snapshotId: r.snapshotId, files: r.files, dirs: r.dirs, symlinks: r.symlinks, bytes: r.bytes, durationMs: r.durationMs };
      } catch (err) {
        if (signal.aborted) throw err;
        if (err instanceof RestoreIncompleteError) {
          const report = await nc.scans().writeReport(`restore-failures-${input.restoreId}`, {
            asset: asset.name,
            snapshotId: input.snapshotId,
            target: input.target,
            restored: err.result,
            failures: err.failures,
          });
          const byReason = new Map<string, number>();
          for (const f of err.failures) byReason.set(f.reason, (byReason.get(f.reason) ?? 0) + 1);
          const reasons = [...byReason].map(([reason, n]) => `${n}× ${reason}`).join('; ');
          const first = err.failures[0]!;
          throw ApplicationFailure.nonRetryable(
            `restore of snapshot ${input.snapshotId} (asset ${asset.name}) into ${input.target} on node ${node} is incomplete: ${err.failures.length} of ${err.result.files + err.failures.length} files failed (${reasons}); first: ${first.path}; every failed file and why: ${report} on node ${node}; find damaged objects with \`lifeline verify ${asset.name} --deep\`, or restore another snapshot (--snapshot, --from last-verified)`,
            FailureTypes.RestoreIncomplete,
          );
        }
        log.warn('restore failed', { asset: asset.name, snapshotId: input.snapshotId, error: String(err) });
        throw toFailure(err, ctx);
      } finally {
        reporter.stop();
      }
    },
  };
}

export type RestoreActivities = ReturnType<typeof createRestoreActivities>;
