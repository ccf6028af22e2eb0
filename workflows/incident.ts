/**
 * Incident runbook, one workflow per incident (id = type + subject, see
 * incidents/model.ts; a repeated event joins it by signal-with-start):
 *
 *   1. plan      which assets are affected, the approval policy
 *   2. contain   legal hold on every affected snapshot; on a suspected
 *                compromise, quarantine the snapshots taken after it (they are
 *                never chosen as restore points); on an integrity failure, the
 *                corrupt snapshot
 *   3. notify    webhooks (activity, retried)
 *   4. ask       each destructive step waits for an `approve`/`reject` Update
 *                (validated) until `incident.approvalTimeout`; then an
 *                escalation notice and the incident ends `expired`
 *   5. act       `incident.recovery: manual`: the approval is recorded and
 *                people rebuild
 *   6. close     summary (restore points, data-loss window, time to recover);
 *                the incident's holds are released (quarantine stays as
 *                evidence), non-cancellable
 *
 * Every step is in the timeline (`incident` query) with time and actor, and
 * is an audit entry (incident-step; decisions are approval entries naming who
 * decided).
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  executeChild,
  ParentClosePolicy,
  proxyActivities,
  startChild,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { IncidentPlan } from '../activities/incident';
import type { RecoverNodeResult } from './recover-node';
import type { VerifyResult } from './verify';
import { describeTamper } from '../alarm/tamper';
import {
  decisionProblem,
  defaultSeverity,
  plannedSteps,
  summarize,
  TERMINAL_STATUSES,
  type ContainedAsset,
  type DecisionInput,
  type IncidentNotice,
  type IncidentStatus,
  type IncidentStep,
  type IncidentSummary,
  type IncidentTrigger,
  type Severity,
  type StepState,
  type StorageTamper,
  type TimelineEntry,
} from '../incidents/model';
import { audit } from './audit';
import { approvalDecision, incidentStep, type WorkflowAuditEntry } from '../audit/workflow-entries';

/** The innermost failure message (a child's ApplicationFailure rather than "Child Workflow execution failed"). */
function failureMessage(err: unknown): string {
  let msg = (err as Error)?.message ?? String(err);
  for (let e: unknown = err, i = 0; e && i < 6; e = (e as Error).cause, i++) if ((e as Error).message) msg = (e as Error).message;
  return msg;
}

export interface IncidentInput {
  trigger: IncidentTrigger;
}

export interface IncidentView {
  id: string;
  type: IncidentTrigger['type'];
  severity: Severity;
  status: IncidentStatus;
  nodes: string[];
  assets: string[];
  openedAt: string;
  closedAt: string | null;
  steps: Record<string, StepState>;
  /** step → who decided and why */
  decisions: Record<string, { decision: 'approved' | 'rejected'; actor: string; reason?: string; at: string }>;
  approvalDeadline: string | null;
  contained: ContainedAsset[];
  timeline: TimelineEntry[];
  summary: IncidentSummary | null;
  /** recovery: recover-node — the child RecoverNodeWorkflow of each rebuilt node */
  recoveries: Array<{ node: string; workflowId: string; outcome: 'running' | 'recovered' | 'failed'; detail?: string }>;
  /** storage-tamper: what was changed (first burst; `count` and `bursts` grow as later bursts join) */
  tamper?: StorageTamper & { bursts: number };
  /** storage-tamper: the shallow verification of each affected asset after containment */
  verifications?: Array<{ asset: string; workflowId: string; outcome: 'intact' | 'corrupt' | 'failed'; verified: number; corrupt: number; detail?: string }>;
}

export const incidentQuery = defineQuery<IncidentView>('incident');
/** Another event about the same subject (signal-with-start joins the open incident). */
export const incidentEventSignal = defineSignal<[IncidentTrigger]>('incidentEvent');
export const approveUpdate = defineUpdate<IncidentView, [DecisionInput]>('approve');
export const rejectUpdate = defineUpdate<IncidentView, [DecisionInput]>('reject');

const TIMELINE_MAX = 500;

const acts = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});
const notifier = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 10 },
});

export async function incidentWorkflow(input: IncidentInput): Promise<IncidentView> {
  const { trigger } = input;
  const id = workflowInfo().workflowId;
  const now = () => new Date().toISOString();
  const steps = plannedSteps(trigger);
  const view: IncidentView = {
    id,
    type: trigger.type,
    severity: trigger.severity ?? defaultSeverity(trigger.type),
    status: 'open',
    nodes: [...trigger.nodes],
    assets: [...trigger.assets],
    openedAt: now(),
    closedAt: null,
    steps: Object.fromEntries(steps.map((s) => [s, 'planned' as StepState])),
    decisions: {},
    approvalDeadline: null,
    contained: [],
    timeline: [],
    summary: null,
    recoveries: [],
    ...(trigger.tamper ? { tamper: { ...trigger.tamper, bursts: 1 }, verifications: [] } : {}),
  };
  const restored: Array<{ asset: string; snapshot: string; time: string }> = [];
  const record = (actor: string, action: string, detail?: string) => {
    if (view.timeline.length < TIMELINE_MAX) view.timeline.push({ at: now(), actor, action, ...(detail ? { detail } : {}) });
  };
  let plan: IncidentPlan | undefined;
  let noticeSeq = 0;
  const notify = async (kind: IncidentNotice['kind'], text: string, extra: { step?: string; actor?: string } = {}) => {
    if (!plan || plan.webhooks === 0) return;
    const n = ++noticeSeq;
    try {
      const r = await notifier.notifyIncident({
        id: `${id}:${n}:${kind}`,
        incident: id,
        kind,
        type: view.type,
        severity: view.severity,
        status: view.status,
        nodes: view.nodes,
        assets: view.assets,
        text,
        at: now(),
        ...extra,
      });
      record('lifeline', `notified:${kind}`, `${r.delivered} webhook(s)`);
    } catch (err) {
      // A notice that cannot be delivered is recorded; the runbook goes on.
      record('lifeline', `notify-failed:${kind}`, (err as Error).message.slice(0, 300));
    }
  };

  setHandler(incidentQuery, () => view);
  setHandler(incidentEventSignal, (t) => {
    if (t.at === trigger.at && t.actor === trigger.actor) return; // the signal that came with the start
    if (t.tamper && view.tamper) {
      view.tamper.bursts++;
      view.tamper.count += t.tamper.count;
      for (const [k, n] of Object.entries(t.tamper.kinds)) view.tamper.kinds[k] = (view.tamper.kinds[k] ?? 0) + (n ?? 0);
      view.tamper.lastAt = t.tamper.lastAt > view.tamper.lastAt ? t.tamper.lastAt : view.tamper.lastAt;
      record(t.actor, `event:${t.type}`, `another burst: ${describeTamper(t.tamper)}`);
      return;
    }
    record(t.actor, `event:${t.type}`, `repeated report${t.source ? ` from ${t.source}` : ''} at ${t.at}`);
  });
  const decide = (kind: 'approve' | 'reject') => (d: DecisionInput) => {
    const step = d.step as IncidentStep;
    const actor = d.actor?.trim() || 'unknown';
    view.steps[step] = kind === 'approve' ? 'approved' : 'rejected';
    view.decisions[step] = { decision: kind === 'approve' ? 'approved' : 'rejected', actor, ...(d.reason ? { reason: d.reason } : {}), at: now() };
    record(actor, kind === 'approve' ? `approved:${step}` : `rejected:${step}`, d.reason);
    return view;
  };
  for (const [update, kind] of [
    [approveUpdate, 'approve'],
    [rejectUpdate, 'reject'],
  ] as const) {
    setHandler(update, decide(kind), {
      validator: (d: DecisionInput) => {
        const problem = decisionProblem(kind, d, view.steps, view.status);
        if (problem) throw ApplicationFailure.nonRetryable(problem, 'InvalidDecision');
      },
    });
  }

  record(trigger.actor, 'opened', `${trigger.type}${trigger.summary ? `: ${trigger.summary}` : ''}${trigger.tamper ? `: ${describeTamper(trigger.tamper)}` : ''}${trigger.source ? ` (source ${trigger.source})` : ''}`);

  /** An audit entry for a step of this incident (ids and counts only). */
  const auditStep = (action: string, opts: { outcome?: WorkflowAuditEntry['outcome']; asset?: string; node?: string } = {}, details: Record<string, string | number | boolean | null> = {}) =>
    audit(incidentStep({ incident: id, incidentType: view.type, action, ...opts }, details));
  const only = (xs: string[]) => (xs.length === 1 ? xs[0] : undefined);

  let holdsReleased = 0;
  const close = async (outcome: IncidentStatus, why: string) => {
    view.status = outcome;
    await CancellationScope.nonCancellable(async () => {
      if (view.contained.some((c) => c.held.length > 0)) {
        holdsReleased = await acts.releaseIncidentHolds({ incidentId: id, runId: workflowInfo().runId, assets: view.contained.map((c) => c.asset), reason: `incident ${outcome}` });
        record('lifeline', 'holds-released', `${holdsReleased} hold(s); quarantine marks stay as evidence`);
      }
      view.closedAt = now();
      view.summary = summarize({ trigger, outcome, openedAt: view.openedAt, closedAt: view.closedAt, contained: view.contained, holdsReleased, recovery: plan?.recovery ?? 'manual', restored });
      record('lifeline', `closed:${outcome}`, why);
      await auditStep(
        'closed',
        { outcome: outcome === 'resolved' ? 'success' : outcome === 'rejected' ? 'denied' : outcome === 'expired' ? 'cancelled' : 'failure', node: only(view.nodes), asset: only(view.assets) },
        { status: outcome, holdsReleased },
      );
      await notify('closed', view.summary.what);
    });
    return view;
  };

  try {
    // 1. Plan.
    plan = await acts.planIncident({ nodes: trigger.nodes, assets: trigger.assets });
    view.assets = plan.assets.map((a) => a.asset);
    record('lifeline', 'planned', `${plan.assets.length} asset(s) affected; steps needing approval: ${steps.join(', ') || 'none'}`);
    await auditStep('opened', { node: only(view.nodes), asset: only(view.assets) }, { severity: view.severity, nodes: view.nodes.length, assets: view.assets.length, openedBy: trigger.actor.slice(0, 256) });

    // 2. Contain.
    if (view.assets.length) {
      const reason = trigger.type === 'suspected-compromise' ? `suspected compromise since ${trigger.compromisedAt}` : trigger.type;
      view.contained = await acts.containIncident({
        incidentId: id,
        runId: workflowInfo().runId,
        assets: view.assets,
        compromisedAt: trigger.compromisedAt,
        corruptSnapshot: trigger.snapshot,
        reason,
      });
      for (const c of view.contained) {
        record('lifeline', 'hold-placed', `asset ${c.asset}: ${c.held.length} snapshot(s) held`);
        if (c.quarantined.length) record('lifeline', 'quarantined', `asset ${c.asset}: ${c.quarantined.length} snapshot(s) suspect: ${c.quarantined.map((s) => s.slice(0, 12)).join(', ')}`);
        record('lifeline', 'restore-point', `asset ${c.asset}: ${c.restorePoint ? `${c.restorePoint.snapshot.slice(0, 12)} (${c.restorePoint.time})` : 'none verified'}`);
        await auditStep('contained', { asset: c.asset }, { held: c.held.length, quarantined: c.quarantined.length, restorePoint: c.restorePoint?.snapshot ?? null });
      }
    }
    // 2b. Storage tamper: check at once what the changes broke (a corrupt snapshot opens its own integrity-failure incident).
    if (trigger.type === 'storage-tamper' && view.verifications) {
      for (const asset of view.assets) {
        const workflowId = `${id}-verify-${asset}-${workflowInfo().runId.slice(0, 8)}`;
        const v: NonNullable<IncidentView['verifications']>[number] = { asset, workflowId, outcome: 'intact', verified: 0, corrupt: 0 };
        view.verifications.push(v);
        try {
          const r = (await executeChild('verifyWorkflow', { workflowId, args: [{ asset, mode: 'shallow' }] })) as VerifyResult;
          Object.assign(v, { verified: r.verified, corrupt: r.corrupt, outcome: r.corrupt ? 'corrupt' : 'intact' });
        } catch (err) {
          const details = (err as { cause?: { details?: unknown[]; type?: string } }).cause;
          const r = details?.type === 'IntegrityFailure' ? (details.details?.[0] as VerifyResult | undefined) : undefined;
          if (r) Object.assign(v, { verified: r.verified, corrupt: r.corrupt, outcome: 'corrupt' });
          else Object.assign(v, { outcome: 'failed', detail: failureMessage(err).slice(0, 300) });
        }
        record(workflowId, `verified:${asset}`, `${v.outcome}: ${v.verified} snapshot(s) verified, ${v.corrupt} corrupt${v.detail ? ` (${v.detail})` : ''}`);
      }
    }
    await notify('opened', `${view.type} incident ${id} opened (${view.severity}); ${view.contained.reduce((n, c) => n + c.held.length, 0)} snapshot(s) held`);

    // 3. Ask, then act, one destructive step at a time.
    for (const step of steps) {
      view.steps[step] = 'awaiting-approval';
      view.status = 'awaiting-approval';
      if (plan.autoApprove) {
        decide('approve')({ step, actor: 'policy:autoApprove', reason: 'incident.autoApprove in staging' });
      } else {
        view.approvalDeadline = new Date(Date.now() + plan.approvalTimeoutMs).toISOString();
        record('lifeline', `awaiting-approval:${step}`, `until ${view.approvalDeadline}`);
        await auditStep('approval-requested', { outcome: 'started' }, { step, deadline: view.approvalDeadline });
        await notify('approval-needed', `step ${step} of incident ${id} awaits approval until ${view.approvalDeadline}`, { step });
        const decided = await condition(() => view.steps[step] !== 'awaiting-approval', plan.approvalTimeoutMs);
        view.approvalDeadline = null;
        if (!decided) {
          view.steps[step] = 'expired';
          view.status = 'expired';
          record('lifeline', `expired:${step}`, `no decision within ${plan.approvalTimeoutMs / 1000}s; escalated`);
          await audit(approvalDecision({ incident: id, step, decision: 'expired' }));
          await notify('escalation', `ESCALATION: step ${step} of ${view.type} incident ${id} was not approved in time; nothing was rebuilt`, { step });
          return await close('expired', `approval of ${step} timed out`);
        }
      }
      const d = view.decisions[step]!;
      await audit(approvalDecision({ incident: id, step, decision: d.decision, decidedBy: d.actor }));
      if ((view.steps[step] as StepState) === 'rejected') {
        await notify('rejected', `step ${step} rejected by ${d.actor}`, { step, actor: d.actor });
        for (const rest of steps) if (view.steps[rest] === 'planned') view.steps[rest] = 'skipped';
        return await close('rejected', `${step} rejected by ${d.actor}${d.reason ? `: ${d.reason}` : ''}`);
      }
      await notify('approved', `step ${step} approved by ${d.actor}`, { step, actor: d.actor });
      view.status = 'recovering';
      if (step === 'rebuild-node' && plan.recovery === 'recover-node') {
        // incident.recovery: recover-node — RecoverNodeWorkflow rebuilds each node as a child; the incident follows it.
        const failedAt = trigger.detectedAt ?? trigger.compromisedAt ?? trigger.at;
        for (const node of view.nodes) {
          const childId = `${id}-recover-${node}`;
          const rec: IncidentView['recoveries'][number] = { node, workflowId: childId, outcome: 'running' };
          view.recoveries.push(rec);
          const child = await startChild('recoverNodeWorkflow', {
            workflowId: childId,
            // a suspected compromise rebuilds even an intact root (moved aside as evidence), from the snapshots taken before it
            args: [{ node, failedAt, ...(trigger.type === 'suspected-compromise' ? { compromised: true } : {}) }],
            parentClosePolicy: ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
          });
          record('lifeline', `recovery-started:${node}`, `RecoverNodeWorkflow ${childId}`);
          await auditStep('recovery-started', { outcome: 'started', node }, { recoveryWorkflow: childId });
          try {
            const r = (await child.result()) as RecoverNodeResult;
            rec.outcome = 'recovered';
            for (const a of r.assets) restored.push({ asset: a.asset, snapshot: a.snapshotId, time: a.snapshotTime });
            rec.detail = `${r.assets.length} asset(s) restored in ${Math.round(r.durationMs / 1000)}s`;
            record(childId, `recovered:${node}`, `${rec.detail}: ${r.assets.map((a) => `${a.asset}@${a.snapshotId.slice(0, 12)}`).join(', ') || 'nothing to restore'}`);
            await auditStep('recovered', { node }, { recoveryWorkflow: childId, assets: r.assets.length, durationMs: r.durationMs });
          } catch (err) {
            rec.outcome = 'failed';
            rec.detail = failureMessage(err).slice(0, 500);
            view.steps[step] = 'failed';
            record(childId, `recovery-failed:${node}`, rec.detail);
            await auditStep('recovery-failed', { outcome: 'failure', node }, { recoveryWorkflow: childId });
            for (const rest of steps) if (view.steps[rest] === 'planned') view.steps[rest] = 'skipped';
            return await close('failed', `recovery of node ${node} failed: ${rec.detail}`);
          }
        }
        view.steps[step] = 'done';
        continue;
      }
      // incident.recovery: manual — the approval is the hand-off; people do the work.
      view.steps[step] = 'done';
      record('lifeline', `manual:${step}`, `recovery is manual (incident.recovery): ${step} handed to ${d.actor}`);
      await auditStep('handed-off', {}, { step, to: d.actor.slice(0, 256) });
    }
    return await close('resolved', steps.length ? `every step approved (${steps.join(', ')})` : 'contained and notified; nothing to rebuild');
  } catch (err) {
    if (TERMINAL_STATUSES.includes(view.status)) throw err;
    record('lifeline', 'failed', (err as Error).message.slice(0, 500));
    await close('failed', (err as Error).message.slice(0, 300));
    throw err;
  }
}
