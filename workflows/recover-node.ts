/**
 * RecoverNodeWorkflow — the runbook that rebuilds a lost node and resumes its
 * training from the last verified state:
 *
 *   1. plan            which assets the node holds (platform config, then
 *                      models and data sets, then checkpoints) and its jobs (orchestrator)
 *   1b. inspect-root   an intact root (every asset folder there: only the
 *                      agent or a job died) is not rebuilt: the agent and the
 *                      dead jobs are restarted on it, resuming from their own
 *                      checkpoint folders, and nothing is restored        (node provider)
 *   2. choose          each asset's snapshot: the newest verified, not
 *                      quarantined one, or an explicit override; no verified
 *                      snapshot → stop before anything is built       (orchestrator)
 *   2b. isolate        a compromised node only: stop its jobs and agent and
 *                      move its root aside (evidence, never deleted)   (node provider)
 *   3. provision       a fresh node root                               (node provider)
 *   4. start-agent     the node agent for it                           (node provider)
 *   5. wait-for-agent  until the agent polls lifeline-node-<id>        (node)
 *   6. restore:<asset> one child RestoreWorkflow per asset, in order;
 *                      every file's SHA-256 is checked                 (node)
 *   7. start-job:<job> the training job, resuming from its restored checkpoints (node)
 *   8. confirm:<job>   the job passes the step it resumed from          (node)
 *
 * Every step done, and the end (recovered or failed), is an audit entry.
 *
 * If a step fails, the steps done so far are undone in reverse order, even
 * when the workflow is cancelled (stop the jobs, stop the agent, tear down the
 * half-built root), and the failure names the step. Input and history carry
 * ids, steps and small summaries only.
 */
import {
  ApplicationFailure,
  CancellationScope,
  defineQuery,
  executeChild,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { NodeActivities } from '../activities/nodes';
import type { RestoreActivities } from '../activities/restore';
import type { TrainingActivities } from '../activities/training';
import type { createVerifyActivities } from '../activities/verify';
import { restoreWorkflow, type RestoreWorkflowResult } from './restore';
import { isValidNodeId, nodeTaskQueue } from './task-queues';
import { audit, endingOf } from './audit';
import { recoveryEnded, recoveryStep } from '../audit/workflow-entries';

export interface RecoverNodeInput {
  node: string;
  /** when the node was lost (ISO 8601): the RPO is measured against it */
  failedAt: string;
  /** asset → snapshot id (or unique prefix) to restore instead of the last verified one */
  snapshots?: Record<string, string>;
  /**
   * The node is suspected compromised (ransomware): its jobs and agent are
   * stopped and its root is moved aside (kept as evidence) before a fresh one
   * is built, even though the root is still there.
   */
  compromised?: boolean;
  options?: {
    /** how long the new node agent may take to poll its task queue (default 300 s) */
    agentReadySeconds?: number;
    /** how long a resumed job may take to pass its start step (default 600 s) */
    progressTimeoutSeconds?: number;
    /** SIGTERM → SIGKILL grace when stopping a job in compensation (default 30 s) */
    jobStopGraceSeconds?: number;
  };
}

export interface RecoveredAsset {
  asset: string;
  kind: string;
  stage: string;
  snapshotId: string;
  snapshotTime: string;
  /** last-verified: chosen by Lifeline; override: given by the operator */
  source: 'last-verified' | 'override';
  files: number;
  bytes: number;
  verified: true;
  restoreWorkflowId: string;
}

export interface RecoveredJob {
  job: string;
  checkpointAsset: string;
  pid: number;
  /** the step the job resumed from (its restored checkpoint) */
  restoredStep: number;
  /** the newest step the lost run had logged, when its log survived */
  stepAtFailure: number | null;
  /** the newest step seen when the job was confirmed to advance */
  confirmedStep: number;
  /** checkpoint snapshot time → failure time */
  rpoSeconds: number;
  /** stepAtFailure − restoredStep (null when the failure step is unknown) */
  rpoSteps: number | null;
}

export interface RecoverNodeResult {
  node: string;
  workflowId: string;
  failedAt: string;
  /** RTO inputs: when the recovery started and ended (workflow time) */
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  assets: RecoveredAsset[];
  jobs: RecoveredJob[];
  steps: string[];
  /** rebuild: a fresh root restored from snapshots; restart: the root was intact, only the agent and jobs were restarted (nothing restored) */
  mode: 'rebuild' | 'restart';
}

export interface RecoverNodeProgress {
  step: string;
  done: string[];
  failedStep?: string;
  compensations: string[];
}

export const recoverNodeProgressQuery = defineQuery<RecoverNodeProgress>('progress');

export const RecoveryFailed = 'RecoveryFailed';
export const NoVerifiedSnapshot = 'NoVerifiedSnapshot';

type VerifyActivities = ReturnType<typeof createVerifyActivities>;

export async function recoverNodeWorkflow(input: RecoverNodeInput): Promise<RecoverNodeResult> {
  const startedMs = Date.now();
  const wfId = workflowInfo().workflowId;
  const opts = input.options ?? {};
  const failedAtMs = Date.parse(input.failedAt);
  if (!isValidNodeId(input.node)) throw ApplicationFailure.nonRetryable(`invalid node id ${JSON.stringify(input.node)}`, 'InvalidInput');
  if (!Number.isFinite(failedAtMs)) throw ApplicationFailure.nonRetryable(`failedAt ${JSON.stringify(input.failedAt)} is not an ISO 8601 time`, 'InvalidInput');

  const progress: RecoverNodeProgress = { step: 'plan', done: [], compensations: [] };
  setHandler(recoverNodeProgressQuery, () => progress);

  const orchestrator = proxyActivities<NodeActivities & RestoreActivities & VerifyActivities>({
    startToCloseTimeout: '5 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
  const queue = nodeTaskQueue(input.node);
  const hello = proxyActivities<NodeActivities>({
    taskQueue: queue,
    scheduleToStartTimeout: `${opts.agentReadySeconds ?? 300} seconds`,
    startToCloseTimeout: '30 seconds',
    retry: { maximumAttempts: 1 },
  });
  const node = proxyActivities<TrainingActivities>({
    taskQueue: queue,
    startToCloseTimeout: `${(opts.progressTimeoutSeconds ?? 600) + 120} seconds`,
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
  // compensation must not wait forever for a node agent that is gone
  const nodeCleanup = proxyActivities<TrainingActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: '3 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '2 seconds', maximumAttempts: 3 },
  });

  const isolate = proxyActivities<TrainingActivities>({
    taskQueue: queue,
    scheduleToCloseTimeout: '1 minute',
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 2 },
  });

  /** A resumed job's RTO/RPO facts: the step it resumed from and, when the lost run's log survived, the steps lost. */
  const resumedJob = (
    j: { job: string; checkpointAsset: string },
    before: { state: string; runId?: string; step?: number },
    started: { runId: string; pid: number },
    seen: { startStep?: number; step?: number },
    rpoSeconds: number,
  ): RecoveredJob => {
    const restoredStep = seen.startStep ?? 0;
    // the lost run's newest step, if its log survived and it is not this recovery's own run
    const stepAtFailure = before.state !== 'never-started' && before.runId !== started.runId && before.step !== undefined ? before.step : null;
    return {
      job: j.job,
      checkpointAsset: j.checkpointAsset,
      pid: started.pid,
      restoredStep,
      stepAtFailure,
      confirmedStep: seen.step ?? restoredStep,
      rpoSeconds,
      rpoSteps: stepAtFailure === null ? null : Math.max(0, stepAtFailure - restoredStep),
    };
  };
  const completed = (assets: RecoveredAsset[], jobs: RecoveredJob[], mode: RecoverNodeResult['mode']): RecoverNodeResult => {
    progress.step = 'completed';
    return {
      node: input.node,
      workflowId: wfId,
      failedAt: input.failedAt,
      startedAt: new Date(startedMs).toISOString(),
      finishedAt: new Date(Date.now()).toISOString(),
      durationMs: Date.now() - startedMs,
      assets,
      jobs,
      steps: [...progress.done],
      mode,
    };
  };

  const compensations: { name: string; run: () => Promise<unknown> }[] = [];
  const step = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    progress.step = name;
    try {
      const r = await f();
      progress.done.push(name);
      await audit(recoveryStep({ node: input.node, step: name }));
      return r;
    } catch (err) {
      progress.failedStep ??= name;
      throw err;
    }
  };

  try {
    const plan = await step('plan', () => orchestrator.nodeRecoveryPlan({ node: input.node }));
    const overrides = input.snapshots ?? {};

    // ---- only the processes were lost (the root and every asset folder are there): restart them, restore nothing ----
    const root = await step('inspect-root', () => orchestrator.nodeRootState({ node: input.node }));
    if (root.state === 'intact' && !input.compromised && Object.keys(overrides).length === 0) {
      await step('start-agent', () => orchestrator.nodeAgentStart({ node: input.node }));
      await step('wait-for-agent', () => hello.nodeAgentHello());
      const jobs: RecoveredJob[] = [];
      for (const j of plan.jobs) {
        const before = await step(`inspect:${j.job}`, () => node.trainingJobProgress({ job: j.job }));
        if (before.state === 'running' || before.state === 'done') {
          // still running (only the agent died) or finished: nothing to restart
          const seen = before.state === 'running' ? await step(`confirm:${j.job}`, () => node.trainingJobWaitForStepBeyond({ job: j.job, step: before.step ?? 0, timeoutSeconds: opts.progressTimeoutSeconds ?? 600 })) : before;
          jobs.push({ job: j.job, checkpointAsset: j.checkpointAsset, pid: before.pid ?? 0, restoredStep: before.step ?? 0, stepAtFailure: before.step ?? null, confirmedStep: seen.step ?? 0, rpoSeconds: 0, rpoSteps: 0 });
          continue;
        }
        // the job died: it resumes from the newest complete checkpoint in its (intact) checkpoint folder
        const started = await step(`start-job:${j.job}`, () => node.trainingJobStart({ job: j.job, runId: wfId.replace(/[^A-Za-z0-9._-]/g, '_'), resume: true }));
        const seen = await step(`confirm:${j.job}`, () => node.trainingJobWaitForStepBeyond({ job: j.job, step: 'start', timeoutSeconds: opts.progressTimeoutSeconds ?? 600 }));
        // nothing came from storage: the data-loss window is the job's own, in steps
        jobs.push(resumedJob(j, before, started, seen, 0));
      }
      await audit(recoveryEnded({ node: input.node, assets: 0, jobs: jobs.length, durationMs: Date.now() - startedMs }, { ok: true }));
      return completed([], jobs, 'restart');
    }

    // ---- choose every snapshot before building anything ---------------------------------------
    const chosen = await step('choose-snapshots', async () => {
      for (const a of Object.keys(overrides)) {
        if (!plan.assets.some((p) => p.asset === a)) {
          throw ApplicationFailure.nonRetryable(`snapshot override for ${a}: asset ${a} is not on node ${input.node} (its assets: ${plan.assets.map((p) => p.asset).join(', ') || 'none'})`, 'InvalidInput');
        }
      }
      const out: { asset: string; snapshotId: string; time: string; source: 'last-verified' | 'override' }[] = [];
      const missing: string[] = [];
      for (const a of plan.assets) {
        const override = overrides[a.asset];
        if (override !== undefined) {
          const c = await orchestrator.restoreResolveSnapshot({ asset: a.asset, from: { snapshotId: override } });
          out.push({ asset: a.asset, snapshotId: c.snapshotId, time: c.time, source: 'override' });
          continue;
        }
        const id = await orchestrator.lastVerifiedSnapshot({ asset: a.asset });
        if (id === null) {
          missing.push(a.asset);
          continue;
        }
        const c = await orchestrator.restoreResolveSnapshot({ asset: a.asset, from: { snapshotId: id } });
        out.push({ asset: a.asset, snapshotId: c.snapshotId, time: c.time, source: 'last-verified' });
      }
      if (missing.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `node ${input.node} is not rebuilt: ${missing.join(', ')} ${missing.length === 1 ? 'has' : 'have'} no verified, non-quarantined snapshot, and nothing unverified is restored; run \`lifeline verify <asset>\` or name a snapshot with --snapshot <asset>=<id>`,
          NoVerifiedSnapshot,
        );
      }
      return out;
    });

    // ---- a compromised node: stop what runs there and move its root aside (evidence) -------------------
    if (input.compromised && (root.state === 'intact' || root.state === 'partial')) {
      await step('isolate', async () => {
        for (const j of plan.jobs) await isolate.trainingJobStop({ job: j.job, graceSeconds: 5 }).catch(() => undefined); // a dead agent cannot stop them; the agent stop below takes the node down anyway
        await orchestrator.nodeAgentStop({ node: input.node });
        return orchestrator.nodeSetAside({ node: input.node, id: wfId });
      });
    }

    // ---- build the node ---------------------------------------------------------------------------
    const provisionId = wfId;
    await step('provision', async () => {
      compensations.push({ name: 'teardown', run: () => orchestrator.nodeTeardown({ node: input.node, provisionId }) });
      return orchestrator.nodeProvision({ node: input.node, provisionId });
    });
    await step('start-agent', async () => {
      compensations.push({ name: 'stop-agent', run: () => orchestrator.nodeAgentStop({ node: input.node }) });
      return orchestrator.nodeAgentStart({ node: input.node });
    });
    await step('wait-for-agent', () => hello.nodeAgentHello());

    // ---- restore, in order --------------------------------------------------------------------------
    const assets: RecoveredAsset[] = [];
    for (const a of plan.assets) {
      const c = chosen.find((x) => x.asset === a.asset)!;
      const childId = `${wfId}-restore-${a.asset}`;
      const r: RestoreWorkflowResult = await step(`restore:${a.asset}`, () =>
        executeChild(restoreWorkflow, {
          workflowId: childId,
          args: [{ asset: a.asset, from: { snapshotId: c.snapshotId }, target: a.target, node: input.node }],
        }),
      );
      assets.push({
        asset: a.asset,
        kind: a.kind,
        stage: a.stage,
        snapshotId: r.snapshotId,
        snapshotTime: r.snapshotTime,
        source: c.source,
        files: r.files,
        bytes: r.bytes,
        verified: r.verified,
        restoreWorkflowId: childId,
      });
    }

    // ---- restart the training jobs -------------------------------------------------------------------
    const jobs: RecoveredJob[] = [];
    for (const j of plan.jobs) {
      const before = await step(`inspect:${j.job}`, () => node.trainingJobProgress({ job: j.job }));
      const started = await step(`start-job:${j.job}`, async () => {
        compensations.push({ name: `stop-job:${j.job}`, run: () => nodeCleanup.trainingJobStop({ job: j.job, graceSeconds: opts.jobStopGraceSeconds ?? 30 }) });
        return node.trainingJobStart({ job: j.job, runId: wfId.replace(/[^A-Za-z0-9._-]/g, '_'), resume: true });
      });
      const seen = await step(`confirm:${j.job}`, () => node.trainingJobWaitForStepBeyond({ job: j.job, step: 'start', timeoutSeconds: opts.progressTimeoutSeconds ?? 600 }));
      const ck = assets.find((x) => x.asset === j.checkpointAsset)!;
      jobs.push(resumedJob(j, before, started, seen, Math.max(0, Math.round((failedAtMs - Date.parse(ck.snapshotTime)) / 1000))));
    }

    await audit(recoveryEnded({ node: input.node, assets: assets.length, jobs: jobs.length, durationMs: Date.now() - startedMs }, { ok: true }));
    return completed(assets, jobs, 'rebuild');
  } catch (err) {
    const failedStep = progress.failedStep ?? progress.step;
    progress.step = 'compensating';
    const undone: string[] = [];
    const problems: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const c of [...compensations].reverse()) {
        try {
          await c.run();
          undone.push(c.name);
        } catch (e) {
          problems.push(`${c.name}: ${(e as Error).message}`);
        }
        progress.compensations.push(c.name);
      }
    });
    progress.step = 'failed';
    await audit(recoveryEnded({ node: input.node, assets: 0, jobs: 0, durationMs: Date.now() - startedMs }, endingOf(err), failedStep));
    // the innermost failure says what went wrong (child workflow → activity → ApplicationFailure)
    let why = (err as Error).message;
    for (let e = (err as Error & { cause?: Error }).cause, i = 0; e && i < 6; e = (e as Error & { cause?: Error }).cause, i++) if (e.message) why = e.message;
    throw ApplicationFailure.create({
      type: RecoveryFailed,
      nonRetryable: true,
      message:
        `recovery of node ${input.node} failed at step ${failedStep}: ${why}` +
        (undone.length ? `; undone: ${undone.join(', ')}` : '') +
        (problems.length ? `; compensation problems: ${problems.join('; ')}` : ''),
      details: [{ failedStep, undone, problems }],
      cause: err instanceof Error ? err : undefined,
    });
  }
}
