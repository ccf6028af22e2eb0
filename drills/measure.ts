/**
 * Measuring a drill: from what was observed (faults, detection, incident,
 * approval, recovery, training) to the report's timeline, measured RTO/RPO and
 * the pass/fail of every objective. Pure functions (no Node, no Temporal): the
 * drill activities call them, unit tests pin them down.
 */
import { verdictOf, type DrillFaultRecord, type DrillObjectiveResult, type DrillReport, type DrillRestoredAsset, type DrillTimelineEntry, type DrillWorkflowLink } from './report';
import type { Expectation, FaultKind } from './scenario';
import { incidentId } from '../incidents/model';

/** What the drill saw, in small facts (times are ISO 8601). */
export interface DrillObservation {
  /** node health noticed the failure (node lost, or the job watchdog found a dead job) */
  detectedAt: string | null;
  detectedBy: string | null;
  incidentId: string | null;
  incidentOpenedAt: string | null;
  incidentStatus: string | null;
  incidentClosedAt: string | null;
  approvals: Array<{ step: string; actor: string; at: string }>;
  recovery: {
    workflowId: string;
    mode: 'rebuild' | 'restart';
    startedAt: string;
    finishedAt: string;
    /** rebuild: the new root and agent were ready (the first restore began) */
    nodeRebuiltAt: string | null;
    assets: DrillRestoredAsset[];
    jobs: Array<{ job: string; restoredStep: number; stepAtFailure: number | null; rpoSteps: number | null }>;
  } | null;
  /** recovery confirmed the training job passed the step it resumed from */
  trainingResumedAt: string | null;
  /** recovery started (the incident's child RecoverNodeWorkflow exists) */
  recoveryStartedAt: string | null;
  /** storage-only drills (outage, network): the last storage fault was reverted and storage answered again */
  serviceBackAt?: string | null;
  /** stored-object drills: the restore point the integrity incident chose per asset (its last verified, intact snapshot) */
  restorePoints?: DrillRestoredAsset[];
  errors: string[];
}

export const emptyObservation = (): DrillObservation => ({
  detectedAt: null,
  detectedBy: null,
  incidentId: null,
  incidentOpenedAt: null,
  incidentStatus: null,
  incidentClosedAt: null,
  approvals: [],
  recovery: null,
  trainingResumedAt: null,
  recoveryStartedAt: null,
  errors: [],
});

export interface MeasureInput {
  id: string;
  scenario: string;
  node: string;
  startedAt: string;
  finishedAt: string;
  preconditionsMetAt: string | null;
  aborted: boolean;
  faults: DrillFaultRecord[];
  observation: DrillObservation;
  objectives: { rto: string; rtoMs: number; rpo?: string; rpoMs?: number; expect: Expectation[] };
  /** expectations measured outside the observation (backups-continue) */
  extra?: Partial<Record<Expectation, { pass: boolean; detail: string }>>;
  workflows: DrillWorkflowLink[];
  errors: string[];
}

const seconds = (fromIso: string, toIso: string) => Math.max(0, Math.round((Date.parse(toIso) - Date.parse(fromIso)) / 100) / 10);

/** First fault injected → recovery complete (training resumed, else the recovery finished). */
export function measureRto(faults: DrillFaultRecord[], o: DrillObservation): number | null {
  const first = firstInjection(faults);
  // a stored-object fault has no node to recover: the asset is protected again once its integrity incident is resolved
  const end = o.trainingResumedAt ?? o.recovery?.finishedAt ?? o.serviceBackAt ?? (o.incidentStatus === 'resolved' ? o.incidentClosedAt : null) ?? null;
  return first && end ? seconds(first, end) : null;
}

/**
 * The data-loss window: from the oldest restored snapshot to the failure (the
 * first fault). A restart on an intact node restored nothing from storage: 0.
 */
export function measureRpo(faults: DrillFaultRecord[], o: DrillObservation): number | null {
  const first = firstInjection(faults);
  if (!first || !o.recovery) return null;
  if (o.recovery.assets.length === 0) return 0;
  return Math.max(...o.recovery.assets.map((a) => seconds(a.snapshotTime, first)));
}

export function measureRpoSteps(o: DrillObservation): number | null {
  const steps = (o.recovery?.jobs ?? []).map((j) => j.rpoSteps).filter((s): s is number => s !== null);
  return steps.length ? Math.max(...steps) : null;
}

/**
 * The integrity-failure incidents a stored-object fault should cause: a deep
 * verification (the asset's verify schedule) finds the damaged snapshot and
 * opens `incident-integrity-failure-<asset>-<snapshot>`; the drill follows those.
 */
export function objectFaultIncidents(faults: DrillFaultRecord[]): string[] {
  const ids = new Set<string>();
  for (const f of faults) {
    if ((f.kind !== 'corrupt-object' && f.kind !== 'delete-object') || !f.injectedAt) continue;
    const { asset, snapshot } = f.detail as { asset?: unknown; snapshot?: unknown };
    if (typeof asset !== 'string' || typeof snapshot !== 'string') continue;
    ids.add(incidentId({ type: 'integrity-failure', nodes: [], assets: [asset], snapshot, at: f.injectedAt }));
  }
  return [...ids];
}

/** Faults whose incident comes from node health (node lost, job watchdog) or from the drill itself (a reported compromise). */
const NODE_FAULT_KINDS: ReadonlySet<FaultKind> = new Set(['destroy-node', 'kill-node-agent', 'kill-training-job', 'ransomware']);

/**
 * The incidents a drill follows besides node health's: those its stored-object
 * faults cause — unless the drill also breaks the node, whose incident the
 * objectives are about (the main job corrupts a checkpoint, then destroys the
 * node: the verification's incident must not end the drill before the node is lost).
 */
export function followedObjectIncidents(faults: DrillFaultRecord[]): string[] {
  return faults.some((f) => NODE_FAULT_KINDS.has(f.kind)) ? [] : objectFaultIncidents(faults);
}

export function firstInjection(faults: DrillFaultRecord[]): string | null {
  const times = faults.map((f) => f.injectedAt).filter((t): t is string => t !== null).sort();
  return times[0] ?? null;
}

export function evaluateExpectation(e: Expectation, faults: DrillFaultRecord[], o: DrillObservation, extra: MeasureInput['extra'] = {}): DrillObjectiveResult {
  const result = (pass: boolean, measured: string | null, detail?: string): DrillObjectiveResult => ({ name: e, target: e, measured, pass, ...(detail ? { detail } : {}) });
  const first = firstInjection(faults);
  const given = extra[e];
  if (given) return result(given.pass, given.pass ? 'yes' : 'no', given.detail);
  switch (e) {
    case 'training-resumes':
      return o.trainingResumedAt ? result(true, 'yes', `resumed at ${o.trainingResumedAt}`) : result(false, 'no', 'no recovery confirmed that training passed the step it resumed from');
    case 'incident-opened':
      return o.incidentId ? result(true, 'yes', `${o.incidentId} opened at ${o.incidentOpenedAt}`) : result(false, 'no', 'no incident was opened for the fault');
    case 'restored-from-verified': {
      if (!o.recovery && o.restorePoints?.length) {
        // no node to rebuild: the incident names the restore point, the last verified snapshot the fault did not touch
        const damaged = new Set(faults.map((f) => f.detail.snapshot).filter((x) => typeof x === 'string'));
        const bad = o.restorePoints.filter((a) => damaged.has(a.snapshotId));
        return bad.length ? result(false, 'no', `restore point is the damaged snapshot: ${bad.map((a) => a.asset).join(', ')}`) : result(true, 'yes', o.restorePoints.map((a) => `${a.asset}: restore point ${a.snapshotId.slice(0, 12)} (verified, untouched)`).join('; '));
      }
      if (!o.recovery) return result(false, null, 'no recovery ran');
      if (o.recovery.assets.length === 0) return result(true, 'nothing restored', 'the node was intact: only its processes were restarted');
      const bad = o.recovery.assets.filter((a) => a.source !== 'last-verified');
      return bad.length ? result(false, 'no', `not from the last verified snapshot: ${bad.map((a) => a.asset).join(', ')}`) : result(true, 'yes', `${o.recovery.assets.length} asset(s) from their last verified snapshot`);
    }
    case 'restored-from-before-fault': {
      if (!o.recovery || !first) return result(false, null, 'no recovery ran');
      if (o.recovery.assets.length === 0) return result(false, 'nothing restored', 'nothing was restored from snapshots');
      const late = o.recovery.assets.filter((a) => Date.parse(a.snapshotTime) >= Date.parse(first));
      return late.length ? result(false, 'no', `taken after the first fault: ${late.map((a) => `${a.asset}@${a.snapshotId.slice(0, 12)}`).join(', ')}`) : result(true, 'yes', 'every restored snapshot predates the first fault');
    }
    case 'backups-continue':
      return result(false, null, 'not measured');
  }
}

/** The objectives' results: RTO, RPO (when set), then every expectation. */
export function evaluateObjectives(input: Pick<MeasureInput, 'faults' | 'observation' | 'objectives' | 'extra'>): DrillObjectiveResult[] {
  const { faults, observation: o, objectives } = input;
  const rto = measureRto(faults, o);
  const out: DrillObjectiveResult[] = [
    {
      name: 'rto',
      target: objectives.rto,
      measured: rto === null ? null : `${rto} s`,
      pass: rto !== null && rto * 1000 <= objectives.rtoMs,
      ...(rto === null ? { detail: 'recovery did not complete' } : rto * 1000 > objectives.rtoMs ? { detail: `${rto} s exceeds ${objectives.rto}` } : {}),
    },
  ];
  if (objectives.rpo !== undefined && objectives.rpoMs !== undefined) {
    const rpo = measureRpo(faults, o);
    out.push({
      name: 'rpo',
      target: objectives.rpo,
      measured: rpo === null ? null : `${rpo} s`,
      pass: rpo !== null && rpo * 1000 <= objectives.rpoMs,
      ...(rpo === null ? { detail: 'nothing was recovered' } : rpo * 1000 > objectives.rpoMs ? { detail: `${rpo} s exceeds ${objectives.rpo}` } : {}),
    });
  }
  for (const e of objectives.expect) out.push(evaluateExpectation(e, faults, o, input.extra));
  return out;
}

export function buildTimeline(input: Pick<MeasureInput, 'startedAt' | 'finishedAt' | 'preconditionsMetAt' | 'faults' | 'observation'>): DrillTimelineEntry[] {
  const o = input.observation;
  const t: DrillTimelineEntry[] = [{ event: 'drill-started', at: input.startedAt }];
  if (input.preconditionsMetAt) t.push({ event: 'preconditions-met', at: input.preconditionsMetAt });
  for (const f of input.faults) if (f.injectedAt) t.push({ event: 'fault-injected', at: f.injectedAt, detail: `${f.id}` });
  if (o.detectedAt) t.push({ event: 'detected', at: o.detectedAt, detail: o.detectedBy ?? undefined });
  if (o.incidentId && o.incidentOpenedAt) t.push({ event: 'incident-opened', at: o.incidentOpenedAt, detail: o.incidentId });
  for (const a of o.approvals) t.push({ event: 'approved', at: a.at, detail: `${a.step} by ${a.actor}` });
  if (o.recovery?.nodeRebuiltAt) t.push({ event: 'node-rebuilt', at: o.recovery.nodeRebuiltAt, detail: o.recovery.mode === 'restart' ? 'agent restarted on the intact node' : 'fresh root and agent' });
  if (o.recovery && o.recovery.assets.length) t.push({ event: 'data-restored', at: o.recovery.finishedAt, detail: o.recovery.assets.map((a) => `${a.asset}@${a.snapshotId.slice(0, 12)}`).join(', ') });
  if (o.trainingResumedAt) {
    const j = o.recovery?.jobs[0];
    t.push({ event: 'training-resumed', at: o.trainingResumedAt, detail: j ? `${j.job} from step ${j.restoredStep}` : undefined });
  }
  for (const f of input.faults) if (f.revertedAt) t.push({ event: 'fault-reverted', at: f.revertedAt, detail: `${f.id}${f.reverted ? '' : ' (NOT reverted)'}` });
  t.push({ event: 'drill-finished', at: input.finishedAt });
  // stable order by time; equal times keep the runbook order above
  return t.map((e, i) => ({ e, i })).sort((a, b) => Date.parse(a.e.at) - Date.parse(b.e.at) || a.i - b.i).map((x) => x.e);
}

export function buildDrillReport(input: MeasureInput): DrillReport {
  const objectives = evaluateObjectives(input);
  const errors = [...input.errors, ...input.observation.errors];
  const report: DrillReport = {
    format: 'lifeline-drill-report',
    version: 1,
    id: input.id,
    scenario: input.scenario,
    environment: 'staging',
    node: input.node,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    verdict: 'fail',
    aborted: input.aborted,
    timeline: buildTimeline(input),
    measured: { rtoSeconds: measureRto(input.faults, input.observation), rpoSeconds: measureRpo(input.faults, input.observation), rpoSteps: measureRpoSteps(input.observation) },
    objectives,
    restored: input.observation.recovery?.assets ?? input.observation.restorePoints ?? [],
    faults: input.faults,
    workflows: input.workflows,
    errors,
  };
  report.verdict = verdictOf(report);
  return report;
}
