/**
 * Verify runbook: check one snapshot, or every snapshot of an asset, shallow
 * (objects present with the right size and checksum) or deep (a sample of packs
 * downloaded, decrypted and re-hashed); record each snapshot's result in the
 * repository; raise an integrity failure for every corrupt snapshot.
 *
 * The workflow fails (non-retryable, type IntegrityFailure) when any snapshot
 * is corrupt, with the full bounded result as the failure's details, so a
 * schedule's "last result" shows it and nobody has to read a log to know.
 */
import { ApplicationFailure, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { VerifiedSnapshot } from '../activities/verify';

export interface VerifyInput {
  asset: string;
  /** snapshot id or unique prefix (at least 6 hex characters); omitted = every snapshot of the asset */
  snapshot?: string;
  /** default shallow */
  mode?: 'shallow' | 'deep';
  /** deep only: percentage of packs downloaded and checked (default 100) */
  samplePercent?: number;
}

export interface VerifyProblem {
  snapshotId: string;
  object: string;
  problem: string;
}

export interface VerifyResult {
  asset: string;
  tenant: string;
  mode: 'shallow' | 'deep';
  samplePercent: number;
  snapshotsChecked: number;
  verified: number;
  corrupt: number;
  /** deleted by retention while being checked (not a problem) */
  forgotten: number;
  /** first CORRUPT_LISTED corrupt snapshot ids */
  corruptSnapshots: string[];
  packsChecked: number;
  bytesDownloaded: number;
  /** every problem found, counted */
  problemCount: number;
  /** the first PROBLEMS_LISTED problems (file paths are in the encrypted records) */
  problems: VerifyProblem[];
}

/** Snapshots checked per activity: shared packs are checked once per batch, and each result stays small. */
const BATCH = 20;
const PROBLEMS_LISTED = 20;
const CORRUPT_LISTED = 50;

const quick = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});

const checking = proxyActivities<ReturnType<typeof createActivities>>({
  // A deep check of a large asset downloads everything: hours, not minutes. The heartbeat shows it is alive.
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '5 minutes', maximumAttempts: 5 },
});

export async function verifyWorkflow(input: VerifyInput): Promise<VerifyResult> {
  const mode = input.mode ?? 'shallow';
  if (mode !== 'shallow' && mode !== 'deep') throw ApplicationFailure.nonRetryable(`mode must be shallow or deep, not ${JSON.stringify(mode)}`, 'InvalidInput');
  const samplePercent = mode === 'deep' ? (input.samplePercent ?? 100) : 0;
  if (!(samplePercent >= 0 && samplePercent <= 100)) throw ApplicationFailure.nonRetryable(`samplePercent must be 0…100, not ${input.samplePercent}`, 'InvalidInput');

  // 1. Which snapshots.
  const plan = await quick.planVerification({ asset: input.asset, snapshot: input.snapshot });
  const result: VerifyResult = {
    asset: input.asset,
    tenant: plan.tenant,
    mode,
    samplePercent,
    snapshotsChecked: 0,
    verified: 0,
    corrupt: 0,
    forgotten: 0,
    corruptSnapshots: [],
    packsChecked: 0,
    bytesDownloaded: 0,
    problemCount: 0,
    problems: [],
  };

  // 2. Check them, a batch at a time; each batch records its results in the repository.
  for (let i = 0; i < plan.snapshotIds.length; i += BATCH) {
    const batch = await checking.verifySnapshots({
      asset: input.asset,
      snapshotIds: plan.snapshotIds.slice(i, i + BATCH),
      mode,
      samplePercent,
      workflowId: workflowInfo().workflowId,
    });
    result.packsChecked += batch.packsChecked;
    result.bytesDownloaded += batch.bytesDownloaded;
    for (const s of batch.snapshots) {
      result.snapshotsChecked++;
      if (s.state === 'forgotten') result.forgotten++;
      else if (s.state === 'verified') result.verified++;
      else {
        // 3. Every corrupt snapshot raises an integrity failure.
        result.corrupt++;
        if (result.corruptSnapshots.length < CORRUPT_LISTED) result.corruptSnapshots.push(s.snapshotId);
        result.problemCount += s.problemCount;
        for (const p of s.problems) if (result.problems.length < PROBLEMS_LISTED) result.problems.push({ snapshotId: s.snapshotId, ...p });
        await quick.reportIntegrityFailure(integrityEvent(plan.tenant, input.asset, mode, samplePercent, batch.time, s));
      }
    }
  }

  if (result.corrupt > 0) {
    const first = result.problems[0]!;
    throw ApplicationFailure.create({
      type: 'IntegrityFailure',
      nonRetryable: true,
      message:
        `${result.corrupt} of ${result.snapshotsChecked} snapshots of ${input.asset} failed ${mode} verification, ${result.problemCount} problem(s); ` +
        `first: snapshot ${first.snapshotId.slice(0, 12)} ${first.object}: ${first.problem}`,
      details: [result],
    });
  }
  log.info('verification passed', { asset: input.asset, mode, samplePercent, snapshots: result.snapshotsChecked, packs: result.packsChecked });
  return result;
}

function integrityEvent(tenant: string, asset: string, mode: 'shallow' | 'deep', samplePercent: number, time: string, s: VerifiedSnapshot) {
  return {
    type: 'integrity-failure' as const,
    time,
    tenant,
    asset,
    snapshotId: s.snapshotId,
    mode,
    samplePercent,
    problemCount: s.problemCount,
    problems: s.problems,
    recordKey: s.recordKey!,
    workflowId: workflowInfo().workflowId,
  };
}
