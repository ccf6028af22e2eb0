/**
 * Integrity-failure events: what a failed verification tells the rest of
 * Lifeline. For now an event is logged at error level (and the failed check is
 * already recorded in the repository as a signed verification record);
 * incident response plugs in with `onIntegrityFailure` (open an incident,
 * quarantine the snapshot, page someone) without touching verification.
 *
 * Events carry ids, object keys and problem text — never file paths (those
 * stay in the encrypted record; `lifeline snapshots show` reads them) and
 * never secrets, because they end up in logs and Temporal histories.
 */
import type { Logger } from '../logging/logger';

export interface IntegrityFailureEvent {
  type: 'integrity-failure';
  /** when the check that found the problem finished */
  time: string;
  tenant: string;
  asset: string;
  snapshotId: string;
  mode: 'shallow' | 'deep';
  samplePercent: number;
  /** every problem found in this snapshot */
  problemCount: number;
  /** the first few: storage key of the missing or damaged object, and what is wrong with it */
  problems: Array<{ object: string; problem: string }>;
  /** the verification record that holds the full report (with file paths) */
  recordKey: string;
  /** the workflow that ran the check, for the Temporal UI */
  workflowId?: string;
}

/** Something that reacts to integrity failures. Must be idempotent: an activity retry delivers an event again. */
export type IntegrityFailureSink = (event: IntegrityFailureEvent) => Promise<void> | void;

const sinks = new Set<IntegrityFailureSink>();

/** Registers a sink for this process; returns a function that removes it. */
export function onIntegrityFailure(sink: IntegrityFailureSink): () => void {
  sinks.add(sink);
  return () => sinks.delete(sink);
}

/**
 * Emits one integrity failure: an error-level log line naming asset, snapshot
 * and objects, then every registered sink. A failing sink fails the call (the
 * activity retries), so no subscriber silently misses an event.
 */
export async function emitIntegrityFailure(event: IntegrityFailureEvent, logger: Pick<Logger, 'error'>): Promise<void> {
  const first = event.problems[0];
  logger.error(
    {
      event: event.type,
      tenant: event.tenant,
      asset: event.asset,
      snapshotId: event.snapshotId,
      object: first?.object,
      objects: [...new Set(event.problems.map((p) => p.object))],
      problemCount: event.problemCount,
      mode: event.mode,
      samplePercent: event.samplePercent,
      recordKey: event.recordKey,
      workflowId: event.workflowId,
    },
    `integrity failure: asset ${event.asset} snapshot ${event.snapshotId.slice(0, 12)}: ${event.problemCount} problem(s)${first ? `, first: ${first.object}: ${first.problem}` : ''}`,
  );
  for (const sink of sinks) await sink(event);
}
