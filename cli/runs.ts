/**
 * Starting a workflow from the CLI and following it: the Temporal UI link,
 * a warning when no worker polls the queue, progress from the running
 * activity's heartbeat, and the result or failure (with its details).
 */
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import type { LoadedConfig } from '../config/load';
import { stackSettings, temporalUiUrl } from '../devstack/layout';

// temporal.api.enums.v1 TaskQueueKind.NORMAL and TaskQueueType.ACTIVITY (as in cli/status.ts)
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/** Link to a workflow in the Temporal UI of the embedded stack (null for an external Temporal: its UI address is unknown). */
export function workflowUiLink(config: LoadedConfig, workflowId: string): string | null {
  if (config.temporal.address) return null;
  const ui = temporalUiUrl(stackSettings(config));
  return ui ? `${ui}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}` : null;
}

/** True when some worker polls the queue for activities (i.e. an orchestrator worker is running). */
export async function hasWorkers(client: Client, taskQueue: string): Promise<boolean> {
  const res = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: TASK_QUEUE_KIND_NORMAL },
    taskQueueType: TASK_QUEUE_TYPE_ACTIVITY,
  });
  return (res.pollers ?? []).length > 0;
}

/** Heartbeat details of the workflow's running activities (what they last reported). */
export async function activityProgress<T>(handle: WorkflowHandle): Promise<T[]> {
  const d = await handle.describe();
  const out: T[] = [];
  for (const a of d.raw.pendingActivities ?? []) {
    const p = a.heartbeatDetails?.payloads?.[0];
    if (p) out.push(defaultPayloadConverter.fromPayload<T>(p));
  }
  return out;
}

export type Outcome<R> = { ok: true; result: R } | { ok: false; type: string | undefined; message: string; details: unknown[] };

/**
 * Waits for the workflow, calling `onTick` every `everyMs` meanwhile. A failed
 * workflow is returned (with its ApplicationFailure type, message and
 * details), not thrown.
 */
export async function follow<R>(handle: WorkflowHandle, onTick: () => Promise<void>, everyMs = 2000): Promise<Outcome<R>> {
  let done = false;
  const ticker = (async () => {
    while (!done) {
      await new Promise((r) => setTimeout(r, everyMs));
      if (!done) await onTick().catch(() => {});
    }
  })();
  try {
    return { ok: true, result: (await handle.result()) as R };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    // The workflow's own ApplicationFailure, or the one an activity raised (wrapped in an ActivityFailure).
    const app = applicationFailureOf(err);
    if (app) return { ok: false, type: app.type ?? undefined, message: app.message, details: app.details ?? [] };
    return { ok: false, type: err.cause?.name, message: err.cause?.message ?? err.message, details: [] };
  } finally {
    done = true;
    await ticker;
  }
}

/** The first ApplicationFailure in an error's cause chain. */
export function applicationFailureOf(err: unknown): ApplicationFailure | undefined {
  for (let e: unknown = err, i = 0; e && i < 6; e = (e as Error).cause, i++) if (e instanceof ApplicationFailure) return e;
  return undefined;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
