/**
 * Chaos drills of the process faults, on the suite's Temporal and MinIO, with
 * real trainer processes, a node agent started by the local node provider, the
 * orchestrator worker as a supervised process (so crash-orchestrator can kill
 * it) and the drill worker in this process on its own queue. One platform is
 * set up once (four assets backed up and verified, training running); each
 * drill must leave it as it found it: node folder there, agent and training
 * running, orchestrator back, every fault inactive.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WorkflowFailedError, type Client, type Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { DrillSummary } from '../../activities/drill';
import { applicationFailureOf, hasWorkers } from '../../cli/runs';
import { loadConfig, type LoadedConfig } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { drillDir, faultId, faultInjector, faultStateDir } from '../../drills/faults';
import type { DrillReport } from '../../drills/report';
import { parseScenario, type Scenario } from '../../drills/scenario';
import { createBufferLogger } from '../../logging/logger';
import { LocalNodeProvider } from '../../nodes/local';
import { jobProgress, startTrainingJob, stopTrainingJob } from '../../training/jobs';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import { startSupervisedWorker, stopSupervisedWorker, supervisedWorker } from '../../workers/supervised';
import type { DrillProgress } from '../../workflows/drill';
import { nodeTaskQueue } from '../../workflows/task-queues';
import { cleanEnv, parseJson, runCli } from '../support/cli';
import { faultContext } from '../support/faults';
import { connect, makeEnv, removeEnv, sha256File, type LifelineEnv } from '../support/lifeline-env';
import { uniqueTaskQueue } from '../support/services';

const run = promisify(execFile);
const ASSETS = ['platform', 'weights', 'spiral', 'ckpt'] as const;

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 240_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('chaos drills: process faults', () => {
  const base = { dir: '' };
  let nodeRoot = '';
  let env: LifelineEnv;
  let config: LoadedConfig;
  let connection: Connection;
  let client: Client;
  let drillWorker: LifelineWorker;
  let drillDone: Promise<void>;
  const drillQueue = uniqueTaskQueue('drill');
  const started: string[] = [];
  let provider: LocalNodeProvider;

  const scenarioOf = (raw: Record<string, unknown>): Scenario =>
    parseScenario(stringify({ environment: 'staging', node: env.node, timeout: '10m', ...raw }), 'test scenario');

  async function runDrill(s: Scenario, during?: (id: string) => Promise<void>): Promise<{ id: string; summary: DrillSummary; report: DrillReport }> {
    const id = `drill-${s.name}-${Date.now()}`;
    started.push(id);
    const h = await client.workflow.start('chaosDrillWorkflow', { taskQueue: drillQueue, workflowId: id, args: [{ scenario: s, orchestratorTaskQueue: env.taskQueue }] });
    if (during) await during(id);
    const summary = (await h.result()) as DrillSummary;
    const report = JSON.parse(await readFile(summary.jsonPath, 'utf8')) as DrillReport;
    return { id, summary, report };
  }

  /** Nothing of the drill is left: the node's folder, agent and training are back, the orchestrator runs, no fault is active. */
  async function expectPlatformBack(report: DrillReport): Promise<void> {
    for (const d of ['etc', 'model', 'data', 'ckpt']) expect(readdirSync(join(nodeRoot, d)).length, d).toBeGreaterThan(0);
    expect((await provider.isAgentUp(env.node)).up).toBe(true);
    await until('training running', () => (jobProgress(config, 'train').state === 'running' ? true : undefined), 120_000);
    expect(supervisedWorker(config, 'orchestrator').alive).toBe(true);
    expect(report.faults.length).toBeGreaterThan(0);
    for (const f of report.faults) expect(f, f.id).toMatchObject({ reverted: true });
    for (const f of report.faults) expect(f.injectedAt, f.id).not.toBeNull();
  }

  beforeAll(async () => {
    base.dir = await mkdtemp(join(tmpdir(), 'lifeline-drills-'));
    nodeRoot = join(base.dir, 'node');
    for (const d of ['etc', 'model', 'data', 'ckpt']) await mkdir(join(nodeRoot, d), { recursive: true });
    env = await makeEnv('drills', {
      assets: {
        platform: { kind: 'platform-config', path: join(nodeRoot, 'etc') },
        weights: { kind: 'model', path: join(nodeRoot, 'model') },
        spiral: { kind: 'dataset', path: join(nodeRoot, 'data') },
        ckpt: { kind: 'checkpoint', path: join(nodeRoot, 'ckpt'), checkpoint: { completion: 'rename' } },
      },
    });
    const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
    raw.nodes[env.node].root = nodeRoot;
    raw.trainingJobs = {
      train: {
        node: env.node,
        command: [process.execPath, '--import', 'tsx', 'trainer/train.ts', '--steps', '1000000', '--checkpoint-dir', join(nodeRoot, 'ckpt'), '--checkpoint-every', '100', '--keep', '3', '--data', join(nodeRoot, 'data'), '--step-delay-ms', '30'],
        workingDir: LIFELINE_ROOT,
        checkpointAsset: 'ckpt',
      },
    };
    raw.incident = { environment: 'staging', recovery: 'recover-node', approvalTimeout: '1h', nodeProbeEvery: '1s', nodeLostAfter: '20s' };
    await writeFile(env.configFile, stringify(raw), { mode: 0o600 });
    config = loadConfig({ configPath: env.configFile, env: {} });
    provider = new LocalNodeProvider(config, { env: cleanEnv() });
    await writeFile(join(nodeRoot, 'etc', 'platform.json'), JSON.stringify({ scheduler: 'local', gpus: 0 }));
    await writeFile(join(nodeRoot, 'model', 'README.txt'), 'spiral MLP 2-32-32-3\n');
    await run(process.execPath, ['--import', 'tsx', 'trainer/make-dataset.ts', '--out', join(nodeRoot, 'data')], { cwd: LIFELINE_ROOT });

    ({ client, connection } = await connect(env));
    // the orchestrator as a supervised process (crash-orchestrator kills it); the drill worker here
    await startSupervisedWorker(config, 'orchestrator', { taskQueue: env.taskQueue, env: cleanEnv() });
    drillWorker = await createLifelineWorker({ config, role: 'drill', logger: createBufferLogger({ level: 'info' }).logger, taskQueue: drillQueue });
    drillDone = drillWorker.run();
    drillDone.catch(() => undefined);
    await provider.startAgent(env.node);
    await until('the orchestrator and node agent polling', async () => ((await hasWorkers(client, env.taskQueue)) && (await hasWorkers(client, nodeTaskQueue(env.node))) ? true : undefined), 240_000);

    // training runs; every asset is backed up and verified (the drills' precondition)
    const job = await startTrainingJob(config, 'train', { runId: 'original', env: cleanEnv() });
    await until('checkpoint 100', () => ((jobProgress(config, 'train').checkpointStep ?? 0) >= 100 ? true : undefined));
    // paused while it is backed up, so its checkpoints hold still (the trainer prunes old ones)
    process.kill(-job.pid, 'SIGSTOP');
    try {
      for (const asset of ASSETS) {
        await client.workflow.execute('backupWorkflow', { taskQueue: env.taskQueue, workflowId: `test-drills-backup-${asset}-${Date.now()}`, args: [{ asset, trigger: 'manual' }] });
        await client.workflow.execute('verifyWorkflow', { taskQueue: env.taskQueue, workflowId: `test-drills-verify-${asset}-${Date.now()}`, args: [{ asset }] });
      }
    } finally {
      process.kill(-job.pid, 'SIGCONT');
    }
  }, 900_000);

  afterAll(async () => {
    for (const id of [...started, `node-health-${env?.node}`, `incident-node-lost-${env?.node}`]) await client?.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined);
    if (config) {
      await stopTrainingJob(config, 'train', 2000).catch(() => undefined);
      await provider.stopAgent(env.node).catch(() => undefined);
      await stopSupervisedWorker(config, 'orchestrator', 5000).catch(() => undefined);
    }
    try {
      drillWorker?.worker.shutdown();
    } catch {
      // already stopping
    }
    await drillDone?.catch(() => undefined);
    await connection?.close();
    await rm(base.dir, { recursive: true, force: true });
    await removeEnv(env);
  }, 120_000);

  it('a drill aimed at an installation not marked staging is refused before any fault is injected (workflow and CLI)', async () => {
    const prodFile = join(base.dir, 'production.yaml');
    const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
    raw.incident.environment = 'production';
    await writeFile(prodFile, stringify(raw), { mode: 0o600 });
    const prod = loadConfig({ configPath: prodFile, env: {} });
    const prodQueue = uniqueTaskQueue('drill-prod');
    const w = await createLifelineWorker({ config: prod, role: 'drill', logger: createBufferLogger({ level: 'info' }).logger, taskQueue: prodQueue });
    const done = w.run();
    const before = jobProgress(config, 'train');
    const agentBefore = await provider.isAgentUp(env.node);
    const s = scenarioOf({ name: 'refused', faults: [{ kind: 'destroy-node', node: env.node }], objectives: { rto: '5m' } });
    const id = `drill-refused-${Date.now()}`;
    started.push(id);
    try {
      const err = await client.workflow.execute('chaosDrillWorkflow', { taskQueue: prodQueue, workflowId: id, args: [{ scenario: s, orchestratorTaskQueue: env.taskQueue }] }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowFailedError);
      const app = applicationFailureOf(err);
      expect(app?.type).toBe('DrillRefused');
      expect(app?.message).toMatch(/incident\.environment: production; drills run only where it is staging/);
      expect(app?.message).toMatch(/nothing injected/);
    } finally {
      w.worker.shutdown();
      await done.catch(() => undefined);
    }
    // nothing was injected: no fault state, the same trainer and agent run, the node is whole
    expect(existsSync(join(drillDir(prod, id), 'faults'))).toBe(false);
    expect(jobProgress(config, 'train')).toMatchObject({ state: 'running', pid: before.pid, runId: before.runId });
    expect((await provider.isAgentUp(env.node)).pid).toBe(agentBefore.pid);
    expect(readdirSync(join(nodeRoot, 'ckpt')).length).toBeGreaterThan(0);

    // the CLI refuses up front and starts nothing
    const scenarioFile = join(base.dir, 'refused.yaml');
    await writeFile(scenarioFile, stringify({ name: 'refused-cli', environment: 'staging', node: env.node, faults: [{ kind: 'destroy-node', node: env.node }], objectives: { rto: '5m' } }));
    const r = await runCli(['--config', prodFile, 'drill', 'run', scenarioFile, '--task-queue', prodQueue]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/drill refused-cli refused, nothing started:\n {2}this installation is incident\.environment: production/);
    expect(existsSync(join(drillDir(prod, 'x'), '..'))).toBe(false);
  });

  it('kill-training-job: the job watchdog notices, the incident restarts training on the intact node; run through the CLI', async () => {
    const before = jobProgress(config, 'train');
    const scenarioFile = join(base.dir, 'kill-job.yaml');
    await writeFile(
      scenarioFile,
      stringify({ name: 'kill-job', environment: 'staging', node: env.node, faults: [{ kind: 'kill-training-job', job: 'train' }], objectives: { rto: '5m', rpo: '1h', expect: ['incident-opened', 'training-resumes', 'restored-from-verified'] }, timeout: '10m' }),
    );
    const r = await runCli(['--config', env.configFile, 'drill', 'run', scenarioFile, '--task-queue', drillQueue, '--orchestrator-task-queue', env.taskQueue, '--json'], { timeoutMs: 600_000 });
    const out = parseJson<DrillSummary & { workflowId: string; ok: boolean }>(r);
    started.push(out.workflowId);
    expect(out.ok, r.stderr).toBe(true);
    expect(out.verdict, JSON.stringify(out)).toBe('pass');
    expect(r.code).toBe(0);
    expect(alive(before.pid!)).toBe(false);
    const report = JSON.parse(await readFile(out.jsonPath, 'utf8')) as DrillReport;
    expect(report.timeline.map((e) => e.event)).toEqual(expect.arrayContaining(['fault-injected', 'detected', 'incident-opened', 'approved', 'training-resumed', 'fault-reverted']));
    expect(report.timeline.find((e) => e.event === 'detected')?.detail).toMatch(/job watchdog/);
    expect(report.timeline.filter((e) => e.event === 'approved').every((e) => e.detail?.includes(`by drill:${out.workflowId}`))).toBe(true);
    expect(report.restored).toEqual([]);
    expect(report.measured.rtoSeconds).toBeGreaterThan(0);
    expect(report.measured.rpoSeconds).toBe(0);
    const after = jobProgress(config, 'train');
    expect(after.runId).not.toBe(before.runId);
    expect(after.startStep!).toBeGreaterThanOrEqual(100);
    await expectPlatformBack(report);
  }, 900_000);

  it('kill-node-agent with an unreachable RTO (1 s): the agent is restarted on the intact node, the report fails the RTO with the measured number, and everything is reverted', async () => {
    const agentBefore = (await provider.isAgentUp(env.node)).pid!;
    const jobBefore = jobProgress(config, 'train');
    const { summary, report } = await runDrill(scenarioOf({ name: 'kill-agent-rto-1s', faults: [{ kind: 'kill-node-agent', node: env.node }], objectives: { rto: '1s', expect: ['incident-opened'] } }));
    expect(summary.verdict).toBe('fail');
    expect(summary.aborted).toBe(false);
    const rto = report.objectives.find((o) => o.name === 'rto')!;
    expect(rto.pass).toBe(false);
    expect(report.measured.rtoSeconds!).toBeGreaterThan(1);
    expect(rto.measured).toBe(`${report.measured.rtoSeconds} s`);
    expect(report.objectives.find((o) => o.name === 'incident-opened')!.pass).toBe(true);
    expect(report.timeline.find((e) => e.event === 'detected')?.detail).toMatch(/node health/);
    expect(alive(agentBefore)).toBe(false);
    expect((await provider.isAgentUp(env.node)).pid).not.toBe(agentBefore);
    // only the agent died: the same training run goes on
    expect(jobProgress(config, 'train').runId).toBe(jobBefore.runId);
    await expectPlatformBack(report);
  }, 900_000);

  it('kill-node-agent: node health notices the node lost, the recovery restarts the agent on the intact root, the same training run goes on; pass', async () => {
    const agentBefore = (await provider.isAgentUp(env.node)).pid!;
    const jobBefore = jobProgress(config, 'train');
    const { summary, report } = await runDrill(
      scenarioOf({ name: 'kill-agent', faults: [{ kind: 'kill-node-agent', node: env.node }], objectives: { rto: '10m', rpo: '1h', expect: ['incident-opened', 'training-resumes', 'restored-from-verified'] } }),
    );
    expect(summary.verdict, JSON.stringify(report, null, 2)).toBe('pass');
    expect(report.timeline.find((e) => e.event === 'detected')?.detail).toMatch(/node health: node .* lost/);
    // restart mode: nothing came from storage, the agent was started again on the intact root
    expect(report.timeline.find((e) => e.event === 'node-rebuilt')?.detail).toMatch(/agent restarted on the intact node/);
    expect(report.restored).toEqual([]);
    expect(report.measured.rpoSeconds).toBe(0);
    expect(report.measured.rtoSeconds!).toBeGreaterThan(0);
    expect(report.workflows.map((w) => w.role)).toEqual(expect.arrayContaining(['incident', 'recover-node']));
    expect(alive(agentBefore)).toBe(false);
    expect((await provider.isAgentUp(env.node)).pid).not.toBe(agentBefore);
    // the recovery, not the drill's revert, brought the agent back
    expect(report.faults[0]!.detail.note).toMatch(/restarted by the recovery/);
    expect(jobProgress(config, 'train')).toMatchObject({ runId: jobBefore.runId, pid: jobBefore.pid });
    await expectPlatformBack(report);
  }, 900_000);

  it('destroy-node with the orchestrator crashed during the recovery: the node is rebuilt from verified snapshots taken before the fault and training resumes', async () => {
    const orchestratorBefore = supervisedWorker(config, 'orchestrator').record!.pid;
    const { summary, report } = await runDrill(
      scenarioOf({
        name: 'destroy-and-crash',
        faults: [
          { kind: 'destroy-node', node: env.node },
          { kind: 'crash-orchestrator', during: 'recovery', restartAfter: '3s' },
        ],
        objectives: { rto: '15m', rpo: '24h', expect: ['incident-opened', 'training-resumes', 'restored-from-verified', 'restored-from-before-fault'] },
      }),
    );
    expect(summary.verdict, JSON.stringify(report, null, 2)).toBe('pass');
    expect(report.restored.map((a) => a.asset).sort()).toEqual([...ASSETS].sort());
    expect(report.timeline.map((e) => e.event)).toEqual(expect.arrayContaining(['node-rebuilt', 'data-restored', 'training-resumed']));
    expect(report.faults.find((f) => f.kind === 'crash-orchestrator')?.injectedAt).not.toBeNull();
    expect(alive(orchestratorBefore)).toBe(false);
    expect(supervisedWorker(config, 'orchestrator').record!.pid).not.toBe(orchestratorBefore);
    expect(report.workflows.map((w) => w.role)).toEqual(expect.arrayContaining(['drill', 'node-health', 'incident', 'recover-node', 'restore']));
    // the drill's copy of the old root is gone once the recovery rebuilt it
    expect(existsSync(join(faultStateDir(config, report.id, report.faults[0]!.id), 'root'))).toBe(false);
    await expectPlatformBack(report);
  }, 1_200_000);

  it('a drill cancelled while its fault is active reverts it: the incident is cancelled, the node is put back, agent and training run again', async () => {
    let sawActive = false;
    const id = `drill-abort-${Date.now()}`;
    started.push(id);
    const s = scenarioOf({ name: 'abort', approval: 'operator', faults: [{ kind: 'destroy-node', node: env.node }], objectives: { rto: '15m' } });
    const h = await client.workflow.start('chaosDrillWorkflow', { taskQueue: drillQueue, workflowId: id, args: [{ scenario: s, orchestratorTaskQueue: env.taskQueue }] });
    await until('the fault injected and the incident waiting for an operator', async () => {
      const p = await h.query<DrillProgress>('progress').catch(() => undefined);
      return p?.faults[0]?.state === 'injected' && p.incidentStatus === 'awaiting-approval' ? true : undefined;
    }, 300_000);
    sawActive = !existsSync(join(nodeRoot, 'ckpt'));
    expect(sawActive).toBe(true);
    await h.cancel();
    const err = await h.result().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const report = JSON.parse(await readFile(join(drillDir(config, id), 'report.json'), 'utf8')) as DrillReport;
    expect(report).toMatchObject({ aborted: true, verdict: 'fail' });
    expect(report.errors.join('\n')).toMatch(/cancelled by an operator/);
    expect(report.errors.join('\n')).toMatch(/incident incident-node-lost-.* of the aborted drill: CANCEL+ED/);
    await expectPlatformBack(report);
  }, 900_000);
  it('ransomware: every file of the node is overwritten; the suspected-compromise incident rebuilds the node from snapshots taken before it', async () => {
    const { summary, report } = await runDrill(
      scenarioOf({ name: 'ransomware', faults: [{ kind: 'ransomware', node: env.node }], objectives: { rto: '15m', expect: ['incident-opened', 'training-resumes', 'restored-from-before-fault'] } }),
    );
    expect(summary.verdict, JSON.stringify(report, null, 2)).toBe('pass');
    expect(report.faults[0]!.detail.files).toBeGreaterThan(3);
    expect(report.timeline.find((e) => e.event === 'detected')?.detail).toMatch(/plays the external detector/);
    const injectedAt = Date.parse(report.faults[0]!.injectedAt!);
    for (const a of report.restored) expect(Date.parse(a.snapshotTime)).toBeLessThan(injectedAt);
    expect(JSON.parse(await readFile(join(nodeRoot, 'etc', 'platform.json'), 'utf8'))).toEqual({ scheduler: 'local', gpus: 0 });
    await expectPlatformBack(report);
  }, 1_200_000);

  it('a drill cancelled while kill-training-job, kill-node-agent, ransomware and crash-orchestrator are active reverts them all: processes back, files byte-identical, orchestrator running, no fault active', async () => {
    const staticFiles = async () => {
      const out: Record<string, string> = {};
      for (const d of ['etc', 'model', 'data']) for (const f of readdirSync(join(nodeRoot, d), { recursive: true, withFileTypes: true })) if (f.isFile()) out[join(f.parentPath, f.name)] = await sha256File(join(f.parentPath, f.name));
      return out;
    };
    const filesBefore = await staticFiles();
    const jobBefore = jobProgress(config, 'train');
    const agentBefore = (await provider.isAgentUp(env.node)).pid!;
    const orchestratorBefore = supervisedWorker(config, 'orchestrator').record!.pid;
    const id = `drill-abort-all-${Date.now()}`;
    started.push(id);
    // crash-orchestrator last with a long restartAfter: the drill is cancelled while all four are in effect
    const s = scenarioOf({
      name: 'abort-all',
      approval: 'operator',
      faults: [
        { kind: 'kill-training-job', job: 'train' },
        { kind: 'kill-node-agent', node: env.node },
        { kind: 'ransomware', node: env.node },
        { kind: 'crash-orchestrator', during: 'any', restartAfter: '5m' },
      ],
      objectives: { rto: '15m' },
    });
    const h = await client.workflow.start('chaosDrillWorkflow', { taskQueue: drillQueue, workflowId: id, args: [{ scenario: s, orchestratorTaskQueue: env.taskQueue }] });
    await until('all four faults injected', async () => {
      const p = await h.query<DrillProgress>('progress').catch(() => undefined);
      return p?.faults.every((f) => f.state === 'injected') ? true : undefined;
    }, 300_000);
    // every fault is in effect at the moment of the abort
    expect(alive(jobBefore.pid!)).toBe(false);
    expect(alive(agentBefore)).toBe(false);
    expect(alive(orchestratorBefore)).toBe(false);
    expect(await readFile(join(nodeRoot, 'etc', 'platform.json'), 'utf8')).not.toMatch(/scheduler/);
    await h.cancel();
    const err = await h.result().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    const report = JSON.parse(await readFile(join(drillDir(config, id), 'report.json'), 'utf8')) as DrillReport;
    console.log(`[abort-all] ${JSON.stringify({ errors: report.errors, faults: report.faults.map((f) => ({ id: f.id, reverted: f.reverted, note: f.detail.note })) })}`);
    expect(report).toMatchObject({ aborted: true, verdict: 'fail' });
    expect(report.faults.map((f) => f.kind)).toEqual(['kill-training-job', 'kill-node-agent', 'ransomware', 'crash-orchestrator']);
    expect(report.errors.join('\n')).toMatch(/cancelled by an operator/);
    // the suspected-compromise incident the drill reported, and any a detector opened meanwhile (the job
    // watchdog, a probe that timed out while the orchestrator was down), are closed, not left waiting for an operator
    const incidents = report.workflows.filter((w) => w.role === 'incident').map((w) => w.workflowId);
    expect(incidents.some((i) => i.startsWith('incident-suspected-compromise-')), JSON.stringify(report.errors)).toBe(true);
    for (const i of incidents) {
      expect(report.errors.join('\n')).toMatch(new RegExp(`incident ${i} .*: (CANCELLED|TERMINATED)`));
      expect((await client.workflow.getHandle(i).describe()).status.name, i).not.toBe('RUNNING');
    }
    expect(report.errors.join('\n')).not.toMatch(/did not hear from node/);
    // processes back: a new trainer resumed from the node's (put back) checkpoints, a new agent, a new orchestrator
    const jobAfter = await until('training running again', () => {
      const p = jobProgress(config, 'train');
      return p.state === 'running' && p.pid !== jobBefore.pid ? p : undefined;
    }, 120_000);
    expect(jobAfter.runId).not.toBe(jobBefore.runId);
    expect(jobAfter.startStep!).toBeGreaterThanOrEqual(100);
    expect(supervisedWorker(config, 'orchestrator').record!.pid).not.toBe(orchestratorBefore);
    // the ransomware revert put every file back byte for byte (etc, model, data do not change while training runs)
    expect(await staticFiles()).toEqual(filesBefore);
    // no fault state is active any more, as each injector sees it
    for (const [i, f] of s.faults.entries()) {
      const fid = faultId(i, f.kind);
      expect(await faultInjector(f.kind).active(faultContext(config, id, fid), f, fid), fid).toBe(false);
    }
    await expectPlatformBack(report);
  }, 1_200_000);
});
