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
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig, type LoadedConfig } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { createBufferLogger } from '../../logging/logger';
import { LocalNodeProvider } from '../../nodes/local';
import { readProcessRecord } from '../../nodes/processes';
import { jobDir, jobProgress, startTrainingJob, stopTrainingJob } from '../../training/jobs';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { RecoverNodeResult } from '../../workflows/recover-node';
import { applicationFailureOf } from '../../cli/runs';
import { tenantLocation } from '../../tenancy/repositories';
import { testS3Client } from '../support/services';
import { parseJson, runCli } from '../support/cli';
import { connect, makeEnv, removeEnv, spawnNodeAgent, type ChildAgent, type LifelineEnv } from '../support/lifeline-env';

const run = promisify(execFile);
const STEPS = 200;
const ASSETS = ['platform', 'weights', 'spiral', 'ckpt'] as const;

interface Scenario {
  env: LifelineEnv;
  config: LoadedConfig;
  base: string;
  nodeRoot: string;
  client: Client;
  referenceHash: string;
  agent?: ChildAgent;
  cleanup(): Promise<void>;
}

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 240_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const trainerArgs = (ckpt: string, data: string, extra: string[] = []) => [
  '--import', 'tsx', 'trainer/train.ts', '--steps', String(STEPS), '--checkpoint-dir', ckpt, '--checkpoint-every', '40', '--keep', '3', '--data', data, ...extra,
];

/** A node with a platform config, a model, a data set and a checkpoint folder, a training job, an orchestrator (in process) and a node agent (child process). */
async function scenario(label: string, opts: { modelOutsideRoot?: boolean } = {}): Promise<Scenario> {
  const base = await mkdtemp(join(tmpdir(), 'lifeline-recover-node-'));
  const nodeRoot = join(base, 'node');
  const modelPath = opts.modelOutsideRoot ? join(base, 'shared-model') : join(nodeRoot, 'model');
  for (const d of [join(nodeRoot, 'etc'), modelPath, join(nodeRoot, 'data'), join(nodeRoot, 'ckpt')]) await mkdir(d, { recursive: true });
  const env = await makeEnv(label, {
    assets: {
      platform: { kind: 'platform-config', path: join(nodeRoot, 'etc') },
      weights: { kind: 'model', path: modelPath },
      spiral: { kind: 'dataset', path: join(nodeRoot, 'data') },
      ckpt: { kind: 'checkpoint', path: join(nodeRoot, 'ckpt'), checkpoint: { completion: 'rename' } },
    },
  });
  // the node's root, and the training job that runs on it
  const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
  raw.nodes[env.node].root = nodeRoot;
  raw.trainingJobs = {
    train: {
      node: env.node,
      command: [process.execPath, ...trainerArgs(join(nodeRoot, 'ckpt'), join(nodeRoot, 'data'), ['--step-delay-ms', '25'])],
      workingDir: LIFELINE_ROOT,
      checkpointAsset: 'ckpt',
    },
  };
  await writeFile(env.configFile, stringify(raw), { mode: 0o600 });
  const config = loadConfig({ configPath: env.configFile, env: {} });

  await writeFile(join(nodeRoot, 'etc', 'platform.json'), JSON.stringify({ scheduler: 'local', gpus: 0 }));
  await writeFile(join(modelPath, 'README.txt'), 'spiral MLP 2-32-32-3\n');
  await run(process.execPath, ['--import', 'tsx', 'trainer/make-dataset.ts', '--out', join(nodeRoot, 'data')], { cwd: LIFELINE_ROOT });
  // the uninterrupted run
  const refDir = join(base, 'reference');
  const ref = await run(process.execPath, trainerArgs(join(refDir, 'ckpt'), join(nodeRoot, 'data')), { cwd: LIFELINE_ROOT, maxBuffer: 1 << 24 });
  const done = ref.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; weightsSha256?: string }).find((e) => e.event === 'done');
  await rm(refDir, { recursive: true, force: true });

  let connection: Connection | undefined;
  let orchestrator: LifelineWorker | undefined;
  let orchestratorDone: Promise<void> | undefined;
  const s: Scenario = {
    env,
    config,
    base,
    nodeRoot,
    client: undefined as unknown as Client,
    referenceHash: done!.weightsSha256!,
    async cleanup() {
      await stopTrainingJob(config, 'train', 2000).catch(() => undefined);
      await new LocalNodeProvider(config).stopAgent(env.node).catch(() => undefined);
      await s.agent?.kill().catch(() => undefined);
      try {
        orchestrator?.worker.shutdown();
      } catch {
        // already stopping
      }
      await orchestratorDone?.catch(() => undefined);
      await connection?.close();
      await rm(base, { recursive: true, force: true });
      await removeEnv(env);
    },
  };
  try {
    const c = await connect(env);
    connection = c.connection;
    s.client = c.client;
    orchestrator = await createLifelineWorker({ config, role: 'orchestrator', logger: createBufferLogger({ level: 'info' }).logger, taskQueue: env.taskQueue });
    orchestratorDone = orchestrator.run();
    orchestratorDone.catch(() => undefined);
    s.agent = await spawnNodeAgent(env);
  } catch (err) {
    await s.cleanup();
    throw err;
  }
  return s;
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
  await s.agent!.kill('SIGKILL');
  s.agent = undefined;
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

async function dataKeys(s: Scenario): Promise<Set<string>> {
  const prefix = `${tenantLocation(s.config, s.env.tenant, s.config.storage).prefix}data/`;
  const keys = new Set<string>();
  let token: string | undefined;
  do {
    const page = await testS3Client().send(new ListObjectsV2Command({ Bucket: s.env.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.add(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Processes whose command line names the node (its agent) or the node's folder (its trainer). */
function processesOf(s: Scenario): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes(s.env.node) || cmd.includes(s.nodeRoot)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
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
        const before = await dataKeys(s);
        await backupAndVerify(s, ['ckpt']);
        const added = [...(await dataKeys(s))].filter((k) => !before.has(k));
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
      await s.agent!.kill('SIGKILL');
      s.agent = undefined;
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
      expect(processesOf(s)).toEqual([]);
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
      await s.agent!.kill('SIGKILL');
      s.agent = undefined;
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
      expect(processesOf(s)).toEqual([]);
    } finally {
      await s.cleanup();
    }
  }, 900_000);

  it('a recovery cancelled while it restores still undoes the rebuild (non-cancellable compensation)', async () => {
    const s = await scenario('recover-cancel');
    try {
      await backupAndVerify(s, ASSETS);
      await s.agent!.kill('SIGKILL');
      s.agent = undefined;
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
      expect(processesOf(s)).toEqual([]);
    } finally {
      await s.cleanup();
    }
  }, 900_000);
});
