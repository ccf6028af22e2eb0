/**
 * ChaosDrillWorkflow — the runbook of a chaos drill in staging. Runs on the
 * drill worker (`lifeline-drill`), so it survives a crashed orchestrator:
 *
 *   1. validate   the scenario against this installation: staging only,
 *                 every name declared, each of the node's assets verified
 *                 recently; a refusal injects nothing       (DrillRefused /
 *                 DrillPreconditionFailed)
 *   2. watch      the node's health workflow runs (it is what detects)
 *   3. inject     each fault at its offset; crash-orchestrator `during:
 *                 recovery` waits until a recovery has started, and the
 *                 orchestrator is started again after `restartAfter`;
 *                 ransomware: the drill plays the external detector and
 *                 reports a suspected compromise
 *   4. observe    detection → incident → approval (as `drill:<id>` with
 *                 approval auto) → node rebuilt → data restored → training
 *                 resumed, all done by Lifeline for real
 *   5. revert     EVERY injected fault, in reverse order, also when the drill
 *                 is cancelled, times out or fails midway (non-cancellable);
 *                 an aborted drill first cancels the incident it caused
 *   6. check      nothing is left active; optionally back up and verify the
 *                 node's assets again (backups-continue)
 *   7. report     measured RTO/RPO against the objectives, pass/fail per
 *                 objective, written as JSON (+ HTML) by an activity
 *
 * The history carries ids, times and small facts only.
 */
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  executeChild,
  isCancellation,
  proxyActivities,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { createDrillActivities, DrillPlan, DrillSummary } from '../activities/drill';
import { emptyObservation, followedObjectIncidents, objectFaultIncidents, type DrillObservation } from '../drills/measure';
import type { DrillFaultRecord, DrillWorkflowLink } from '../drills/report';
import type { Expectation, Scenario } from '../drills/scenario';
import { ORCHESTRATOR_TASK_QUEUE } from './task-queues';

export interface ChaosDrillInput {
  scenario: Scenario;
  /** the orchestrator's task queue (incidents, recoveries, backups run there); default lifeline-orchestrator */
  orchestratorTaskQueue?: string;
}

export interface DrillProgress {
  step: 'validate' | 'watch' | 'inject' | 'observe' | 'revert' | 'check' | 'report' | 'done';
  faults: Array<{ id: string; state: 'planned' | 'injected' | 'reverted' | 'left-active' }>;
  incident: string | null;
  incidentStatus: string | null;
}

export const drillProgressQuery = defineQuery<DrillProgress>('progress');

export const DrillFailed = 'DrillFailed';

/** How long one observation activity runs before reporting back (keeps `progress` current; ~3 history events each). */
const OBSERVE_SLICE_SECONDS = 10;

type DrillActivities = ReturnType<typeof createDrillActivities>;

const acts = proxyActivities<DrillActivities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
});

export async function chaosDrillWorkflow(input: ChaosDrillInput): Promise<DrillSummary> {
  const s = input.scenario;
  const drillId = workflowInfo().workflowId;
  const orchestratorTaskQueue = input.orchestratorTaskQueue ?? ORCHESTRATOR_TASK_QUEUE;
  const now = () => new Date().toISOString();
  const startedAt = now();
  const progress: DrillProgress = { step: 'validate', faults: s.faults.map((f, i) => ({ id: `f${i}-${f.kind}`, state: 'planned' })), incident: null, incidentStatus: null };
  setHandler(drillProgressQuery, () => progress);
  const links: DrillWorkflowLink[] = [{ role: 'drill', workflowId: drillId, runId: workflowInfo().runId }];

  // ---- 1. validate: nothing is injected when this fails ----------------------------------------
  let plan: DrillPlan;
  try {
    plan = await acts.drillPrepare({ drillId, scenario: s });
  } catch (err) {
    // the activity's own failure type (DrillRefused, DrillPreconditionFailed) becomes the drill's
    const cause = (err as Error).cause;
    if (cause instanceof ApplicationFailure) throw ApplicationFailure.create({ type: cause.type ?? DrillFailed, message: cause.message, nonRetryable: true, details: cause.details as unknown[] });
    throw err;
  }
  const preconditionsMetAt = now();

  // ---- 2. watch -------------------------------------------------------------------------------
  progress.step = 'watch';
  const watch = await acts.drillEnsureWatching({ node: s.node, orchestratorTaskQueue });
  links.push({ role: 'node-health', workflowId: watch.workflowId });
  await acts.drillAudit({ drillId, node: s.node, action: 'started', outcome: 'started', details: { scenario: s.name, faults: s.faults.length } });

  const records: DrillFaultRecord[] = plan.faults.map((f) => ({ id: f.id, kind: f.spec.kind, injectedAt: null, revertedAt: null, reverted: true, detail: {} }));
  const injected: string[] = [];
  const errors: string[] = [];
  let obs: DrillObservation = emptyObservation();
  let compromiseIncident: string | undefined;
  const observer = proxyActivities<DrillActivities>({
    startToCloseTimeout: plan.timeoutMs + 60_000,
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '2 seconds', maximumInterval: '30 seconds', maximumAttempts: 10 },
  });
  const deadline = Date.now() + plan.timeoutMs;
  const remainingSeconds = () => Math.max(1, Math.round((deadline - Date.now()) / 1000));

  const inject = async (f: DrillPlan['faults'][number]) => {
    const rec = records.find((r) => r.id === f.id)!;
    injected.push(f.id); // before the call: a revert is attempted even if the injection failed halfway
    rec.reverted = false;
    const r = await acts.drillInjectFault({ drillId, faultId: f.id, spec: f.spec });
    rec.injectedAt = r.injectedAt;
    rec.detail = r.detail;
    progress.faults.find((p) => p.id === f.id)!.state = 'injected';
  };
  const revert = async (f: DrillPlan['faults'][number]) => {
    const rec = records.find((r) => r.id === f.id)!;
    try {
      const r = await acts.drillRevertFault({ drillId, faultId: f.id, spec: f.spec });
      rec.revertedAt = r.revertedAt;
      rec.reverted = !r.active;
      rec.detail = { ...rec.detail, ...r.detail };
      if (r.active) rec.error = 'still active after its revert';
    } catch (err) {
      rec.reverted = false;
      rec.error = `revert failed: ${(err as Error).message}`.slice(0, 500);
    }
    progress.faults.find((p) => p.id === f.id)!.state = rec.reverted ? 'reverted' : 'left-active';
  };

  // storage-outage and network faults end after their duration (storage is back); the final revert catches any left
  const timedReverts: Promise<void>[] = [];
  const revertAfterDuration = (f: DrillPlan['faults'][number]) =>
    timedReverts.push(
      (async () => {
        await sleep(f.durationMs!);
        await revert(f);
      })(),
    );
  const storageOnly = plan.faults.every((f) => f.durationMs !== undefined);

  let aborted = false;
  let cancelled: unknown;
  try {
    await CancellationScope.withTimeout(plan.timeoutMs, async () => {
      // ---- 3. inject at the offsets ------------------------------------------------------------
      progress.step = 'inject';
      const t0 = Date.now();
      const ordered = [...plan.faults].sort((a, b) => a.atMs - b.atMs);
      const duringRecovery = ordered.filter((f) => f.spec.kind === 'crash-orchestrator' && f.spec.during === 'recovery');
      for (const f of ordered) {
        if (duringRecovery.includes(f)) continue;
        const wait = t0 + f.atMs - Date.now();
        if (wait > 0) await sleep(wait);
        await inject(f);
        if (f.durationMs !== undefined) revertAfterDuration(f);
        if (f.spec.kind === 'ransomware') {
          // the drill plays the external detector (an IDS or canary-file watcher) and reports the compromise
          compromiseIncident = await acts.drillReportCompromise({ drillId, node: f.spec.node, compromisedAt: records.find((r) => r.id === f.id)!.injectedAt!, orchestratorTaskQueue });
        }
        if (f.spec.kind === 'crash-orchestrator') {
          await sleep(f.restartAfterMs);
          await revert(f);
        }
      }
      // ---- 4. observe (and crash the orchestrator once recovery runs) ----------------------------
      progress.step = 'observe';
      if (storageOnly) {
        // no incident is expected: the service is back once every storage fault has run its duration and was reverted
        await Promise.all(timedReverts);
        const back = records.map((r) => (r.reverted ? r.revertedAt : null));
        obs.serviceBackAt = back.every((t) => t !== null) ? (back as string[]).sort().at(-1)! : null;
        if (!obs.serviceBackAt) obs.errors.push('a storage fault could not be reverted after its duration');
        return;
      }
      const since = records.map((r) => r.injectedAt).filter((t): t is string => t !== null).sort()[0] ?? startedAt;
      // in slices, so the progress query follows the incident
      const observe = async (until: 'recovery-started' | 'closed') => {
        for (;;) {
          obs = await observer.drillObserve({ drillId, node: s.node, since, approval: s.approval, until, timeoutSeconds: remainingSeconds(), sliceSeconds: OBSERVE_SLICE_SECONDS, incidentId: compromiseIncident, watchIncidents: followedObjectIncidents(records), prior: obs });
          progress.incident = obs.incidentId;
          progress.incidentStatus = obs.incidentStatus;
          if (obs.incidentClosedAt || (until === 'recovery-started' && obs.recoveryStartedAt) || Date.now() >= deadline || obs.errors.some((e) => e.startsWith('timed out'))) return;
        }
      };
      for (const f of duringRecovery) {
        await observe('recovery-started');
        if (!obs.recoveryStartedAt) break;
        await inject(f);
        await sleep(f.restartAfterMs);
        await revert(f);
      }
      if (plan.faults.length > duringRecovery.length || obs.recoveryStartedAt) await observe('closed');
    });
  } catch (err) {
    aborted = true;
    if (isCancellation(err)) {
      if (CancellationScope.current().consideredCancelled) {
        cancelled = err;
        errors.push('drill cancelled by an operator');
      } else errors.push(`drill timed out after ${s.timeout}`);
    } else errors.push(`drill failed midway: ${innermostMessage(err)}`.slice(0, 500));
  }

  // ---- 5.–7. revert everything, check, report — even when cancelled ------------------------------------
  const summary = await CancellationScope.nonCancellable(async () => {
    progress.step = 'revert';
    // the incident the drill caused: the one it observed, else the compromise it reported itself (aborted before observing)
    const incidentId = obs.incidentId ?? compromiseIncident ?? null;
    if (aborted && incidentId && !obs.incidentClosedAt) {
      // the orchestrator winds the incident down: one the drill crashed is started again first
      for (const id of [...injected].reverse()) {
        const f = plan.faults.find((x) => x.id === id)!;
        const rec = records.find((r) => r.id === id)!;
        if (f.spec.kind === 'crash-orchestrator' && !(rec.revertedAt && rec.reverted)) await revert(f);
      }
      const c = await acts.drillCancelIncident({ incidentId, timeoutSeconds: 180 }).catch((e: Error) => ({ status: `cancel failed: ${e.message}` }));
      errors.push(`incident ${incidentId} of the aborted drill: ${c.status}`);
    }
    for (const id of [...injected].reverse()) {
      const f = plan.faults.find((x) => x.id === id)!;
      const rec = records.find((r) => r.id === id)!;
      if (rec.revertedAt && rec.reverted) continue; // crash-orchestrator: already started again
      await revert(f);
    }
    if (aborted && injected.length) {
      // detectors may have opened incidents the drill never observed (it stopped first, or the orchestrator was down): close them too
      const since = records.map((r) => r.injectedAt).filter((t): t is string => t !== null).sort()[0] ?? startedAt;
      const left = await acts
        .drillOpenIncidentsSince({ node: s.node, since, settledAfter: now(), known: incidentId ? [incidentId] : [], alsoCheck: objectFaultIncidents(records), timeoutSeconds: 120 })
        .catch((e: Error) => ({ incidents: [] as string[], settled: false, error: e.message }));
      if (!left.settled) errors.push(`node health did not hear from node ${s.node} after the reverts; incidents opened later are not closed by the drill`);
      for (const other of left.incidents) {
        const c = await acts.drillCancelIncident({ incidentId: other, timeoutSeconds: 180 }).catch((e: Error) => ({ status: `cancel failed: ${e.message}` }));
        errors.push(`incident ${other} opened by a detector during the aborted drill: ${c.status}`);
        links.push({ role: 'incident', workflowId: other });
      }
    }
    // ---- 6. check ----------------------------------------------------------------------------------
    progress.step = 'check';
    const extra: Partial<Record<Expectation, { pass: boolean; detail: string }>> = {};
    if (!aborted && s.objectives.expect.includes('backups-continue')) extra['backups-continue'] = await backupsContinue(plan, drillId, orchestratorTaskQueue, links);
    // ---- 7. report ---------------------------------------------------------------------------------
    progress.step = 'report';
    if (incidentId) links.push({ role: 'incident', workflowId: incidentId });
    if (obs.recovery) {
      links.push({ role: 'recover-node', workflowId: obs.recovery.workflowId });
      for (const a of obs.recovery.assets) links.push({ role: 'restore', workflowId: `${obs.recovery.workflowId}-restore-${a.asset}` });
    }
    return acts.drillWriteReport({
      id: drillId,
      scenario: s.name,
      node: s.node,
      startedAt,
      finishedAt: now(),
      preconditionsMetAt,
      aborted,
      faults: records,
      observation: obs,
      objectives: { rto: s.objectives.rto, rtoMs: plan.rtoMs, ...(s.objectives.rpo && plan.rpoMs !== undefined ? { rpo: s.objectives.rpo, rpoMs: plan.rpoMs } : {}), expect: s.objectives.expect },
      extra,
      workflows: links,
      errors,
    });
  });
  progress.step = 'done';
  if (cancelled) throw cancelled;
  return summary;
}

/** After the faults are gone, a backup and a verification of each of the node's assets must succeed. */
async function backupsContinue(plan: DrillPlan, drillId: string, taskQueue: string, links: DrillWorkflowLink[]): Promise<{ pass: boolean; detail: string }> {
  const failed: string[] = [];
  for (const { asset } of plan.verified) {
    const backupId = `${drillId}-backup-${asset}`;
    const verifyId = `${drillId}-verify-${asset}`;
    links.push({ role: 'backup', workflowId: backupId }, { role: 'verify', workflowId: verifyId });
    try {
      const b = (await executeChild('backupWorkflow', { workflowId: backupId, taskQueue, args: [{ asset, trigger: 'manual' }] })) as { snapshotId: string };
      await executeChild('verifyWorkflow', { workflowId: verifyId, taskQueue, args: [{ asset, snapshot: b.snapshotId }] });
    } catch (err) {
      failed.push(`${asset}: ${innermostMessage(err).slice(0, 200)}`);
    }
  }
  return failed.length ? { pass: false, detail: failed.join('; ') } : { pass: true, detail: `${plan.verified.length} asset(s) backed up and verified after the drill` };
}

function innermostMessage(err: unknown): string {
  let msg = (err as Error)?.message ?? String(err);
  for (let e: unknown = err, i = 0; e && i < 6; e = (e as Error).cause, i++) if ((e as Error).message) msg = (e as Error).message;
  return msg;
}
