/**
 * Drill activities: thin adapters from ChaosDrillWorkflow to the scenario
 * checks, the fault injectors (drills/faults), the Temporal client (to watch
 * node health and the incident, and to approve as `drill:<id>`), and the report
 * files. They run on the drill worker (`lifeline-drill`), which is not the
 * orchestrator: a drill that crashes the orchestrator keeps running.
 * Only ids, times, counts and short texts cross into the workflow.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { durationMs } from '../config/platform';
import { openAuditLog } from '../audit/open';
import { lastVerifiedSnapshot } from '../engine/verification';
import { incidentTrigger, openIncident } from '../events/dispatch';
import { parseEvent, type IncidentEvent } from '../events/schema';
import type { Logger } from '../logging/logger';
import { assetConfig, type TenantRepositories } from '../tenancy/repositories';
import { supervisedWorker } from '../workers/supervised';
import type { FaultContext, InjectedFault, RevertedFault } from '../drills/fault';
import { faultInjector, faultStateDir, missingInjectors } from '../drills/faults';
import { writeDrillReport } from '../drills/report-files';
import { resolveFromRoot } from '../config/root';
import { workflowUiLink } from '../cli/runs';
import { FaultNotApplicable } from '../drills/faults/state';
import { buildDrillReport, emptyObservation, type DrillObservation, type MeasureInput } from '../drills/measure';
import type { DrillReport } from '../drills/report';
import { scenarioProblems, type FaultSpec, type Scenario } from '../drills/scenario';
import { nodeHealthId, nodeHealthInput } from '../incidents/watch';
import type { IncidentView } from '../workflows/incident';
import type { NodeHealthView } from '../workflows/node-health';
import type { RecoverNodeProgress, RecoverNodeResult } from '../workflows/recover-node';

export interface DrillActivityDeps {
  config: LoadedConfig;
  repositories: TenantRepositories;
  logger: Logger;
}

/** Failure types of drills (the workflow and the CLI branch on them). */
export const DrillFailureTypes = {
  /** the drill may not run here (not staging, undeclared names, a fault kind without an injector): nothing was injected */
  Refused: 'DrillRefused',
  /** a precondition does not hold (no recent verified snapshot, no supervised orchestrator): nothing was injected */
  Precondition: 'DrillPreconditionFailed',
  /** a fault cannot be injected as asked */
  FaultNotApplicable: 'FaultNotApplicable',
} as const;

export interface DrillPlan {
  /** durationMs: storage-outage and network faults last this long, then they are reverted (storage is back) */
  faults: Array<{ id: string; spec: FaultSpec; atMs: number; restartAfterMs: number; durationMs?: number }>;
  timeoutMs: number;
  rtoMs: number;
  rpoMs?: number;
  /** each asset of the node: its newest verified snapshot (the precondition) */
  verified: Array<{ asset: string; snapshotId: string; time: string }>;
}

export interface ObserveInput {
  drillId: string;
  node: string;
  /** incidents opened before this time are someone else's */
  since: string;
  approval: 'auto' | 'operator';
  /** stop once recovery has started, or once the incident is closed */
  until: 'recovery-started' | 'closed';
  timeoutSeconds: number;
  /** return after this long even when not there yet, so the workflow's progress query stays current */
  sliceSeconds?: number;
  /** an incident the drill opened itself (the ransomware drill plays the detector) */
  incidentId?: string;
  /** integrity-failure incidents a stored-object fault should open (the verify schedule detects) */
  watchIncidents?: string[];
  prior?: DrillObservation;
}

const POLL_MS = 1000;

export function createDrillActivities(deps: DrillActivityDeps) {
  const { config } = deps;
  const faultCtx = (drillId: string, faultId: string): FaultContext => ({
    config,
    drillId,
    stateDir: faultStateDir(config, drillId, faultId),
    logger: deps.logger,
    progress: (detail) => Context.current().heartbeat(detail),
  });

  const audit = async (drillId: string, action: string, outcome: 'started' | 'success' | 'failure' | 'cancelled', node: string, details: Record<string, string | number | boolean | null>) => {
    // The audit log records drills when it is set up; a drill does not fail for want of one.
    try {
      const log = await openAuditLog(config, { logger: deps.logger });
      await log.record({ type: 'drill', action, outcome, actor: { kind: 'workflow', id: drillId }, node, details });
    } catch (err) {
      if (!(err instanceof UserError)) deps.logger.warn({ drillId, action, err: (err as Error).message }, 'drill audit entry not recorded');
    }
  };

  return {
    /**
     * Checks the scenario against this installation before anything is
     * injected: staging only, every name declared, every fault kind
     * injectable, each of the node's assets verified recently enough, a
     * supervised orchestrator for crash-orchestrator. Returns the plan with
     * every duration in ms.
     */
    async drillPrepare(input: { drillId: string; scenario: Scenario }): Promise<DrillPlan> {
      const s = input.scenario;
      const problems = scenarioProblems(s, config);
      const missing = missingInjectors(s.faults.map((f) => f.kind));
      if (missing.length) problems.push(`fault kind(s) ${missing.join(', ')} cannot be injected by this build`);
      if (problems.length) {
        throw ApplicationFailure.create({ type: DrillFailureTypes.Refused, nonRetryable: true, message: `drill ${input.drillId} refused, nothing injected: ${problems.join('; ')}`, details: [{ problems }] });
      }
      const pre: string[] = [];
      const verified: DrillPlan['verified'] = [];
      const maxAge = durationMs(s.preconditions.verifiedWithin);
      for (const asset of Object.keys(config.assets).filter((a) => config.assets[a]!.node === s.node).sort()) {
        const repo = await deps.repositories.repository(assetConfig(config, asset).tenant);
        const last = await lastVerifiedSnapshot(repo, asset);
        if (!last) pre.push(`asset ${asset} has no verified snapshot`);
        else if (Date.now() - Date.parse(last.time) > maxAge) pre.push(`asset ${asset}: its newest verified snapshot (${last.id.slice(0, 12)}, ${last.time}) is older than ${s.preconditions.verifiedWithin}`);
        else verified.push({ asset, snapshotId: last.id, time: last.time });
      }
      if (verified.length === 0 && pre.length === 0) pre.push(`node ${s.node} holds no assets to recover`);
      if (s.faults.some((f) => f.kind === 'crash-orchestrator') && !supervisedWorker(config, 'orchestrator').alive) {
        pre.push('crash-orchestrator needs the orchestrator worker running as a supervised process (lifeline worker --role orchestrator --detach)');
      }
      if (pre.length) {
        throw ApplicationFailure.create({ type: DrillFailureTypes.Precondition, nonRetryable: true, message: `drill ${input.drillId}: preconditions not met, nothing injected: ${pre.join('; ')}`, details: [{ problems: pre }] });
      }
      return {
        faults: s.faults.map((spec, i) => ({
          id: `f${i}-${spec.kind}`,
          spec,
          atMs: durationMs(spec.at),
          restartAfterMs: spec.kind === 'crash-orchestrator' ? durationMs(spec.restartAfter) : 0,
          ...(spec.kind === 'storage-outage' || spec.kind === 'network' ? { durationMs: durationMs(spec.duration) } : {}),
        })),
        timeoutMs: durationMs(s.timeout),
        rtoMs: durationMs(s.objectives.rto),
        ...(s.objectives.rpo ? { rpoMs: durationMs(s.objectives.rpo) } : {}),
        verified,
      };
    },

    /** Makes sure the node's health workflow watches it (detection is real: it is what notices the faults). */
    async drillEnsureWatching(input: { node: string; orchestratorTaskQueue: string }): Promise<{ workflowId: string; started: boolean }> {
      const client = Context.current().client;
      const workflowId = nodeHealthId(input.node);
      try {
        await client.workflow.start('nodeHealthWorkflow', { workflowId, taskQueue: input.orchestratorTaskQueue, args: [nodeHealthInput(config, input.node)] });
        return { workflowId, started: true };
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return { workflowId, started: false };
        throw err;
      }
    },

    async drillInjectFault(input: { drillId: string; faultId: string; spec: FaultSpec }): Promise<InjectedFault> {
      try {
        const r = await faultInjector(input.spec.kind).inject(faultCtx(input.drillId, input.faultId), input.spec, input.faultId);
        deps.logger.warn({ drillId: input.drillId, faultId: input.faultId, kind: input.spec.kind, detail: r.detail }, 'drill fault injected');
        await audit(input.drillId, 'fault-injected', 'success', nodeOf(input.spec) ?? '', { fault: input.faultId, kind: input.spec.kind });
        return r;
      } catch (err) {
        if (err instanceof FaultNotApplicable) throw ApplicationFailure.nonRetryable(err.message, DrillFailureTypes.FaultNotApplicable);
        throw err;
      }
    },

    /** Reverts one fault (idempotent) and says whether anything of it is left. */
    async drillRevertFault(input: { drillId: string; faultId: string; spec: FaultSpec }): Promise<RevertedFault & { active: boolean }> {
      const ctx = faultCtx(input.drillId, input.faultId);
      const injector = faultInjector(input.spec.kind);
      const r = await injector.revert(ctx, input.spec, input.faultId);
      const active = await injector.active(ctx, input.spec, input.faultId);
      deps.logger.info({ drillId: input.drillId, faultId: input.faultId, reverted: r.reverted, active, detail: r.detail }, 'drill fault reverted');
      await audit(input.drillId, 'fault-reverted', active ? 'failure' : 'success', nodeOf(input.spec) ?? '', { fault: input.faultId, kind: input.spec.kind, active });
      return { ...r, active };
    },

    /**
     * The ransomware drill plays the external detector (an IDS, a canary file
     * watcher): it reports a suspected compromise of the node since the fault.
     */
    async drillReportCompromise(input: { drillId: string; node: string; compromisedAt: string; orchestratorTaskQueue: string }): Promise<string> {
      const ev = parseEvent({ type: 'suspected-compromise', nodes: [input.node], compromisedAt: input.compromisedAt, source: `drill:${input.drillId}`, details: 'mass overwrite of the node files (drill)' }) as IncidentEvent;
      const trigger = incidentTrigger(config, ev, `drill:${input.drillId}`);
      return (await openIncident(Context.current().client, input.orchestratorTaskQueue, trigger)).workflowId;
    },

    /**
     * Watches what Lifeline does about the faults: node health (detection),
     * the incident (opened, approvals — given as `drill:<id>` with approval
     * auto), its recovery child, and the recovered training. Polls until
     * `until`, heartbeating; a crashed orchestrator only delays the answers.
     */
    async drillObserve(input: ObserveInput): Promise<DrillObservation> {
      const ctx = Context.current();
      const client = ctx.client;
      const o: DrillObservation = structuredClone(input.prior ?? emptyObservation());
      if (input.incidentId) o.incidentId = input.incidentId;
      const deadline = Date.now() + input.timeoutSeconds * 1000;
      const sliceEnd = input.sliceSeconds ? Date.now() + input.sliceSeconds * 1000 : Infinity;
      const since = Date.parse(input.since);
      for (;;) {
        ctx.heartbeat({ incident: o.incidentId, status: o.incidentStatus });
        await observeOnce(client, input, o, since, deps.logger);
        if (o.incidentClosedAt) return o;
        if (input.until === 'recovery-started' && o.recoveryStartedAt) return o;
        if (Date.now() > deadline) {
          o.errors.push(`timed out after ${input.timeoutSeconds} s waiting for ${input.until === 'closed' ? 'the incident to close' : 'the recovery to start'} (${o.incidentId ? `incident ${o.incidentId} is ${o.incidentStatus}` : 'no incident opened'})`);
          return o;
        }
        if (Date.now() > sliceEnd) return o;
        await ctx.sleep(POLL_MS);
      }
    },

    /** An aborted drill cancels the incident it caused (its recovery undoes its own steps) and waits for it to close. */
    async drillCancelIncident(input: { incidentId: string; timeoutSeconds: number }): Promise<{ status: string }> {
      const ctx = Context.current();
      const h = ctx.client.workflow.getHandle(input.incidentId);
      try {
        const d = await h.describe();
        if (d.status.name !== 'RUNNING') return { status: d.status.name };
        await h.cancel();
        const deadline = Date.now() + input.timeoutSeconds * 1000;
        for (;;) {
          const s = (await h.describe()).status.name;
          if (s !== 'RUNNING') return { status: s };
          if (Date.now() > deadline) {
            await h.terminate(`drill aborted; cancel not finished in ${input.timeoutSeconds} s`);
            return { status: 'TERMINATED' };
          }
          ctx.heartbeat();
          await ctx.sleep(POLL_MS);
        }
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return { status: 'not-found' };
        throw err;
      }
    },

    /**
     * After an aborted drill put everything back: the incidents the detectors
     * opened for its faults that are still open — also one opened after the
     * drill stopped observing (a probe that timed out while the orchestrator
     * was down). Waits until node health has heard from the node after the
     * reverts, so a node-lost verdict still on its way is seen.
     */
    async drillOpenIncidentsSince(input: { node: string; since: string; settledAfter: string; known: string[]; alsoCheck?: string[]; timeoutSeconds: number }): Promise<{ incidents: string[]; settled: boolean }> {
      const ctx = Context.current();
      const client = ctx.client;
      const since = Date.parse(input.since) - 1000;
      const deadline = Date.now() + input.timeoutSeconds * 1000;
      let health: NodeHealthView | undefined;
      for (;;) {
        ctx.heartbeat();
        health = await query<NodeHealthView>(client, nodeHealthId(input.node), 'health');
        if (health?.lastSeen && Date.parse(health.lastSeen) > Date.parse(input.settledAfter)) break;
        if (Date.now() > deadline) break;
        await ctx.sleep(POLL_MS);
      }
      const settled = !!health?.lastSeen && Date.parse(health.lastSeen) > Date.parse(input.settledAfter);
      // node health's (node lost, job watchdog) and those a stored-object fault may have caused (verification)
      const candidates = new Set<string>(input.alsoCheck ?? []);
      if (health?.incident) candidates.add(health.incident);
      for (const j of health?.jobIncidents ?? []) if (Date.parse(j.at) >= since) candidates.add(j.incident);
      const open: string[] = [];
      for (const id of candidates) {
        if (input.known.includes(id)) continue;
        const view = await query<IncidentView>(client, id, 'incident');
        // an older incident about the same subject is someone else's
        if (view && !view.closedAt && Date.parse(view.openedAt) >= since) open.push(id);
      }
      return { incidents: open.sort(), settled };
    },
    async drillAudit(input: { drillId: string; node: string; action: string; outcome: 'started' | 'success' | 'failure' | 'cancelled'; details: Record<string, string | number | boolean | null> }): Promise<void> {
      await audit(input.drillId, input.action, input.outcome, input.node, input.details);
    },

    /** Measures, judges and writes the report (`<dataDir>/drills/<id>/report.json` and `.html`); returns a small summary. */
    async drillWriteReport(input: MeasureInput): Promise<DrillSummary> {
      const report = buildDrillReport(input);
      const files = await writeReportFiles(config, report);
      await audit(report.id, 'finished', report.verdict === 'pass' ? 'success' : report.aborted ? 'cancelled' : 'failure', report.node, {
        scenario: report.scenario,
        verdict: report.verdict,
        rtoSeconds: report.measured.rtoSeconds,
        rpoSeconds: report.measured.rpoSeconds,
      });
      return {
        id: report.id,
        verdict: report.verdict,
        aborted: report.aborted,
        rtoSeconds: report.measured.rtoSeconds,
        rpoSeconds: report.measured.rpoSeconds,
        rpoSteps: report.measured.rpoSteps,
        objectives: report.objectives.map((o) => ({ name: o.name, target: o.target, measured: o.measured, pass: o.pass })),
        faultsLeft: report.faults.filter((f) => !f.reverted).map((f) => f.id),
        errors: report.errors.slice(0, 10),
        ...files,
      };
    },
  };
}

export interface DrillSummary {
  id: string;
  verdict: 'pass' | 'fail';
  aborted: boolean;
  rtoSeconds: number | null;
  rpoSeconds: number | null;
  rpoSteps: number | null;
  objectives: Array<{ name: string; target: string; measured: string | null; pass: boolean }>;
  faultsLeft: string[];
  errors: string[];
  jsonPath: string;
  htmlPath: string | null;
}

function nodeOf(spec: FaultSpec): string | undefined {
  return 'node' in spec ? spec.node : undefined;
}

/** report.json and the self-contained report.html under `<dataDir>/drills/<id>/`; each workflow with its Temporal UI link. */
async function writeReportFiles(config: LoadedConfig, report: DrillReport): Promise<{ jsonPath: string; htmlPath: string | null }> {
  const withLinks: DrillReport = { ...report, workflows: report.workflows.map((w) => ({ ...w, ...(workflowUiLink(config, w.workflowId) ? { url: workflowUiLink(config, w.workflowId)! } : {}) })) };
  return writeDrillReport(resolveFromRoot(config.devstack.dataDir, config.source.root), withLinks);
}

async function query<T>(client: Client, workflowId: string, name: string): Promise<T | undefined> {
  try {
    return await client.workflow.getHandle(workflowId).query<T>(name);
  } catch {
    // not started yet, or no worker answers right now (a crashed orchestrator): try again at the next poll
    return undefined;
  }
}

async function observeOnce(client: Client, input: ObserveInput, o: DrillObservation, since: number, logger: Logger): Promise<void> {
  const now = () => new Date().toISOString();
  if (o.incidentClosedAt) return;
  if (input.incidentId) {
    // the drill reported the compromise itself (it plays the external detector)
    o.incidentId = input.incidentId;
    o.detectedBy = `drill:${input.drillId} (plays the external detector)`;
  } else if (!o.incidentId) {
    const health = await query<NodeHealthView>(client, nodeHealthId(input.node), 'health');
    const jobIncident = health?.jobIncidents?.find((j) => Date.parse(j.at) >= since - 1000);
    if (health?.state === 'lost' && health.incident) {
      o.incidentId = health.incident;
      o.detectedBy = `node health: node ${input.node} lost`;
    } else if (jobIncident) {
      o.incidentId = jobIncident.incident;
      o.detectedBy = `job watchdog: training job ${jobIncident.job} died`;
    } else {
      for (const id of input.watchIncidents ?? []) {
        const v = await query<IncidentView>(client, id, 'incident');
        if (v && Date.parse(v.openedAt) >= since - 1000) {
          o.incidentId = id;
          o.detectedBy = `verification: ${v.assets.join(', ')} snapshot found corrupt`;
          break;
        }
      }
    }
  }
  if (!o.incidentId) return;
  const view = await query<IncidentView>(client, o.incidentId, 'incident');
  if (!view) return;
  if (Date.parse(view.openedAt) < since - 1000) {
    // an older incident about the same subject (a node-lost id is reused, health not updated yet): not this drill's
    o.incidentId = null;
    o.detectedBy = null;
    return;
  }
  // detected: the detector opened this incident for the drill's fault (node health, the job watchdog, the drill itself)
  o.detectedAt ??= view.openedAt;
  o.incidentOpenedAt = view.openedAt;
  o.incidentStatus = view.status;
  if (input.watchIncidents?.includes(view.id) && view.contained.length) {
    o.restorePoints = view.contained.flatMap((c) => (c.restorePoint ? [{ asset: c.asset, snapshotId: c.restorePoint.snapshot, snapshotTime: c.restorePoint.time, source: 'last-verified' as const }] : []));
  }
  for (const [step, d] of Object.entries(view.decisions)) {
    if (d.decision === 'approved' && !o.approvals.some((a) => a.step === step)) o.approvals.push({ step, actor: d.actor, at: d.at });
  }
  if (input.approval === 'auto') {
    for (const [step, state] of Object.entries(view.steps)) {
      if (state !== 'awaiting-approval') continue;
      try {
        await client.workflow.getHandle(o.incidentId).executeUpdate('approve', { args: [{ step, actor: `drill:${input.drillId}`, reason: 'chaos drill, approval: auto' }] });
      } catch (err) {
        logger.warn({ incident: o.incidentId, step, err: (err as Error).message }, 'drill approval not accepted (tried again)');
      }
    }
  }
  const rec = view.recoveries[0];
  if (rec) {
    o.recoveryStartedAt ??= now();
    if (!o.recovery?.nodeRebuiltAt) {
      const p = await query<RecoverNodeProgress>(client, rec.workflowId, 'progress');
      if (p && (p.done.includes('wait-for-agent'))) {
        o.recovery ??= { workflowId: rec.workflowId, mode: p.done.includes('provision') ? 'rebuild' : 'restart', startedAt: o.recoveryStartedAt, finishedAt: '', nodeRebuiltAt: null, assets: [], jobs: [] };
        o.recovery.nodeRebuiltAt ??= now();
      }
    }
    if (rec.outcome === 'recovered' && !o.recovery?.finishedAt) {
      try {
        const r = (await client.workflow.getHandle(rec.workflowId).result()) as RecoverNodeResult;
        o.recovery = {
          workflowId: rec.workflowId,
          mode: r.mode ?? 'rebuild',
          startedAt: r.startedAt,
          finishedAt: r.finishedAt,
          nodeRebuiltAt: o.recovery?.nodeRebuiltAt ?? null,
          assets: r.assets.map((a) => ({ asset: a.asset, snapshotId: a.snapshotId, snapshotTime: a.snapshotTime, source: a.source })),
          jobs: r.jobs.map((j) => ({ job: j.job, restoredStep: j.restoredStep, stepAtFailure: j.stepAtFailure, rpoSteps: j.rpoSteps })),
        };
        // recovery ends by confirming each job passed the step it resumed from
        if (r.jobs.length) o.trainingResumedAt = r.finishedAt;
      } catch (err) {
        o.errors.push(`recovery ${rec.workflowId}: ${(err as Error).message.slice(0, 300)}`);
      }
    }
    if (rec.outcome === 'failed' && !o.errors.some((e) => e.startsWith(`recovery ${rec.workflowId} failed`))) o.errors.push(`recovery ${rec.workflowId} failed: ${rec.detail ?? 'unknown'}`);
  }
  if (view.closedAt) {
    o.incidentClosedAt = view.closedAt;
    if (view.status !== 'resolved') o.errors.push(`incident ${view.id} ended ${view.status}${view.summary ? `: ${view.summary.what}` : ''}`.slice(0, 500));
  }
}
