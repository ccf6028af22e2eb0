/**
 * Orchestrator activities for retention: apply an asset's keep rules (forget
 * snapshots, never a held, quarantined or newest verified one), then collect
 * garbage in the tenant's repository. Results are counts plus bounded lists
 * of ids, whatever the number of snapshots.
 */
import { createHash } from 'node:crypto';
import { Context, log } from '@temporalio/activity';
import type { LoadedConfig } from '../config/load';
import { durationMs, policyOf } from '../config/platform';
import { applyRetention as domainApplyRetention, planRetention, type RetentionPlanEntry } from '../engine/retention-plan';
import { collectGarbage, type GcReport, type KeepPolicy } from '../engine/retention';
import type { Logger } from '../logging/logger';
import { assetConfig, TenantRepositories, tenantLocation } from '../tenancy/repositories';
import { permanentFailures } from './engine-failures';
import { withHeartbeat } from './verify';
import { activityAuditor, type AuditDeps } from './audit';
import { garbageCollected, snapshotForgotten } from '../audit/workflow-entries';

export interface RetentionActivityDeps extends AuditDeps {
  config: LoadedConfig;
  repositories: TenantRepositories;
  logger: Logger;
}

/** Entries listed in results; counts are always complete. */
export const RETENTION_LISTED = 100;

export interface ApplyRetentionInput {
  asset: string;
  /** decide and report, delete nothing */
  dryRun?: boolean;
}

export interface RetentionSummary {
  asset: string;
  tenant: string;
  /** short hash naming the tenant's repository location (serialises garbage collection per repository) */
  repositoryKey: string;
  dryRun: boolean;
  policy: KeepPolicy;
  /** the policy's gcGrace in milliseconds */
  gcGraceMs: number;
  snapshots: number;
  keptCount: number;
  /** newest first, at most RETENTION_LISTED */
  kept: RetentionPlanEntry[];
  /** forgotten (or, in a dry run, to be forgotten) */
  forgottenCount: number;
  forgotten: Array<{ id: string; time: string }>;
  /** planned for forgetting but held or quarantined by the time of deletion */
  spared: Array<{ id: string; reason: string }>;
}

export interface CollectGarbageInput {
  tenant: string;
  graceMs: number;
}

/** The keep rules of an asset's policy. */
export function keepPolicyOf(config: LoadedConfig, asset: string): { policy: KeepPolicy; gcGraceMs: number } {
  const a = assetConfig(config, asset);
  const r = policyOf(config.policies, a.policy).retention;
  const policy: KeepPolicy = {};
  for (const k of ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly'] as const) if (r[k] !== undefined) policy[k] = r[k];
  return { policy, gcGraceMs: durationMs(r.gcGrace) };
}

export function createRetentionActivities(deps: RetentionActivityDeps) {
  const warn = (w: { key: string; reason: string }) => log.warn('ignored an untrustworthy record', { key: w.key, reason: w.reason });
  const repositoryKey = (tenant: string) => {
    const loc = tenantLocation(deps.config, tenant, deps.config.storage);
    return createHash('sha256').update(`${deps.config.storage.endpoint ?? 'embedded'}|${loc.bucket}|${loc.prefix}`).digest('hex').slice(0, 12);
  };

  const auditor = activityAuditor(deps);

  return {
    async applyRetention(input: ApplyRetentionInput): Promise<RetentionSummary> {
      return permanentFailures(async () => {
        const a = assetConfig(deps.config, input.asset);
        const { policy, gcGraceMs } = keepPolicyOf(deps.config, input.asset);
        const repo = await deps.repositories.repository(a.tenant);
        const dryRun = input.dryRun ?? false;
        const outcome = dryRun
          ? { plan: await planRetention(repo, input.asset, policy, { onWarning: warn }), forgotten: null, spared: [] }
          : await domainApplyRetention(repo, input.asset, policy, { onWarning: warn });
        const { plan } = outcome;
        const forgottenIds = outcome.forgotten ?? plan.forget.map((f) => f.id);
        const forgottenSet = new Set(forgottenIds);
        const forgotten = plan.forget.filter((f) => forgottenSet.has(f.id)).map(({ id, time }) => ({ id, time }));
        const kept = [...plan.keep, ...plan.forget.filter((f) => !forgottenSet.has(f.id))];
        // Each forgotten snapshot is an audit entry (after the deletion). A failure to record one is
        // logged and does not stop the others: a retry would not forget (nor record) them again.
        if (!dryRun) {
          for (const f of forgotten) {
            await auditor.record(snapshotForgotten({ asset: input.asset, tenant: a.tenant, snapshot: f.id, snapshotTime: f.time })).catch((err: unknown) =>
              log.error('audit entry NOT recorded', { auditType: 'retention-deletion', auditAction: 'snapshot-forgotten', asset: input.asset, snapshot: f.id, error: String(err) }),
            );
          }
        }
        return {
          asset: input.asset,
          tenant: a.tenant,
          repositoryKey: repositoryKey(a.tenant),
          dryRun,
          policy,
          gcGraceMs,
          snapshots: plan.keep.length + plan.forget.length,
          keptCount: kept.length,
          kept: kept.slice(0, RETENTION_LISTED),
          forgottenCount: forgotten.length,
          forgotten: forgotten.slice(0, RETENTION_LISTED),
          spared: outcome.spared.slice(0, RETENTION_LISTED),
        };
      });
    },

    /**
     * Two-phase garbage collection of a tenant's repository (engine/retention.ts):
     * sweep tombstones older than the grace period, then mark unreferenced packs.
     * Safe alongside running backups; the workflow runs at most one per repository.
     */
    async collectRepositoryGarbage(input: CollectGarbageInput): Promise<GcReport> {
      return permanentFailures(async () => {
        // A fresh repository object: this run must see the current index and tombstones,
        // and must not share in-memory index state with backups in this process.
        const repo = await new TenantRepositories(deps.config, undefined, deps.logger).repository(input.tenant);
        const signal = Context.current().cancellationSignal;
        return withHeartbeat({ phase: 'collecting' }, async () => {
          const report = await collectGarbage(repo, { graceMs: input.graceMs, signal });
          log.info('garbage collection finished', {
            tenant: input.tenant,
            condemned: report.condemned,
            deleted: report.deleted,
            deletedBytes: report.deletedBytes,
            rescued: report.rescued,
            deferred: report.deferred.length,
          });
          await auditor.record(garbageCollected({ tenant: input.tenant, ...report }));
          return { ...report, deferred: report.deferred.slice(0, RETENTION_LISTED) };
        });
      });
    },
  };
}
