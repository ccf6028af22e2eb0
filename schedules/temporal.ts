/**
 * Creating, updating, listing and operating Lifeline's Temporal Schedules.
 *
 * `applySchedules` is idempotent: it creates what is missing, updates only the
 * schedules whose config hash changed (keeping their paused state), and deletes
 * this installation's schedules that the config no longer asks for. Schedules
 * of another installation (another scope) are never touched: an id clash with
 * one is an error.
 */
import { ScheduleNotFoundError, type Client, type ScheduleDescription, type ScheduleHandle, type ScheduleOptionsStartWorkflowAction } from '@temporalio/client';
import type { Workflow } from '@temporalio/common';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { desiredSchedules, parseScheduleId, scheduleScope, SCHEDULE_ACTIONS, SCHEDULE_ID_PREFIX, scheduleId, type DesiredSchedule, type ScheduleAction } from './desired';

/** Schedule memo (fixed for a schedule's life: Temporal cannot update a schedule's memo). */
interface LifelineScheduleMemo {
  lifeline: { scope: string; asset: string; action: ScheduleAction };
}

/** Memo of the started workflows (updatable with the action): what the schedule was made from. */
interface LifelineActionMemo {
  lifelineConfigHash: string;
  lifelineSpec: string;
}

export interface ApplyReport {
  created: string[];
  updated: string[];
  unchanged: string[];
  deleted: string[];
}

function scheduleOptionsOf(d: DesiredSchedule) {
  const spec = 'every' in d.spec ? { intervals: [{ every: d.spec.every, ...(d.spec.offset ? { offset: d.spec.offset } : {}) }] } : { cronExpressions: [d.spec.cron] };
  const memo: LifelineActionMemo = { lifelineConfigHash: d.hash, lifelineSpec: d.specText };
  const action: ScheduleOptionsStartWorkflowAction<Workflow> = {
    type: 'startWorkflow',
    workflowType: d.workflowType,
    args: d.args,
    taskQueue: d.taskQueue,
    // Temporal appends the scheduled time, so each run has its own id.
    workflowId: d.id,
    memo: memo as unknown as Record<string, unknown>,
  };
  return {
    spec,
    action,
    policies: { overlap: d.overlap, catchupWindow: d.catchupWindowMs, pauseOnFailure: false },
  };
}

async function describeOrNull(handle: ScheduleHandle): Promise<ScheduleDescription | null> {
  try {
    return await handle.describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return null;
    throw err;
  }
}

function memoOf(d: Pick<ScheduleDescription, 'memo'>): LifelineScheduleMemo['lifeline'] | null {
  const m = (d.memo as Partial<LifelineScheduleMemo> | undefined)?.lifeline;
  return m && typeof m.scope === 'string' ? m : null;
}

function assertOurs(id: string, d: ScheduleDescription, scope: string): void {
  const m = memoOf(d);
  if (!m) throw new UserError(`schedule ${id} exists but was not created by Lifeline; delete or rename it (temporal schedule delete --schedule-id ${id})`);
  if (m.scope !== scope) throw new UserError(`schedule ${id} belongs to another Lifeline installation (storage ${m.scope.split('|').slice(1).join('/')}); use distinct asset names per installation`);
}

/** Ids of this installation's schedules: listed by Temporal (eventually consistent), plus the ones the config could have made. */
async function knownIds(client: Client, config: LoadedConfig, scope: string): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const s of client.schedule.list()) {
    if (!s.scheduleId.startsWith(SCHEDULE_ID_PREFIX)) continue;
    const m = (s.memo as Partial<LifelineScheduleMemo> | undefined)?.lifeline;
    if (m?.scope === scope) ids.add(s.scheduleId);
  }
  // The visibility store may lag behind a schedule created moments ago; every action of every
  // configured asset is checked directly as well, so a removed policy entry is always noticed.
  for (const asset of Object.keys(config.assets)) for (const action of SCHEDULE_ACTIONS) ids.add(scheduleId(asset, action));
  return ids;
}

export async function applySchedules(client: Client, config: LoadedConfig, opts: { taskQueue?: string } = {}): Promise<ApplyReport> {
  const scope = scheduleScope(config);
  const desired = desiredSchedules(config, opts);
  const report: ApplyReport = { created: [], updated: [], unchanged: [], deleted: [] };

  for (const d of desired) {
    const handle = client.schedule.getHandle(d.id);
    const current = await describeOrNull(handle);
    const options = scheduleOptionsOf(d);
    if (!current) {
      const memo: LifelineScheduleMemo = { lifeline: { scope, asset: d.asset, action: d.action } };
      await client.schedule.create({ scheduleId: d.id, ...options, memo: memo as unknown as Record<string, unknown>, state: { paused: false } });
      report.created.push(d.id);
      continue;
    }
    assertOurs(d.id, current, scope);
    const hash = (current.action.memo as Partial<LifelineActionMemo> | undefined)?.lifelineConfigHash;
    if (hash === d.hash) {
      report.unchanged.push(d.id);
      continue;
    }
    // Keep the schedule's state: a schedule someone paused stays paused.
    await handle.update((prev) => ({ ...options, state: { paused: prev.state.paused, note: prev.state.note, remainingActions: prev.state.remainingActions } }));
    report.updated.push(d.id);
  }

  const wanted = new Set(desired.map((d) => d.id));
  for (const id of [...(await knownIds(client, config, scope))].sort()) {
    if (wanted.has(id)) continue;
    const handle = client.schedule.getHandle(id);
    const current = await describeOrNull(handle);
    if (!current) continue;
    const m = memoOf(current);
    if (!m || m.scope !== scope) continue; // not ours: leave it alone
    await handle.delete();
    report.deleted.push(id);
  }
  return report;
}

export interface ScheduleStatus {
  id: string;
  asset: string;
  action: ScheduleAction;
  spec: string;
  workflowType: string;
  paused: boolean;
  note?: string;
  nextRun: string | null;
  lastRun: { workflowId: string; startedAt: string; status: string } | null;
  runsTaken: number;
  /** false when the config asks for something else (run `lifeline schedules apply`), or no longer asks for it */
  inSync: boolean;
}

/** This installation's schedules with their state, next run and last result. */
export async function listSchedules(client: Client, config: LoadedConfig, opts: { taskQueue?: string } = {}): Promise<ScheduleStatus[]> {
  const scope = scheduleScope(config);
  const desired = new Map(desiredSchedules(config, opts).map((d) => [d.id, d]));
  const out: ScheduleStatus[] = [];
  for (const id of [...(await knownIds(client, config, scope))].sort()) {
    const d = await describeOrNull(client.schedule.getHandle(id));
    if (!d) continue;
    const m = memoOf(d);
    if (!m || m.scope !== scope) continue;
    const actionMemo = d.action.memo as Partial<LifelineActionMemo> | undefined;
    const recent = d.info.recentActions.at(-1);
    let lastRun: ScheduleStatus['lastRun'] = null;
    if (recent) {
      const wf = recent.action.workflow;
      let status = 'UNKNOWN';
      try {
        status = (await client.workflow.getHandle(wf.workflowId, undefined, { firstExecutionRunId: wf.firstExecutionRunId }).describe()).status.name;
      } catch {
        // Retention of the workflow history may have removed it.
      }
      lastRun = { workflowId: wf.workflowId, startedAt: recent.takenAt.toISOString(), status };
    }
    out.push({
      id,
      asset: m.asset,
      action: m.action,
      spec: actionMemo?.lifelineSpec ?? describeSpec(d),
      workflowType: d.action.workflowType,
      paused: d.state.paused,
      ...(d.state.note ? { note: d.state.note } : {}),
      nextRun: d.info.nextActionTimes[0]?.toISOString() ?? null,
      lastRun,
      runsTaken: d.info.numActionsTaken,
      inSync: desired.get(id)?.hash === actionMemo?.lifelineConfigHash,
    });
  }
  return out;
}

function describeSpec(d: ScheduleDescription): string {
  const i = d.spec.intervals?.[0];
  if (i) return `every ${Math.round(i.every / 1000)}s`;
  return 'calendar';
}

/** Resolves `lifeline:<asset>:<action>` or an asset name to existing schedules of this installation. */
export async function resolveSchedules(client: Client, config: LoadedConfig, ref: string): Promise<string[]> {
  const scope = scheduleScope(config);
  const candidates = parseScheduleId(ref) ? [ref] : ref in config.assets ? SCHEDULE_ACTIONS.map((a) => scheduleId(ref, a)) : null;
  if (!candidates) throw new UserError(`${JSON.stringify(ref)} is neither a schedule id (lifeline:<asset>:<action>) nor a configured asset`);
  const found: string[] = [];
  for (const id of candidates) {
    const d = await describeOrNull(client.schedule.getHandle(id));
    if (!d) continue;
    assertOurs(id, d, scope);
    found.push(id);
  }
  if (found.length === 0) throw new UserError(`no schedule ${parseScheduleId(ref) ? ref : `for asset ${ref}`} exists; run \`lifeline schedules apply\``);
  return found;
}

export async function pauseSchedules(client: Client, config: LoadedConfig, ref: string, note: string): Promise<string[]> {
  const ids = await resolveSchedules(client, config, ref);
  for (const id of ids) await client.schedule.getHandle(id).pause(note);
  return ids;
}

export async function resumeSchedules(client: Client, config: LoadedConfig, ref: string, note: string): Promise<string[]> {
  const ids = await resolveSchedules(client, config, ref);
  for (const id of ids) await client.schedule.getHandle(id).unpause(note);
  return ids;
}

/** Runs a schedule's action now (even while another run is in progress or the schedule is paused). */
export async function triggerSchedule(client: Client, config: LoadedConfig, id: string): Promise<void> {
  if (!parseScheduleId(id)) throw new UserError(`${JSON.stringify(id)} is not a schedule id (lifeline:<asset>:<action>); see \`lifeline schedules list\``);
  const [found] = await resolveSchedules(client, config, id);
  await client.schedule.getHandle(found!).trigger();
}
