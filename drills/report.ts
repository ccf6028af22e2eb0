/**
 * The drill report: what a drill did and measured, as JSON (this shape) and as
 * a self-contained HTML page rendered from it. Produced by ChaosDrillWorkflow
 * (through an activity that writes `<dataDir>/drills/<drillId>/report.json`
 * and `report.html`); read by `lifeline drill report <id>`.
 *
 * Plain data: ids, times, numbers and short texts — no file names, no secrets.
 */
import type { FaultKind } from './scenario';

/** The moments of a drill, in the order they normally happen. */
export const TIMELINE_EVENTS = [
  'drill-started',
  'preconditions-met',
  'fault-injected',
  'detected',
  'incident-opened',
  'approved',
  'node-rebuilt',
  'data-restored',
  'training-resumed',
  'fault-reverted',
  'drill-finished',
] as const;
export type TimelineEvent = (typeof TIMELINE_EVENTS)[number];

export interface DrillTimelineEntry {
  event: TimelineEvent;
  /** ISO 8601 */
  at: string;
  /** a short human text: which fault, which incident, which asset */
  detail?: string;
}

export interface DrillFaultRecord {
  /** unique within the drill, e.g. `f0-destroy-node` */
  id: string;
  kind: FaultKind;
  injectedAt: string | null;
  revertedAt: string | null;
  /** false when the revert failed: the report says so loudly */
  reverted: boolean;
  /** small facts: target node, object kind, proxy port, duration */
  detail: Record<string, string | number | boolean>;
  error?: string;
}

export interface DrillObjectiveResult {
  /** rto, rpo, or an expectation name */
  name: string;
  /** the target as written in the scenario (`5m`, `training-resumes`) */
  target: string;
  /** the measured value as text (`73 s`), or null when it could not be measured */
  measured: string | null;
  pass: boolean;
  detail?: string;
}

export interface DrillRestoredAsset {
  asset: string;
  snapshotId: string;
  snapshotTime: string;
  source: 'last-verified' | 'override';
}

export interface DrillWorkflowLink {
  /** drill, incident, recover-node, restore, verify, backup */
  role: string;
  workflowId: string;
  runId?: string;
  /** Temporal Web UI link when the UI is known */
  url?: string;
}

export type DrillVerdict = 'pass' | 'fail';

export interface DrillReport {
  format: 'lifeline-drill-report';
  version: 1;
  /** the drill id (also its workflow id) */
  id: string;
  scenario: string;
  environment: 'staging';
  node: string;
  startedAt: string;
  finishedAt: string;
  verdict: DrillVerdict;
  /** aborted: cancelled by an operator, timed out, or failed midway (faults reverted anyway) */
  aborted: boolean;
  timeline: DrillTimelineEntry[];
  measured: {
    /** first fault injected → recovery complete (training resumed / service back) */
    rtoSeconds: number | null;
    /** restored snapshot time → failure time (the data-loss window) */
    rpoSeconds: number | null;
    /** training steps lost, when a job was resumed */
    rpoSteps: number | null;
  };
  objectives: DrillObjectiveResult[];
  restored: DrillRestoredAsset[];
  faults: DrillFaultRecord[];
  workflows: DrillWorkflowLink[];
  /** what went wrong, one line each (no secrets) */
  errors: string[];
}

/** The verdict: pass only when every objective passed, every fault was reverted and the drill was not aborted. */
export function verdictOf(r: Pick<DrillReport, 'objectives' | 'faults' | 'aborted'>): DrillVerdict {
  return !r.aborted && r.objectives.length > 0 && r.objectives.every((o) => o.pass) && r.faults.every((f) => f.reverted) ? 'pass' : 'fail';
}
