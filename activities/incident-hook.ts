/**
 * Wires verification to incident response: every integrity failure a
 * VerifyWorkflow reports (its `reportIntegrityFailure` activity calls the
 * `onIntegrityFailure` sinks) opens — or joins — an `integrity-failure`
 * incident about that asset and snapshot, on the task queue of the worker
 * that ran the check, with the worker's own Temporal client.
 */
import { Context } from '@temporalio/activity';
import type { LoadedConfig } from '../config/load';
import { incidentTrigger, openIncident } from '../events/dispatch';
import { parseEvent, type IncidentEvent } from '../events/schema';
import { onIntegrityFailure, type IntegrityFailureEvent } from './integrity-events';

let installed: { remove: () => void; users: number } | null = null;

export async function openIntegrityIncident(config: LoadedConfig, event: IntegrityFailureEvent): Promise<string> {
  const ctx = Context.current();
  const ev = parseEvent({
    type: 'integrity-failure',
    tenant: event.tenant,
    asset: event.asset,
    snapshot: event.snapshotId,
    ...(event.problems[0] ? { object: event.problems[0].object.slice(0, 1024) } : {}),
  }) as IncidentEvent;
  const trigger = incidentTrigger(config, ev, event.workflowId ?? 'verification', event.time);
  const { workflowId } = await openIncident(ctx.client, ctx.info.taskQueue, trigger);
  return workflowId;
}

/** Registers the sink once per process (orchestrator workers); returns a function that unregisters it. */
export function installIncidentHook(config: LoadedConfig): () => void {
  if (!installed) installed = { remove: onIntegrityFailure((e) => openIntegrityIncident(config, e).then(() => undefined)), users: 0 };
  installed.users++;
  let done = false;
  return () => {
    if (done || !installed) return;
    done = true;
    if (--installed.users === 0) {
      installed.remove();
      installed = null;
    }
  };
}
