/**
 * Orchestrator activities for verification: thin adapters from the workflow
 * to the engine's checker and the verification records. Only ids, object keys,
 * counts and problem text cross the workflow boundary; file paths stay in the
 * encrypted records.
 */
import { Context, log } from '@temporalio/activity';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { checkSnapshots, type CheckMode } from '../engine/checker';
import { keys } from '../engine/repository';
import {
  lastVerifiedSnapshot as domainLastVerified,
  locateUnreadableTrees,
  pruneVerifications,
  recordVerification,
  verificationInputs,
} from '../engine/verification';
import type { Logger } from '../logging/logger';
import { assetConfig, TenantRepositories } from '../tenancy/repositories';
import { permanentFailures } from './engine-failures';
import { emitIntegrityFailure, type IntegrityFailureEvent } from './integrity-events';
import { activityAuditor, type AuditDeps } from './audit';
import { verificationResult } from '../audit/workflow-entries';

export interface VerifyActivityDeps extends AuditDeps {
  config: LoadedConfig;
  repositories: TenantRepositories;
  logger: Logger;
}

/** Problems listed per snapshot in activity and workflow results (counts are always complete). */
export const PROBLEMS_LISTED = 10;

export interface PlanVerificationInput {
  asset: string;
  /** a snapshot id or unique prefix; omitted = every snapshot of the asset */
  snapshot?: string;
}

export interface VerificationPlan {
  asset: string;
  tenant: string;
  /** oldest first */
  snapshotIds: string[];
}

export interface VerifySnapshotsInput {
  asset: string;
  snapshotIds: string[];
  mode: CheckMode;
  samplePercent: number;
  /** recorded as `by` in each verification record */
  workflowId?: string;
}

export interface VerifiedSnapshot {
  snapshotId: string;
  /** `forgotten`: retention deleted the snapshot while it was being checked (nothing recorded) */
  state: 'verified' | 'corrupt' | 'forgotten';
  problemCount: number;
  problems: Array<{ object: string; problem: string }>;
  recordKey?: string;
}

export interface VerifySnapshotsResult {
  tenant: string;
  time: string;
  packsChecked: number;
  bytesDownloaded: number;
  durationMs: number;
  snapshots: VerifiedSnapshot[];
}

/** What the CLI shows while a verification runs (heartbeat details). */
export interface VerifyProgress {
  phase: 'loading' | 'checking' | 'recording';
  snapshots: number;
  packsDone: number;
  packsTotal: number;
}

/**
 * Heartbeats the latest progress every few seconds while `fn` runs, so a long
 * phase without progress callbacks (loading manifests and trees) does not look dead.
 */
export async function withHeartbeat<P, T>(initial: P, fn: (update: (p: P) => void) => Promise<T>, everyMs = 5000): Promise<T> {
  const ctx = Context.current();
  let last = initial;
  ctx.heartbeat(last);
  const timer = setInterval(() => ctx.heartbeat(last), everyMs);
  try {
    return await fn((p) => {
      last = p;
      ctx.heartbeat(p);
    });
  } finally {
    clearInterval(timer);
  }
}

export function createVerifyActivities(deps: VerifyActivityDeps) {
  const tenantOf = (asset: string) => assetConfig(deps.config, asset).tenant;
  /**
   * A repository with a freshly loaded index: a long-lived worker's cached one
   * may still point at packs that garbage collection has since replaced, and a
   * check must see what is stored now.
   */
  const freshRepository = (tenant: string) => new TenantRepositories(deps.config, undefined, deps.logger).repository(tenant);
  const warn = (w: { key: string; reason: string }) => log.warn('ignored an untrustworthy record', { key: w.key, reason: w.reason });
  const auditor = activityAuditor(deps);

  return {
    /** The newest snapshot of the asset whose latest verification passed and that is not quarantined; null if none. */
    async lastVerifiedSnapshot(input: { asset: string }): Promise<string | null> {
      return permanentFailures(async () => {
        const repo = await deps.repositories.repository(tenantOf(input.asset));
        return (await domainLastVerified(repo, input.asset, { onWarning: warn }))?.id ?? null;
      });
    },

    async planVerification(input: PlanVerificationInput): Promise<VerificationPlan> {
      return permanentFailures(async () => {
        const tenant = tenantOf(input.asset);
        const repo = await deps.repositories.repository(tenant);
        if (input.snapshot !== undefined) {
          const id = await repo.resolveSnapshotId(input.snapshot);
          const m = await repo.loadSnapshot(id);
          if (m.body.asset.name !== input.asset) {
            throw new UserError(`snapshot ${id.slice(0, 12)} belongs to asset ${m.body.asset.name}, not ${input.asset}`);
          }
          return { asset: input.asset, tenant, snapshotIds: [id] };
        }
        const snaps = await repo.listSnapshots({ asset: input.asset });
        return { asset: input.asset, tenant, snapshotIds: snaps.map((s) => s.id) };
      });
    },

    /**
     * Checks the given snapshots together (shared packs are checked once),
     * records one signed result per snapshot and returns a bounded summary.
     */
    async verifySnapshots(input: VerifySnapshotsInput): Promise<VerifySnapshotsResult> {
      return permanentFailures(async () => {
        const tenant = tenantOf(input.asset);
        const repo = await freshRepository(tenant);
        const signal = Context.current().cancellationSignal;
        const base: VerifyProgress = { phase: 'loading', snapshots: input.snapshotIds.length, packsDone: 0, packsTotal: 0 };
        return withHeartbeat(base, async (progress) => {
          const checked = await checkSnapshots(repo, {
            snapshotIds: input.snapshotIds,
            mode: input.mode,
            samplePercent: input.samplePercent,
            signal,
            onProgress: (p) => progress({ ...base, phase: 'checking', packsDone: p.packsDone, packsTotal: p.packsTotal }),
          });
          progress({ ...base, phase: 'recording', packsDone: checked.packsChecked, packsTotal: checked.packsChecked });
          const report = await locateUnreadableTrees(repo, checked, signal);
          const time = new Date();
          const snapshots: VerifiedSnapshot[] = [];
          for (const rec of verificationInputs(report, () => input.asset, input.workflowId)) {
            signal.throwIfAborted();
            // A snapshot retention forgot meanwhile lost its data legitimately: not corruption.
            if (rec.problems.length > 0 && !(await repo.store.head(keys.snapshot(rec.snapshotId)))) {
              snapshots.push({ snapshotId: rec.snapshotId, state: 'forgotten', problemCount: 0, problems: [] });
              continue;
            }
            const stored = await recordVerification(repo, { ...rec, time });
            await pruneVerifications(repo, rec.snapshotId, undefined, warn);
            snapshots.push({
              snapshotId: rec.snapshotId,
              state: rec.problems.length === 0 ? 'verified' : 'corrupt',
              problemCount: rec.problems.length,
              problems: rec.problems.slice(0, PROBLEMS_LISTED).map(({ object, problem }) => ({ object, problem })),
              recordKey: stored.key,
            });
          }
          // One audit entry per snapshot checked, after its result is recorded in the repository.
          for (const v of snapshots) {
            await auditor.record(
              verificationResult({ asset: input.asset, tenant, snapshot: v.snapshotId, mode: input.mode, samplePercent: input.samplePercent, state: v.state, problemCount: v.problemCount }),
            );
          }
          return {
            tenant,
            time: time.toISOString(),
            packsChecked: report.packsChecked,
            bytesDownloaded: report.bytesDownloaded,
            durationMs: report.durationMs,
            snapshots,
          };
        });
      });
    },

    /** Logs the failure at error level and hands it to every registered sink (incident response). */
    async reportIntegrityFailure(event: IntegrityFailureEvent): Promise<void> {
      const info = Context.current().info;
      await emitIntegrityFailure(event, deps.logger.child({ workflowId: info.workflowExecution?.workflowId, activityId: info.activityId }));
    },
  };
}
