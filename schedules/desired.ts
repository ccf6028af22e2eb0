/**
 * The Temporal Schedules a configuration asks for (pure; no Temporal calls).
 *
 * One schedule per asset × action, with a deterministic id:
 *
 *     lifeline:<asset>:backup           policies.P.backup            → backupWorkflow
 *     lifeline:<asset>:verify-shallow   policies.P.verify.shallow    → verifyWorkflow (shallow, every snapshot)
 *     lifeline:<asset>:verify-deep      policies.P.verify.deep       → verifyWorkflow (deep, samplePercent)
 *     lifeline:<asset>:retention        policies.P.retention.schedule → retentionWorkflow
 *
 * Each carries a hash of everything it was made from, so `schedules apply`
 * changes only what differs, and a scope naming the installation (storage
 * endpoint, bucket and prefix), so it never touches another installation's
 * schedules in a shared Temporal namespace.
 */
import { createHash } from 'node:crypto';
import type { LoadedConfig } from '../config/load';
import { durationMs, policyOf, type ScheduleSpec } from '../config/platform';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';

export const SCHEDULE_ACTIONS = ['backup', 'verify-shallow', 'verify-deep', 'retention'] as const;
export type ScheduleAction = (typeof SCHEDULE_ACTIONS)[number];

export const SCHEDULE_ID_PREFIX = 'lifeline:';
/** Bump when the mapping from config to schedule changes, so `apply` rewrites every schedule once. */
const MAPPING_VERSION = 1;

export function scheduleId(asset: string, action: ScheduleAction): string {
  return `${SCHEDULE_ID_PREFIX}${asset}:${action}`;
}

/** `lifeline:<asset>:<action>` → its parts, or null for ids Lifeline did not make. */
export function parseScheduleId(id: string): { asset: string; action: ScheduleAction } | null {
  const m = /^lifeline:([A-Za-z0-9][A-Za-z0-9._-]{0,62}):([a-z-]+)$/.exec(id);
  if (!m || !(SCHEDULE_ACTIONS as readonly string[]).includes(m[2]!)) return null;
  return { asset: m[1]!, action: m[2] as ScheduleAction };
}

export interface DesiredSchedule {
  id: string;
  asset: string;
  action: ScheduleAction;
  /** as written in the config */
  spec: ScheduleSpec;
  /** human form: `every 10s`, `cron 0 * * * *` */
  specText: string;
  workflowType: 'backupWorkflow' | 'verifyWorkflow' | 'retentionWorkflow';
  args: [Record<string, unknown>];
  taskQueue: string;
  overlap: 'SKIP' | 'BUFFER_ONE';
  catchupWindowMs: number;
  /** hash of all of the above (and the mapping version) */
  hash: string;
}

/** Names the installation a schedule belongs to: where its repositories live. Holds no secret. */
export function scheduleScope(config: LoadedConfig): string {
  return `${config.storage.endpoint ?? 'embedded'}|${config.storage.bucket}|${config.storage.prefix}`;
}

export function specText(spec: ScheduleSpec): string {
  return 'every' in spec ? `every ${spec.every}${spec.offset ? ` offset ${spec.offset}` : ''}` : `cron ${spec.cron}`;
}

/** The schedules the config asks for, sorted by id. */
export function desiredSchedules(config: LoadedConfig, opts: { taskQueue?: string } = {}): DesiredSchedule[] {
  const taskQueue = opts.taskQueue ?? ORCHESTRATOR_TASK_QUEUE;
  const out: DesiredSchedule[] = [];
  for (const [asset, a] of Object.entries(config.assets)) {
    const p = policyOf(config.policies, a.policy);
    const common = { overlap: p.overlap === 'buffer-one' ? ('BUFFER_ONE' as const) : ('SKIP' as const), catchupWindowMs: durationMs(p.catchupWindow), taskQueue };
    const add = (action: ScheduleAction, spec: ScheduleSpec | undefined, workflowType: DesiredSchedule['workflowType'], args: Record<string, unknown>) => {
      if (!spec) return;
      // Only the schedule fields of the spec (verify.deep also carries samplePercent).
      const clean: ScheduleSpec = 'every' in spec ? { every: spec.every, ...(spec.offset ? { offset: spec.offset } : {}) } : { cron: spec.cron };
      const s = { id: scheduleId(asset, action), asset, action, spec: clean, specText: specText(clean), workflowType, args: [args] as [Record<string, unknown>], ...common };
      out.push({ ...s, hash: hashOf({ v: MAPPING_VERSION, ...s }) });
    };
    add('backup', p.backup, 'backupWorkflow', { asset, trigger: 'schedule' });
    add('verify-shallow', p.verify.shallow, 'verifyWorkflow', { asset, mode: 'shallow' });
    add('verify-deep', p.verify.deep, 'verifyWorkflow', { asset, mode: 'deep', samplePercent: p.verify.deep?.samplePercent ?? 10 });
    add('retention', p.retention.schedule, 'retentionWorkflow', { asset });
  }
  return out.sort((x, y) => (x.id < y.id ? -1 : 1));
}

/** Stable hash of a JSON value (keys sorted). */
export function hashOf(value: unknown): string {
  const canon = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canon) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, canon(x)])) : v;
  return createHash('sha256').update(JSON.stringify(canon(value))).digest('hex').slice(0, 16);
}
