/**
 * Retention of one asset, decided and applied: the keep rules of its policy
 * (engine/retention.ts `applyKeepPolicy`) plus the snapshots nothing may
 * delete — held ones, quarantined ones (evidence) and the newest verified one —
 * each kept with the reasons why. Used by the retention workflow's activity
 * and by `lifeline retention run --dry-run`, so both decide identically.
 */
import type { Repository } from './repository';
import { applyKeepPolicy, type KeepPolicy } from './retention';
import type { RecordWarningSink } from './records';
import { forgetUnprotected, protectedSnapshots, snapshotStatuses, type SnapshotVerification } from './verification';

export interface RetentionPlanEntry {
  id: string;
  time: string;
  verification: SnapshotVerification['state'];
  /** why it is kept (keep rules, holds, …); empty when it is forgotten */
  reasons: string[];
}

export interface RetentionPlan {
  asset: string;
  policy: KeepPolicy;
  /** newest first */
  keep: RetentionPlanEntry[];
  /** newest first */
  forget: RetentionPlanEntry[];
}

export async function planRetention(repo: Repository, asset: string, policy: KeepPolicy, opts: { onWarning?: RecordWarningSink } = {}): Promise<RetentionPlan> {
  const statuses = await snapshotStatuses(repo, { asset, onWarning: opts.onWarning });
  const decision = applyKeepPolicy(statuses, policy, protectedSnapshots(statuses));
  const byId = new Map(statuses.map((s) => [s.id, s]));
  const entry = (id: string, reasons: string[]): RetentionPlanEntry => {
    const s = byId.get(id)!;
    return { id, time: s.time, verification: s.verification.state, reasons };
  };
  return {
    asset,
    policy,
    keep: decision.keep.map((k) => entry(k.id, k.reasons)),
    forget: decision.forget.map((id) => entry(id, [])),
  };
}

export interface RetentionOutcome {
  plan: RetentionPlan;
  forgotten: string[];
  /** planned for forgetting but held or quarantined by the time it was deleted */
  spared: Array<{ id: string; reason: string }>;
}

/** Plans, then forgets (re-checking holds right before each deletion). Idempotent: a rerun plans again from what is left. */
export async function applyRetention(repo: Repository, asset: string, policy: KeepPolicy, opts: { onWarning?: RecordWarningSink } = {}): Promise<RetentionOutcome> {
  const plan = await planRetention(repo, asset, policy, opts);
  const { forgotten, kept } = await forgetUnprotected(
    repo,
    plan.forget.map((f) => f.id),
    opts,
  );
  return { plan, forgotten, spared: kept };
}
