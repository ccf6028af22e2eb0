/**
 * Incident response, the domain: what an incident is, its id (so the same
 * event twice joins one incident), which destructive steps it asks approval
 * for, how an approval decision is checked, what a webhook notice carries and
 * how the closing summary is computed. Pure functions: the IncidentWorkflow
 * (deterministic) and the CLI both use them, so nothing here imports Node or
 * Temporal.
 */

export const INCIDENT_TYPES = ['node-lost', 'integrity-failure', 'suspected-compromise', 'manual', 'storage-tamper'] as const;
export type IncidentType = (typeof INCIDENT_TYPES)[number];
export type Severity = 'low' | 'medium' | 'high' | 'critical';

/** Destructive steps that wait for a person (or the staging auto-approve policy). */
export const INCIDENT_STEPS = ['rebuild-node', 'restore'] as const;
export type IncidentStep = (typeof INCIDENT_STEPS)[number];

export type IncidentStatus = 'open' | 'awaiting-approval' | 'recovering' | 'resolved' | 'rejected' | 'expired' | 'failed';
export const TERMINAL_STATUSES: readonly IncidentStatus[] = ['resolved', 'rejected', 'expired', 'failed'];

/** What opens (or joins) an incident: the validated event, reduced to ids and times. */
export interface IncidentTrigger {
  type: IncidentType;
  nodes: string[];
  assets: string[];
  /** integrity failure: the corrupt snapshot (and object) */
  snapshot?: string;
  object?: string;
  /** suspected compromise: data written after this time is suspect */
  compromisedAt?: string;
  /** node lost: when it was last known alive */
  detectedAt?: string;
  severity?: Severity;
  summary?: string;
  source?: string;
  /** storage tamper: what was changed, in which bucket, by whom (counts and object ids only) */
  tamper?: StorageTamper;
  /** who or what reported it (user, detector, workflow id) */
  actor: string;
  /** when it was reported */
  at: string;
}

/** A burst of changes to stored objects that Lifeline did not make (alarm/tamper.ts). */
export interface StorageTamper {
  bucket: string;
  /** objects touched in all */
  count: number;
  /** objects per kind (pack, index, snapshot, record, config, lock, tombstone, audit) */
  kinds: Partial<Record<string, number>>;
  actions: string[];
  tenants: string[];
  /** shortened principal ids */
  principals: string[];
  firstAt: string;
  lastAt: string;
  /** a sample of the affected keys (object ids) */
  sampleKeys: string[];
}

const SAFE = /[^A-Za-z0-9._-]+/g;

/** The incident's workflow id: type + subject, so repeated events about the same thing join one incident. */
export function incidentId(t: Pick<IncidentTrigger, 'type' | 'nodes' | 'assets' | 'snapshot' | 'at' | 'tamper'> & { nonce?: string }): string {
  const part = (s: string) => s.replace(SAFE, '_');
  switch (t.type) {
    case 'node-lost':
      return `incident-node-lost-${part(t.nodes[0]!)}`;
    case 'integrity-failure':
      return `incident-integrity-failure-${part(t.assets[0]!)}-${part(t.snapshot!.slice(0, 12))}`;
    case 'suspected-compromise':
      return `incident-suspected-compromise-${[...[...t.nodes].sort().map(part), ...[...t.assets].sort().map(part)].join('+').slice(0, 200)}`;
    case 'manual':
      return `incident-manual-${t.at.replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${part(t.nonce ?? '0')}`;
    case 'storage-tamper':
      // One per bucket: later bursts join the open incident instead of opening more.
      return `incident-storage-tamper-${part(t.tamper?.bucket ?? 'unknown')}`;
  }
}

export function defaultSeverity(type: IncidentType): Severity {
  return type === 'suspected-compromise' || type === 'storage-tamper' ? 'critical' : type === 'manual' ? 'medium' : 'high';
}

/** The destructive steps an incident of this kind asks approval for, in order. */
export function plannedSteps(t: Pick<IncidentTrigger, 'type' | 'nodes' | 'assets'>): IncidentStep[] {
  switch (t.type) {
    case 'node-lost':
      return ['rebuild-node'];
    case 'integrity-failure':
      return ['restore'];
    case 'storage-tamper':
      // A person restores (or undeletes the retained versions of) what was changed; until then the holds stay.
      return ['restore'];
    case 'suspected-compromise':
    case 'manual':
      return [...(t.nodes.length ? (['rebuild-node'] as const) : []), ...(t.assets.length || t.nodes.length ? (['restore'] as const) : [])];
  }
}

export type StepState = 'planned' | 'awaiting-approval' | 'approved' | 'rejected' | 'expired' | 'done' | 'failed' | 'skipped';

export interface DecisionInput {
  step: string;
  actor?: string;
  reason?: string;
}

/**
 * Why an approve/reject decision is refused, or null when it may proceed.
 * Used by the workflow's Update validators (the refusal reaches the caller
 * and nothing is recorded in history).
 */
export function decisionProblem(kind: 'approve' | 'reject', d: DecisionInput | undefined, steps: Record<string, StepState>, status: IncidentStatus): string | null {
  if (!d || typeof d !== 'object' || typeof d.step !== 'string' || !d.step) return `${kind}: required: step (one of ${Object.keys(steps).join(', ') || 'none'})`;
  if (!(INCIDENT_STEPS as readonly string[]).includes(d.step)) return `unknown step ${JSON.stringify(d.step)} (known steps: ${INCIDENT_STEPS.join(', ')})`;
  const state = steps[d.step];
  if (state === undefined) return `step ${d.step} is not part of this incident (its steps: ${Object.keys(steps).join(', ') || 'none'})`;
  if (TERMINAL_STATUSES.includes(status)) return `the incident is ${status}; nothing awaits approval`;
  if (state !== 'awaiting-approval') return `step ${d.step} is not awaiting approval (it is ${state})`;
  if (d.actor !== undefined && (typeof d.actor !== 'string' || !d.actor.trim() || d.actor.length > 200)) return 'actor: expected a name (at most 200 characters)';
  if (kind === 'reject' && (typeof d.reason !== 'string' || !d.reason.trim())) return 'reject: required: reason';
  if (d.reason !== undefined && (typeof d.reason !== 'string' || d.reason.length > 2000)) return 'reason: expected text (at most 2000 characters)';
  return null;
}

export interface TimelineEntry {
  at: string;
  actor: string;
  action: string;
  detail?: string;
}

/** A webhook notice: ids, times and counts only — never secrets or file names. */
export interface IncidentNotice {
  /** unique per notice, so a receiver can drop a retried delivery */
  id: string;
  incident: string;
  kind: 'opened' | 'contained' | 'approval-needed' | 'approved' | 'rejected' | 'escalation' | 'closed';
  type: IncidentType;
  severity: Severity;
  status: IncidentStatus;
  nodes: string[];
  assets: string[];
  step?: string;
  actor?: string;
  text: string;
  at: string;
}

export interface ContainedAsset {
  asset: string;
  tenant: string;
  /** snapshots now held by this incident */
  held: string[];
  /** snapshots marked suspect (taken after the compromise time, or corrupt) */
  quarantined: string[];
  /** newest verified, unquarantined snapshot after containment: the restore point */
  restorePoint: { snapshot: string; time: string } | null;
}

export interface IncidentSummary {
  outcome: IncidentStatus;
  what: string;
  /** per asset: the snapshot a restore uses (or would use) */
  restorePoints: Array<{ asset: string; snapshot: string | null; time: string | null }>;
  /** from the newest restore point to the failure (or compromise) time, per asset, in seconds (RPO) */
  dataLossWindowSeconds: number | null;
  /** from opening to closing, when resolved (RTO) */
  timeToRecoverSeconds: number | null;
  holdsReleased: number;
  quarantined: number;
  /** what RecoverNodeWorkflow restored (recovery: recover-node), per asset */
  restored: Array<{ asset: string; snapshot: string; time: string }>;
}

/** The closing summary. */
export function summarize(args: {
  trigger: IncidentTrigger;
  outcome: IncidentStatus;
  openedAt: string;
  closedAt: string;
  contained: ContainedAsset[];
  holdsReleased: number;
  recovery: string;
  restored?: Array<{ asset: string; snapshot: string; time: string }>;
}): IncidentSummary {
  const { trigger, outcome } = args;
  const failureTime = trigger.compromisedAt ?? trigger.detectedAt ?? trigger.at;
  const windows = args.contained.map((c) => (c.restorePoint ? Math.max(0, Date.parse(failureTime) - Date.parse(c.restorePoint.time)) / 1000 : null));
  const known = windows.filter((w): w is number => w !== null);
  const subject = [...trigger.nodes.map((n) => `node ${n}`), ...trigger.assets.map((a) => `asset ${a}`)].join(', ') || 'the platform';
  return {
    outcome,
    what: `${trigger.type} of ${subject} at ${failureTime}: ${outcome}${outcome === 'resolved' ? ` (${args.recovery})` : ''}`,
    restorePoints: args.contained.map((c) => ({ asset: c.asset, snapshot: c.restorePoint?.snapshot ?? null, time: c.restorePoint?.time ?? null })),
    dataLossWindowSeconds: known.length ? Math.round(Math.max(...known)) : null,
    timeToRecoverSeconds: outcome === 'resolved' ? Math.round((Date.parse(args.closedAt) - Date.parse(args.openedAt)) / 1000) : null,
    holdsReleased: args.holdsReleased,
    quarantined: args.contained.reduce((n, c) => n + c.quarantined.length, 0),
    restored: args.restored ?? [],
  };
}

/** Snapshots taken after the compromise time are suspect (equal time: not). */
export function suspectSnapshots<T extends { id: string; time: string }>(snapshots: T[], compromisedAt: string): T[] {
  const t = Date.parse(compromisedAt);
  return snapshots.filter((s) => Date.parse(s.time) > t);
}
