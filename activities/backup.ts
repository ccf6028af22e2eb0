/**
 * Backup activities: thin adapters from the backup workflow to the engine.
 *
 * On the asset's node (`lifeline-node-<node>`): scan (walk, size, checkpoint
 * rules; the list stays in a node-local work file), back up one batch, confirm
 * nothing changed, discard the work file. On the orchestrator: where an asset
 * lives, begin (lease + parent), commit (signed manifest), abandon (release the
 * lease). Every result is ids and counts; every step is idempotent: a batch
 * retried after a crash re-reads its files but uploads only chunks the
 * repository does not already hold (each pack is indexed as soon as it is
 * stored), and resumes after the last slice it finished (heartbeat details).
 */
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import {
  addBatchStats,
  BackupSession,
  backupBatch as engineBackupBatch,
  beginBackup,
  commitBackup,
  emptyBatchStats,
  loadParentFiles,
  type BackupPlan,
  type BatchStats,
} from '../engine/archiver';
import { Lease } from '../engine/leases';
import type { SnapshotStats } from '../engine/manifest';
import { keys } from '../engine/repository';
import type { Repository } from '../engine/repository';
import { encodeTreeBlob, type FileEntry } from '../engine/tree';
import {
  changedSince,
  DEFAULT_BATCH_LIMITS,
  markerState,
  newerThanMarker,
  planBackupBatches,
  planSlices,
  sameIdentity,
  scanEntries,
  walkItemOf,
  type Scan,
} from '../backups/scan';
import type { ResolvedAsset } from '../backups/asset';
import type { ActivityDeps } from './index';
import { FailureTypes, toFailure } from './failures';
import { nodeContext } from './node-context';
import { ProgressReporter } from './progress';

export interface AssetPlacement {
  asset: string;
  node: string;
  tenant: string;
  kind: ResolvedAsset['kind'];
  completion?: 'marker' | 'rename' | 'event';
}

export interface BackupScanInput {
  asset: string;
  backupId: string;
  batchMaxEntries?: number;
  batchMaxBytes?: number;
  /** marker mode: how long to wait for a complete checkpoint before failing */
  checkpointWaitSeconds?: number;
  /** how often to look for the marker while waiting */
  checkpointPollSeconds?: number;
  signalEveryMs?: number;
}

export interface BackupScanResult {
  backupId: string;
  entries: number;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  batches: number;
  /** entries that are not files, folders or symlinks (listed in the node's log) */
  skipped: number;
  /** entries left out as temporary (checkpoint temporaryPattern) */
  excluded: number;
  /** time spent waiting for a complete checkpoint */
  waitedSeconds: number;
}

export interface BackupBeginInput {
  asset: string;
  backupId: string;
  labels: Record<string, string>;
}

export interface BackupBatchInput {
  asset: string;
  plan: BackupPlan;
  batch: number;
  signalEveryMs?: number;
}

export interface BackupBatchResult {
  tree: string[];
  stats: BatchStats;
  /** slices of this batch taken over from an earlier attempt */
  resumedSlices: number;
}

export interface BackupCommitInput {
  asset: string;
  plan: BackupPlan;
  tree: string[];
  stats: BatchStats;
  durationMs: number;
}

export interface BackupCommitResult {
  snapshotId: string;
  parent: string | null;
  stats: SnapshotStats;
}

/** Heartbeat details of a batch: enough to resume after the last finished slice. */
interface BatchResume {
  backupId: string;
  batch: number;
  slice: number;
  tree: string[];
  stats: BatchStats;
}

export function createBackupActivities(deps: ActivityDeps) {
  const nc = nodeContext(deps);
  let parentCache: { key: string; files: Map<string, FileEntry> } | undefined;

  const parentFiles = async (repo: Repository, tenant: string, parentId: string | null) => {
    const key = `${tenant}/${parentId}`;
    if (parentCache?.key !== key) parentCache = { key, files: await loadParentFiles(repo, parentId) };
    return parentCache.files;
  };

  const resumeLease = async (repo: Repository, backupId: string, ctx: { asset: string; node?: string }): Promise<Lease> => {
    try {
      return await Lease.resume(repo.store, backupId);
    } catch (err) {
      throw toFailure(err, { ...ctx, op: 'resume the backup lease' });
    }
  };

  const readScan = async (asset: ResolvedAsset, backupId: string): Promise<Scan> => {
    const scan = await nc.scans().read(backupId);
    if (!scan || scan.asset !== asset.name) {
      throw ApplicationFailure.nonRetryable(
        `asset ${asset.name} on node ${asset.node}: this node has no scan for backup ${backupId} (work folder ${nc.scans().dir} lost or cleaned); scanning again`,
        FailureTypes.ScanLost,
      );
    }
    return scan;
  };

  return {
    /** Orchestrator: where an asset lives and who owns it (the workflow routes node work by it). */
    async assetPlacement(asset: string): Promise<AssetPlacement> {
      const a = nc.asset(asset, 'look up the asset');
      return { asset, node: a.node, tenant: a.tenant, kind: a.kind, ...(a.checkpoint ? { completion: a.checkpoint.completion } : {}) };
    },

    /** Node: walk and size the asset (after its checkpoint is complete) and keep the list in a work file. */
    async backupScan(input: BackupScanInput): Promise<BackupScanResult> {
      const asset = nc.localAsset(input.asset, 'scan');
      const ctx = { asset: asset.name, node: asset.node, tenant: asset.tenant, op: 'scan the asset', root: asset.root };
      const activity = Context.current();
      const signal = activity.cancellationSignal;
      const reporter = new ProgressReporter({ opId: input.backupId, step: -1, phase: 'scanning', signalEveryMs: input.signalEveryMs });
      const t0 = Date.now();
      let waitedMs = 0;
      try {
        await nc.scans().prune(7 * 24 * 3600_000);
        const deadline = t0 + (input.checkpointWaitSeconds ?? 6 * 3600) * 1000;
        const pollMs = (input.checkpointPollSeconds ?? 2) * 1000;
        const waitFor = async (reason: string, firstPath?: string) => {
          if (Date.now() > deadline) {
            throw ApplicationFailure.nonRetryable(
              `asset ${asset.name} on node ${asset.node}: no complete checkpoint after waiting ${Math.round((Date.now() - t0) / 1000)} s: ${reason}${firstPath ? ` (e.g. ${firstPath})` : ''}; check that the trainer writes the marker ${asset.checkpoint?.marker} last`,
              FailureTypes.CheckpointNotReady,
            );
          }
          if (reporter.phase !== 'waiting-for-checkpoint') log.info('waiting for a complete checkpoint', { asset: asset.name, reason });
          reporter.phase = 'waiting-for-checkpoint';
          reporter.setWaiting(reason);
          reporter.tick(true);
          const w0 = Date.now();
          await activity.sleep(pollMs);
          waitedMs += Date.now() - w0;
        };

        for (;;) {
          const before = await markerState(asset);
          if (!before.ready) {
            await waitFor(before.reason);
            continue;
          }
          reporter.phase = 'scanning';
          reporter.setWaiting(undefined);
          const { items, rootIsFile, problems } = await scanEntries(asset, signal, (n) => (reporter.filesDone = n));
          if (before.marker && asset.checkpoint) {
            // The checkpoint must be the one the marker vouches for: nothing newer, marker untouched.
            const newer = newerThanMarker(items, before.marker, asset.checkpoint.marker);
            const after = await markerState(asset);
            if (newer.length > 0) {
              // Only counts go into progress (it reaches the workflow); the first path only into a final failure.
              await waitFor(`${newer.length} file(s) are newer than the completion marker (a new checkpoint is being written)`, newer[0]!.rel);
              continue;
            }
            if (!after.ready || !after.marker || !sameIdentity(after.marker, before.marker)) {
              await waitFor('the completion marker changed while the checkpoint was listed');
              continue;
            }
          }
          if (problems.unreadable.length > 0) {
            const report = await nc.scans().writeReport(`unreadable-${input.backupId}`, { asset: asset.name, root: asset.root, unreadable: problems.unreadable });
            const first = problems.unreadable[0]!;
            throw ApplicationFailure.nonRetryable(
              `asset ${asset.name} on node ${asset.node}: ${problems.unreadable.length} file(s) cannot be read by the node agent (first: ${first.path}: ${first.code}); full list in ${report} on node ${asset.node}; give the node agent's user read access, or move them out of ${asset.root}`,
              FailureTypes.Unreadable,
            );
          }
          if (problems.skipped.length > 0) {
            const report = await nc.scans().writeReport(`skipped-${input.backupId}`, { asset: asset.name, root: asset.root, skipped: problems.skipped });
            log.warn('entries skipped (not files, folders or symlinks)', { asset: asset.name, count: problems.skipped.length, report });
          }
          const limits = {
            maxEntries: input.batchMaxEntries ?? DEFAULT_BATCH_LIMITS.maxEntries,
            maxBytes: input.batchMaxBytes ?? DEFAULT_BATCH_LIMITS.maxBytes,
          };
          const scan: Scan = {
            asset: asset.name,
            backupId: input.backupId,
            root: asset.root,
            rootIsFile,
            createdAt: new Date().toISOString(),
            marker: before.marker,
            items,
            batches: planBackupBatches(items, limits),
          };
          await nc.scans().write(scan);
          const count = (k: string) => items.filter((i) => i.kind === k).length;
          const result: BackupScanResult = {
            backupId: input.backupId,
            entries: items.length,
            files: count('file'),
            dirs: count('dir'),
            symlinks: count('symlink'),
            bytes: items.reduce((n, i) => n + (i.kind === 'file' ? i.size : 0), 0),
            batches: scan.batches.length,
            skipped: problems.skipped.length,
            excluded: problems.excluded,
            waitedSeconds: Math.round(waitedMs / 1000),
          };
          log.info('asset scanned', { asset: asset.name, backupId: input.backupId, entries: result.entries, bytes: result.bytes, batches: result.batches });
          return result;
        }
      } catch (err) {
        throw toFailure(err, ctx);
      } finally {
        reporter.stop();
      }
    },

    /** Orchestrator: take the backup's lease (keeps garbage collection off reused packs) and choose the parent. */
    async backupBegin(input: BackupBeginInput): Promise<BackupPlan> {
      const asset = nc.asset(input.asset, 'begin the backup');
      const ctx = { asset: asset.name, node: asset.node, tenant: asset.tenant, op: 'begin the backup' };
      try {
        const repo = await nc.repositories.repository(asset.tenant);
        const { plan, lease } = await beginBackup(repo, {
          asset: { name: asset.name, kind: asset.kind, tenant: asset.tenant, node: asset.node },
          labels: { ...asset.labels, ...input.labels },
          backupId: input.backupId,
        });
        // The lease outlives this activity: the next step (on the node) resumes it.
        lease.detach();
        return plan;
      } catch (err) {
        throw toFailure(err, ctx);
      }
    },

    /** Node: back up one batch of the scan; returns its tree blob ids and counts. */
    async backupBatch(input: BackupBatchInput): Promise<BackupBatchResult> {
      const asset = nc.localAsset(input.asset, 'back up');
      const backupId = input.plan.backupId;
      const ctx = { asset: asset.name, node: asset.node, tenant: asset.tenant, op: 'back up', root: asset.root };
      const activity = Context.current();
      const signal = activity.cancellationSignal;
      const scan = await readScan(asset, backupId);
      const range = scan.batches[input.batch];
      if (!range) throw ApplicationFailure.nonRetryable(`backup ${backupId} has no batch ${input.batch} (the scan has ${scan.batches.length})`, FailureTypes.InvalidInput);
      const items = scan.items.slice(range[0], range[1]).map((it) => walkItemOf(scan, it));
      const slices = planSlices(items);

      // Resume after the last slice an earlier attempt finished: its tree blobs are durable.
      const prev = activity.info.heartbeatDetails as Partial<BatchResume> | undefined;
      const resume: BatchResume =
        prev && prev.backupId === backupId && prev.batch === input.batch && Array.isArray(prev.tree) && prev.stats && typeof prev.slice === 'number'
          ? { backupId, batch: input.batch, slice: prev.slice, tree: [...prev.tree], stats: prev.stats }
          : { backupId, batch: input.batch, slice: 0, tree: [], stats: emptyBatchStats() };
      const resumedSlices = resume.slice;
      const reporter = new ProgressReporter({
        opId: backupId,
        step: input.batch,
        phase: 'uploading',
        signalEveryMs: input.signalEveryMs,
        details: () => ({ backupId, batch: input.batch, slice: resume.slice, tree: resume.tree, stats: resume.stats }),
      });
      reporter.filesTotal = items.filter((it) => it.kind === 'file').length;
      reporter.bytesTotal = items.reduce((n, it) => n + (it.kind === 'file' ? it.size : 0), 0);
      // Work of finished slices counts as done.
      for (let s = 0; s < resume.slice; s++) {
        const [a, b] = slices[s]!;
        reporter.add({ bytes: items.slice(a, b).reduce((n, it) => n + (it.kind === 'file' ? it.size : 0), 0), files: items.slice(a, b).filter((it) => it.kind === 'file').length });
      }
      let lease: Lease | undefined;
      try {
        const repo = await nc.repositories.repository(asset.tenant);
        // Packs stored by an earlier attempt (maybe another process) are indexed: learn them, so they are not stored again.
        await repo.loadIndex();
        lease = await resumeLease(repo, backupId, ctx);
        const parent = await parentFiles(repo, asset.tenant, input.plan.parentId);
        if (resumedSlices > 0) log.info('resuming batch', { asset: asset.name, backupId, batch: input.batch, slice: resumedSlices, slices: slices.length });
        for (; resume.slice < slices.length; ) {
          const [a, b] = slices[resume.slice]!;
          const r = await engineBackupBatch(repo, {
            items: items.slice(a, b),
            parentFiles: parent,
            packsPerIndex: 1,
            signal,
            onWork: (w) => reporter.add(w),
          });
          resume.tree.push(...r.tree);
          resume.stats = addBatchStats(resume.stats, r.stats);
          resume.slice++;
          reporter.tick(true);
        }
        if (items.length === 0) {
          // An empty asset still needs one (empty) tree blob, stored before commit reads it back.
          const session = new BackupSession(repo, { uploadConcurrency: 1, packsPerIndex: 1 });
          resume.tree.push(await session.addBlob('tree', encodeTreeBlob([])));
          await session.finish();
        }
        return { tree: resume.tree, stats: resume.stats, resumedSlices };
      } catch (err) {
        if (signal.aborted) throw err;
        log.warn('backup batch failed', { asset: asset.name, backupId, batch: input.batch, error: String(err) });
        throw toFailure(err, ctx);
      } finally {
        reporter.stop();
        lease?.detach();
      }
    },

    /** Node: prove that nothing in the asset changed since the scan, so the snapshot is one consistent state. */
    async backupConfirm(input: { asset: string; backupId: string }): Promise<{ checked: number }> {
      const asset = nc.localAsset(input.asset, 'confirm the backup');
      const ctx = { asset: asset.name, node: asset.node, tenant: asset.tenant, op: 'confirm the backup', root: asset.root };
      const activity = Context.current();
      const reporter = new ProgressReporter({ opId: input.backupId, step: -2, phase: 'confirming' });
      try {
        const scan = await readScan(asset, input.backupId);
        const changed = await changedSince(scan, activity.cancellationSignal);
        if (scan.marker && asset.checkpoint) {
          const now = await markerState(asset);
          if (!now.ready || !now.marker || !sameIdentity(now.marker, scan.marker)) changed.push({ path: asset.checkpoint.marker, what: 'completion marker removed or rewritten' });
        }
        if (changed.length > 0) {
          const report = await nc.scans().writeReport(`changed-${input.backupId}`, { asset: asset.name, root: asset.root, changed });
          throw ApplicationFailure.nonRetryable(
            `asset ${asset.name} on node ${asset.node}: ${changed.length} entr${changed.length === 1 ? 'y' : 'ies'} changed during the backup (first: ${changed[0]!.path}: ${changed[0]!.what}; list in ${report}); the backup starts over, and fails if the asset keeps changing`,
            FailureTypes.AssetChanged,
          );
        }
        return { checked: scan.items.length };
      } catch (err) {
        throw toFailure(err, ctx);
      } finally {
        reporter.stop();
      }
    },

    /** Orchestrator: write the signed manifest (the commit point) and release the lease. */
    async backupCommit(input: BackupCommitInput): Promise<BackupCommitResult> {
      const asset = nc.asset(input.asset, 'commit the backup');
      const ctx = { asset: asset.name, node: asset.node, tenant: asset.tenant, op: 'commit the backup' };
      const activity = Context.current();
      const hb = setInterval(() => activity.heartbeat(), 5000);
      try {
        const repo = await nc.repositories.repository(asset.tenant);
        if (activity.info.attempt > 1) {
          // An earlier attempt may have committed and then lost its result: never commit twice.
          const done = await findCommitted(repo, input);
          if (done) return done;
        }
        const lease = await resumeLease(repo, input.plan.backupId, ctx);
        try {
          const r = await commitBackup(repo, input.plan, lease, { tree: input.tree, stats: input.stats, durationMs: input.durationMs });
          log.info('snapshot committed', { asset: asset.name, snapshotId: r.snapshotId, files: r.stats.files, bytes: r.stats.totalBytes });
          return { snapshotId: r.snapshotId, parent: r.parent, stats: r.stats };
        } finally {
          lease.detach();
        }
      } catch (err) {
        throw toFailure(err, ctx);
      } finally {
        clearInterval(hb);
      }
    },

    /** Orchestrator: give up a backup's lease (failed or restarted backup); nothing else to undo. */
    async backupAbandon(input: { asset: string; backupId: string }): Promise<void> {
      const asset = nc.asset(input.asset, 'abandon the backup');
      try {
        await nc.repositories.store(asset.tenant).delete(keys.lock(input.backupId));
      } catch (err) {
        throw toFailure(err, { asset: asset.name, tenant: asset.tenant, op: 'release the backup lease' });
      }
    },

    /** Node: delete the backup's work file. */
    async backupDiscardScan(input: { asset: string; backupId: string }): Promise<void> {
      nc.localAsset(input.asset, 'clean up');
      await nc.scans().remove(input.backupId);
    },
  };
}

async function findCommitted(repo: Repository, input: BackupCommitInput): Promise<BackupCommitResult | null> {
  for (const s of await repo.listSnapshots({ asset: input.asset })) {
    const m = await repo.loadSnapshot(s.id);
    if (m.body.startedAt === input.plan.startedAt && m.body.tree.length >= input.tree.length && input.tree.every((t, i) => m.body.tree[i] === t)) {
      return { snapshotId: s.id, parent: m.body.parent, stats: m.body.stats };
    }
  }
  return null;
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;
