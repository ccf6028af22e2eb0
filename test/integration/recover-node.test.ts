/**
 * RecoverNodeWorkflow end to end on the test Temporal + MinIO: a local node
 * runs the demo trainer; its platform config, model, data set and checkpoints
 * are backed up and verified; the node is destroyed (trainer SIGKILLed, node
 * agent killed, node folder wiped); the recovery rebuilds it through the local
 * provider (a real node-agent process), restores everything from the last
 * verified snapshots and resumes training, which ends with the same weights as
 * an uninterrupted run. Also: a corrupt newest checkpoint snapshot makes it
 * resume from the previous verified one (larger RPO); a restore failing in the
 * middle undoes everything (no process, no node folder left).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import type { LoadedConfig } from '../../config/load';
import { LocalNodeProvider } from '../../nodes/local';
import { readProcessRecord } from '../../nodes/processes';
import { jobDir, jobProgress, startTrainingJob } from '../../training/jobs';
import type { RecoverNodeResult } from '../../workflows/recover-node';
import { applicationFailureOf } from '../../cli/runs';
import { testS3Client } from '../support/services';
import { parseJson, runCli } from '../support/cli';
import type { LifelineEnv } from '../support/lifeline-env';
import { dataKeys, makeTrainingNodeEnv, processesOf, referenceWeights, startNodeRig, tearDownNode, TRAINING_ASSETS as ASSETS, type NodeRig, type TrainerOptions } from '../support/training-node';
import { until } from '../support/until';

const STEPS = 200;
const TRAINER: TrainerOptions = { steps: STEPS, checkpointEvery: 40, stepDelayMs: 25 };

interface Scenario {
  env: LifelineEnv;
  config: LoadedConfig;
  base: string;
  nodeRoot: string;
  client: Client;
  rig: NodeRig;
  referenceHash: string;
  cleanup(): Promise<void>;
}

/** A node with a platform config, a model, a data set and a checkpoint folder, a training job, an orchestrator (in process) and a node agent (child process). */
async function scenario(label: string, opts: { modelOutsideRoot?: boolean } = {}): Promise<Scenario> {
  const base = await mkdtemp(join(tmpdir(), 'lifeline-recover-node-'));
  const nodeRoot = join(base, 'node');
  let env: LifelineEnv | undefined;
  try {
    env = await makeTrainingNodeEnv(label, nodeRoot, { trainer: TRAINER, ...(opts.modelOutsideRoot ? { modelPath: join(base, 'shared-model') } : {}) });
    // the uninterrupted run
    const refDir = join(base, 'reference');
    const referenceHash = await referenceWeights(join(nodeRoot, 'data'), join(refDir, 'ckpt'), TRAINER);
    await rm(refDir, { recursive: true, force: true });
    const rig = await startNodeRig(env);
    const e = env;
    return { env: e, config: e.config, base, nodeRoot, client: rig.client, rig, referenceHash, cleanup: () => tearDownNode({ env: e, rig, base }) };
  } catch (err) {
    await tearDownNode({ env, base });
    throw err;
  }
}

async function backupAndVerify(s: Scenario, assets: readonly string[]): Promise<void> {
  for (const asset of assets) {
    await s.client.workflow.execute('backupWorkflow', { taskQueue: s.env.taskQueue, workflowId: `test-recover-backup-${asset}-${Date.now()}`, args: [{ asset, trigger: 'manual' }] });
    await s.client.workflow.execute('verifyWorkflow', { taskQueue: s.env.taskQueue, workflowId: `test-recover-verify-${asset}-${Date.now()}`, args: [{ asset }] });
  }
}

/** Runs the job until checkpoint `step`, pauses it (SIGSTOP) for `during`, and lets it go on. Returns the newest checkpointed step while paused. */
async function pausedAt<T>(s: Scenario, pid: number, step: number, during: (checkpointStep: number) => Promise<T>): Promise<T> {
  await until(`checkpoint ${step}`, () => ((jobProgress(s.config, 'train').checkpointStep ?? 0) >= step ? true : undefined));
  process.kill(-pid, 'SIGSTOP');
  try {
    return await during(jobProgress(s.config, 'train').checkpointStep!);
  } finally {
    process.kill(-pid, 'SIGCONT');
  }
}

/** The node is lost: the trainer and the node agent are SIGKILLed and the node folder is wiped. Returns the newest step logged and the failure time. */
async function destroyNode(s: Scenario, pid: number): Promise<{ stepAtFailure: number; failedAt: string }> {
  process.kill(-pid, 'SIGKILL');
  await s.rig.agent!.kill('SIGKILL');
  s.rig.agent = undefined;
  await until('the trainer to die', () => (jobProgress(s.config, 'train').state === 'running' ? undefined : true));
  await rm(s.nodeRoot, { recursive: true, force: true });
  return { stepAtFailure: jobProgress(s.config, 'train').step!, failedAt: new Date().toISOString() };
}

async function recover(s: Scenario, failedAt: string): Promise<RecoverNodeResult> {
  return s.client.workflow.execute('recoverNodeWorkflow', {
    taskQueue: s.env.taskQueue,
    workflowId: `test-recover-node-${Date.now()}`,
    args: [{ node: s.env.node, failedAt, options: { progressTimeoutSeconds: 300 } }],
  });
}

async function finished(s: Scenario) {
  return until('the resumed run to finish', () => {
    const p = jobProgress(s.config, 'train');
    return p.state === 'running' ? undefined : p;
  }, 300_000);
}

// Loaded 2-core machines: generous per-test timeouts.
describe('RecoverNodeWorkflow', () => {
  it('rebuilds a destroyed node from the last verified snapshots and training ends with the weights of an uninterrupted run', async () => {
    const s = await scenario('recover-node');
    try {
      const { config, nodeRoot, env } = s;
      // ---- the job runs; everything is backed up (trainer paused meanwhile) and verified ----------------
      const started = await startTrainingJob(config, 'train', { runId: 'original' });
      const backedUpStep = await pausedAt(s, started.pid, 80, async (step) => {
        await backupAndVerify(s, ASSETS);
        return step;
      });
      // it trains on past the backed-up checkpoint, then the node is lost
      await until('training past the backup', () => ((jobProgress(config, 'train').step ?? 0) >= backedUpStep + 20 ? true : undefined));
      const { stepAtFailure, failedAt } = await destroyNode(s, started.pid);
      expect(stepAtFailure).toBeGreaterThanOrEqual(backedUpStep + 20);

      // ---- recover ---------------------------------------------------------------------------------------
      const result = await recover(s, failedAt);
      expect(result.assets.map((a) => [a.asset, a.stage, a.source, a.verified])).toEqual([
        ['platform', 'platform-config', 'last-verified', true],
        ['spiral', 'models-and-datasets', 'last-verified', true],
        ['weights', 'models-and-datasets', 'last-verified', true],
        ['ckpt', 'checkpoints', 'last-verified', true],
      ]);
      expect(result.steps.slice(0, 6)).toEqual(['plan', 'inspect-root', 'choose-snapshots', 'provision', 'start-agent', 'wait-for-agent']);
      expect(result.steps).toContain('confirm:train');
      const job = result.jobs[0]!;
      expect(job).toMatchObject({ job: 'train', checkpointAsset: 'ckpt', restoredStep: backedUpStep, stepAtFailure, rpoSteps: stepAtFailure - backedUpStep });
      expect(job.confirmedStep).toBeGreaterThan(backedUpStep);
      expect(job.rpoSeconds).toBeGreaterThanOrEqual(0);
      expect(Date.parse(result.finishedAt)).toBeGreaterThanOrEqual(Date.parse(result.startedAt));
      expect(JSON.parse(await readFile(join(nodeRoot, 'etc', 'platform.json'), 'utf8'))).toEqual({ scheduler: 'local', gpus: 0 });
      expect(readProcessRecord(join(jobDir(config, 'train'), 'process.json'))!.pid).toBe(job.pid);

      // ---- training finishes with the uninterrupted run's weights ---------------------------------------------
      const end = await finished(s);
      expect(end).toMatchObject({ state: 'done', startStep: backedUpStep, step: STEPS });
      expect(end.weightsSha256).toBe(s.referenceHash);
      expect((await new LocalNodeProvider(config).isAgentUp(env.node)).up).toBe(true);
      expect(existsSync(join(nodeRoot, 'ckpt'))).toBe(true);
    } finally {
      await s.cleanup();
    }
  }, 900_000);

  it('a corrupt newest checkpoint snapshot: recovery resumes from the previous verified one and states the larger RPO', async () => {
    const s = await scenario('recover-corrupt');
    try {
      const { config } = s;
      const started = await startTrainingJob(config, 'train', { runId: 'original' });
      const first = await pausedAt(s, started.pid, 40, async (step) => {
        await backupAndVerify(s, ASSETS);
        return step;
      });
      const second = await pausedAt(s, started.pid, first + 40, async (step) => {
        const before = await dataKeys(s.env);
        await backupAndVerify(s, ['ckpt']);
        const added = [...(await dataKeys(s.env))].filter((k) => !before.has(k));
        expect(added.length).toBeGreaterThan(0);
        // the newest snapshot's own pack is overwritten through S3; a deep verification marks it corrupt
        await testS3Client().send(new PutObjectCommand({ Bucket: s.env.bucket, Key: added[0]!, Body: randomBytes(4096) }));
        const deep = await s.client.workflow.start('verifyWorkflow', { taskQueue: s.env.taskQueue, workflowId: `test-recover-deep-${Date.now()}`, args: [{ asset: 'ckpt', mode: 'deep', samplePercent: 100 }] });
        const err = await deep.result().then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect(applicationFailureOf(err)?.type).toBe('IntegrityFailure');
        return step;
      });
      expect(second).toBeGreaterThan(first);
      await until('training past the second backup', () => ((jobProgress(config, 'train').step ?? 0) >= second + 10 ? true : undefined));
      const { stepAtFailure, failedAt } = await destroyNode(s, started.pid);

      const result = await recover(s, failedAt);
      const ckpt = result.assets.find((a) => a.asset === 'ckpt')!;
      expect(ckpt.source).toBe('last-verified');
      const job = result.jobs[0]!;
      expect(job).toMatchObject({ restoredStep: first, stepAtFailure, rpoSteps: stepAtFailure - first });
      expect(job.rpoSteps!).toBeGreaterThan(stepAtFailure - second);
      const end = await finished(s);
      expect(end).toMatchObject({ state: 'done', startStep: first, step: STEPS });
      expect(end.weightsSha256).toBe(s.referenceHash);
    } finally {
      await s.cleanup();
    }
  }, 900_000);

  it('a restore failing in the middle undoes the rebuild: the agent is stopped, the node folder removed, and the failure names the step', async () => {
    // the model lives outside the node's folder, and a stale copy is still there: its restore fails (target not empty)
    const s = await scenario('recover-fails', { modelOutsideRoot: true });
    try {
      await backupAndVerify(s, ASSETS);
      await s.rig.agent!.kill('SIGKILL');
      s.rig.agent = undefined;
      await rm(s.nodeRoot, { recursive: true, force: true });

      const handle = await s.client.workflow.start('recoverNodeWorkflow', {
        taskQueue: s.env.taskQueue,
        workflowId: `test-recover-fail-${Date.now()}`,
        args: [{ node: s.env.node, failedAt: new Date().toISOString() }],
      });
      const err = await handle.result().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = applicationFailureOf(err)!;
      expect(failure).toBeInstanceOf(ApplicationFailure);
      expect(failure.type).toBe('RecoveryFailed');
      expect(failure.message).toMatch(/failed at step restore:weights: .*not empty/);
      expect(failure.details?.[0]).toEqual({ failedStep: 'restore:weights', undone: ['stop-agent', 'teardown'], problems: [] });
      const progress = await handle.query<{ done: string[] }>('progress');
      expect(progress.done).toEqual(['plan', 'inspect-root', 'choose-snapshots', 'provision', 'start-agent', 'wait-for-agent', 'restore:platform', 'restore:spiral']);
      expect(existsSync(s.nodeRoot)).toBe(false);
      expect((await new LocalNodeProvider(s.config).isAgentUp(s.env.node)).up).toBe(false);
      expect(processesOf(s.env.node, s.nodeRoot)).toEqual([]);
      expect(jobProgress(s.config, 'train').state).toBe('never-started');
    } finally {
      await s.cleanup();
    }
  }, 900_000);

  it('lifeline recover node refuses, and builds nothing, while an asset without an override has no verified snapshot; it names them and the fix', async () => {
    const s = await scenario('recover-unverified');
    try {
      const snapshotIds: Record<string, string> = {};
      for (const asset of ASSETS) {
        const b = await s.client.workflow.execute('backupWorkflow', { taskQueue: s.env.taskQueue, workflowId: `test-recover-backup-${asset}-${Date.now()}`, args: [{ asset, trigger: 'manual' }] });
        snapshotIds[asset] = (b as { snapshotId: string }).snapshotId;
      }
      // the platform config is verified, the rest only backed up; the model's (unverified) snapshot is named explicitly
      await s.client.workflow.execute('verifyWorkflow', { taskQueue: s.env.taskQueue, workflowId: `test-recover-verify-${Date.now()}`, args: [{ asset: 'platform' }] });
      await s.rig.agent!.kill('SIGKILL');
      s.rig.agent = undefined;
      await rm(s.nodeRoot, { recursive: true, force: true });

      const bad = await runCli(['--config', s.env.configFile, 'recover', 'node', s.env.node, '--snapshot', 'nope=abcdef', '--task-queue', s.env.taskQueue]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain(`asset nope is not on node ${s.env.node}`);

      const r = await runCli(['--config', s.env.configFile, 'recover', 'node', s.env.node, '--snapshot', `weights=${snapshotIds.weights}`, '--wait', '--json', '--task-queue', s.env.taskQueue], { timeoutMs: 300_000 });
      expect(r.code).toBe(1);
      const out = parseJson<{ ok: boolean; type: string; message: string; details: { failedStep: string; undone: string[] }[]; workflowId: string }>(r);
      expect(out.ok).toBe(false);
      expect(out.workflowId).toMatch(new RegExp(`^recover-node-${s.env.node}-`));
      expect(out.type).toBe('RecoveryFailed');
      expect(out.message).toContain('failed at step choose-snapshots');
      expect(out.message).toContain('spiral, ckpt have no verified, non-quarantined snapshot, and nothing unverified is restored');
      expect(out.details[0]).toMatchObject({ failedStep: 'choose-snapshots', undone: [] });
      expect(existsSync(s.nodeRoot)).toBe(false);
      expect((await new LocalNodeProvider(s.config).isAgentUp(s.env.node)).up).toBe(false);
      expect(processesOf(s.env.node, s.nodeRoot)).toEqual([]);
    } finally {
      await s.cleanup();
    }
  }, 900_000);

  it('a recovery cancelled while it restores still undoes the rebuild (non-cancellable compensation)', async () => {
    const s = await scenario('recover-cancel');
    try {
      await backupAndVerify(s, ASSETS);
      await s.rig.agent!.kill('SIGKILL');
      s.rig.agent = undefined;
      await rm(s.nodeRoot, { recursive: true, force: true });

      const handle = await s.client.workflow.start('recoverNodeWorkflow', {
        taskQueue: s.env.taskQueue,
        workflowId: `test-recover-cancel-${Date.now()}`,
        args: [{ node: s.env.node, failedAt: new Date().toISOString() }],
      });
      await until('the agent to answer', async () => ((await handle.query<{ done: string[] }>('progress')).done.includes('wait-for-agent') ? true : undefined), 300_000);
      await handle.cancel();
      const err = await handle.result().then(() => null, (e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const failure = applicationFailureOf(err)!;
      expect(failure.type).toBe('RecoveryFailed');
      const details = failure.details?.[0] as { failedStep: string; undone: string[]; problems: string[] };
      expect(details.failedStep).toMatch(/^restore:/);
      expect(details.undone).toEqual(['stop-agent', 'teardown']);
      expect(details.problems).toEqual([]);
      expect(existsSync(s.nodeRoot)).toBe(false);
      expect((await new LocalNodeProvider(s.config).isAgentUp(s.env.node)).up).toBe(false);
      expect(processesOf(s.env.node, s.nodeRoot)).toEqual([]);
    } finally {
      await s.cleanup();
    }
  }, 900_000);
});
