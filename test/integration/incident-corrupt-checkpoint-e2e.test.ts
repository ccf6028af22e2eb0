/**
 * The incident-response acceptance item "the newest checkpoint object is
 * corrupted before the failure", end to end on the test Temporal dev server
 * and MinIO: the fixture trainer runs on a local node; every asset is backed
 * up and verified at an older checkpoint step a, and again at a newer step
 * b > a; one pack of the newer checkpoint snapshot is overwritten through S3
 * and a deep verification marks it corrupt (the integrity-failure incident it
 * opens is terminated explicitly); the node is destroyed; NodeHealthWorkflow
 * opens the node-lost incident, which is approved with `lifeline incident
 * approve … --step rebuild-node`; the recovery restores the checkpoint from the
 * OLDER verified snapshot, training resumes from step a and ends with the
 * uninterrupted run's weights, and the summary states the larger data-loss
 * window (RPO) of the older checkpoint.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { incidentMarkId } from '../../activities/incident';
import { nodeHealthId } from '../../cli/incident';
import { applicationFailureOf } from '../../cli/runs';
import { listHolds } from '../../engine/verification';
import type { IncidentStatus } from '../../incidents/model';
import { LocalNodeProvider } from '../../nodes/local';
import { jobProgress, startTrainingJob } from '../../training/jobs';
import { TenantRepositories } from '../../tenancy/repositories';
import { testS3Client } from '../support/services';
import type { IncidentView } from '../../workflows/incident';
import type { NodeHealthView } from '../../workflows/node-health';
import type { RecoverNodeResult } from '../../workflows/recover-node';
import { parseJson, runCli } from '../support/cli';
import type { LifelineEnv } from '../support/lifeline-env';
import { dataKeys, makeTrainingNodeEnv, processesOf, referenceWeights, startNodeRig, tearDownNode, TRAINING_ASSETS as ASSETS, type NodeRig, type TrainerOptions } from '../support/training-node';
import { until } from '../support/until';

const STEPS = 200;
const TRAINER: TrainerOptions = { steps: STEPS, checkpointEvery: 40, stepDelayMs: 25 };
const LOST_AFTER_S = 8;

describe('incident response: corrupt newest checkpoint, end to end', () => {
  it('the newest checkpoint snapshot is corrupt before the node is lost: recovery resumes from the previous verified checkpoint and the summary states the larger RPO', async () => {
    const base = await mkdtemp(join(tmpdir(), 'lifeline-incident-corrupt-e2e-'));
    const nodeRoot = join(base, 'node');
    let env: LifelineEnv | undefined;
    let rig: NodeRig | undefined;
    const workflows: string[] = [];
    try {
      // ---- a node with a platform config, a model, a data set and checkpoints; a training job; incidents recover nodes ----
      env = await makeTrainingNodeEnv('incident-corrupt', nodeRoot, {
        trainer: TRAINER,
        incident: { recovery: 'recover-node', approvalTimeout: '1h', nodeProbeEvery: '1s', nodeLostAfter: `${LOST_AFTER_S}s` },
      });
      const cfg = env.config;
      const node = env.node;
      const taskQueue = env.taskQueue;
      const cli = (args: string[], timeoutMs = 180_000) => runCli(['--config', env!.configFile, ...args], { timeoutMs });

      // the uninterrupted run
      const referenceHash = await referenceWeights(join(nodeRoot, 'data'), join(base, 'reference', 'ckpt'), TRAINER);
      expect(referenceHash).toMatch(/^[0-9a-f]{64}$/);

      rig = await startNodeRig(env);
      const cl = rig.client;
      const agent = rig.agent!;

      const backupAndVerify = async (asset: string): Promise<string> => {
        const b = (await cl.workflow.execute('backupWorkflow', { taskQueue, workflowId: `test-corrupt-backup-${asset}-${Date.now()}`, args: [{ asset, trigger: 'manual' }] })) as { snapshotId: string };
        const v = (await cl.workflow.execute('verifyWorkflow', { taskQueue, workflowId: `test-corrupt-verify-${asset}-${Date.now()}`, args: [{ asset }] })) as { verified: number };
        expect(v.verified).toBeGreaterThanOrEqual(1);
        return b.snapshotId;
      };

      // ---- the job runs; at checkpoint 40 (step a) it is paused while every asset is backed up and verified (the older snapshots) ----
      const started = await startTrainingJob(cfg, 'train', { runId: 'original' });
      const healthId = nodeHealthId(node);
      const health = () => cl.workflow.getHandle(healthId).query('health') as Promise<NodeHealthView>;
      const incidentId = `incident-node-lost-${node}`;
      const older: Record<string, string> = {};
      const newer: Record<string, string> = {};
      let olderStep = 0;
      let newerStep = 0;
      let olderBefore = 0;
      let olderAt = 0;
      let newerBefore = 0;
      let newerAt = 0;
      let integrityIncident = '';
      await until('checkpoint 40', () => ((jobProgress(cfg, 'train').checkpointStep ?? 0) >= 40 ? true : undefined));
      process.kill(-started.pid, 'SIGSTOP');
      try {
        olderStep = jobProgress(cfg, 'train').checkpointStep!;
        olderBefore = Date.now();
        for (const asset of ASSETS) older[asset] = await backupAndVerify(asset);
        olderAt = Date.now();
        // time passes between the two snapshots, so their data-loss windows differ by whole seconds
        await until('3 s after the older backup', () => (Date.now() - olderAt >= 3000 ? true : undefined));
      } finally {
        process.kill(-started.pid, 'SIGCONT');
      }

      // ---- at a later checkpoint (step b > a) every asset is backed up again; the newer checkpoint snapshot is then corrupted ----
      await until(`checkpoint ${olderStep + 40}`, () => ((jobProgress(cfg, 'train').checkpointStep ?? 0) >= olderStep + 40 ? true : undefined));
      process.kill(-started.pid, 'SIGSTOP');
      try {
        newerStep = jobProgress(cfg, 'train').checkpointStep!;
        expect(newerStep).toBeGreaterThan(olderStep);
        newerBefore = Date.now();
        for (const asset of ASSETS.filter((a) => a !== 'ckpt')) newer[asset] = await backupAndVerify(asset);
        const keysBefore = await dataKeys(env);
        newer.ckpt = await backupAndVerify('ckpt');
        newerAt = Date.now();
        expect(newer.ckpt).not.toBe(older.ckpt);
        const added = [...(await dataKeys(env))].filter((k) => !keysBefore.has(k));
        expect(added.length).toBeGreaterThan(0);
        // one pack of the newer checkpoint snapshot is overwritten through S3; a deep verification marks it corrupt
        await testS3Client().send(new PutObjectCommand({ Bucket: env.bucket, Key: added[0]!, Body: randomBytes(4096) }));
        const deep = await cl.workflow.start('verifyWorkflow', { taskQueue, workflowId: `test-corrupt-deep-${Date.now()}`, args: [{ asset: 'ckpt', mode: 'deep', samplePercent: 100 }] });
        const err = await deep.result().then(() => null, (e: unknown) => e);
        expect(err).toBeInstanceOf(WorkflowFailedError);
        expect(applicationFailureOf(err)?.type).toBe('IntegrityFailure');
        // that verification opened an integrity-failure incident about the newer snapshot: it is terminated here, so it cannot interfere
        integrityIncident = `incident-integrity-failure-ckpt-${newer.ckpt.slice(0, 12).replace(/[^A-Za-z0-9._-]+/g, '_')}`;
        workflows.push(integrityIncident);
        await until('the integrity-failure incident', async () => ((await cl.workflow.getHandle(integrityIncident).describe().catch(() => undefined)) ? true : undefined), 60_000);
        await cl.workflow.getHandle(integrityIncident).terminate('test: the corruption is deliberate; only the node-lost incident is under test');
        expect((await cl.workflow.getHandle(integrityIncident).describe()).status.name).toBe('TERMINATED');

        // ---- node health watches the node (started through the CLI) and sees it alive ----
        const watch = await cli(['incident', 'watch-nodes', '--node', node, '--task-queue', taskQueue, '--json']);
        expect(watch.code, watch.stderr).toBe(0);
        workflows.push(healthId);
        expect(parseJson<Array<{ node: string; workflowId: string; started: boolean }>>(watch)).toEqual([{ node, workflowId: healthId, started: true }]);
        await until('the node alive', async () => ((await health()).state === 'alive' ? true : undefined));
        workflows.push(incidentId, `${incidentId}-recover-${node}`);
        const before = await cli(['incident', 'show', incidentId, '--json']);
        expect(before.code).not.toBe(0);
      } finally {
        process.kill(-started.pid, 'SIGCONT');
      }
      // the snapshots the recovery should use: the newer ones, except the corrupt checkpoint, whose previous verified snapshot is used
      const snapshots: Record<string, string> = { ...newer, ckpt: older.ckpt! };
      const backedUpStep = olderStep;

      // training goes on past the backup, then the node is destroyed
      await until('training past the backup', () => ((jobProgress(cfg, 'train').step ?? 0) >= newerStep + 20 ? true : undefined));
      process.kill(-started.pid, 'SIGKILL');
      await agent.kill('SIGKILL');
      rig.agent = undefined;
      const killedAt = Date.now();
      await until('the trainer to die', () => (jobProgress(cfg, 'train').state === 'running' ? undefined : true));
      await rm(nodeRoot, { recursive: true, force: true });
      const stepAtFailure = jobProgress(cfg, 'train').step!;
      expect(stepAtFailure).toBeGreaterThanOrEqual(newerStep + 20);

      // ---- the loss is detected: a node-lost incident opens, holds the node's snapshots and waits for approval ----
      const statuses: IncidentStatus[] = [];
      const show = async (): Promise<IncidentView> => {
        const r = await cli(['incident', 'show', incidentId, '--json']);
        expect(r.code, r.stderr).toBe(0);
        const v = parseJson<IncidentView>(r);
        if (statuses[statuses.length - 1] !== v.status) statuses.push(v.status);
        return v;
      };
      const waiting = await until('the incident awaiting approval', async () => {
        const d = await cl.workflow.getHandle(incidentId).describe().catch(() => undefined);
        if (!d) return undefined;
        const v = await show();
        return v.status === 'awaiting-approval' ? v : undefined;
      }, 180_000);
      const detectedAfterMs = Date.now() - killedAt;
      expect(detectedAfterMs).toBeGreaterThanOrEqual((LOST_AFTER_S - 2) * 1000);
      expect((await health()).state).toBe('lost');
      expect(waiting).toMatchObject({ type: 'node-lost', severity: 'high', nodes: [node], steps: { 'rebuild-node': 'awaiting-approval' }, recoveries: [], summary: null });
      expect([...waiting.assets].sort()).toEqual([...ASSETS].sort());
      expect(waiting.timeline[0]).toMatchObject({ actor: healthId, action: 'opened' });
      expect(Object.fromEntries(waiting.contained.map((x) => [x.asset, x.restorePoint?.snapshot]))).toEqual(snapshots);
      const heldCount = waiting.contained.reduce((n, x) => n + x.held.length, 0);
      expect(heldCount).toBeGreaterThanOrEqual(ASSETS.length);
      const repo = () => new TenantRepositories(cfg).repository(env!.tenant);
      expect((await listHolds(await repo())).filter((h) => h.id === incidentMarkId(incidentId)).map((h) => h.snapshotId).sort()).toEqual(
        waiting.contained.flatMap((x) => x.held).sort(),
      );
      // nothing is rebuilt before the approval
      expect(existsSync(nodeRoot)).toBe(false);
      expect((await new LocalNodeProvider(cfg).isAgentUp(node)).up).toBe(false);

      // ---- approved through the CLI ----
      statuses.splice(0, statuses.length, 'awaiting-approval');
      const approve = await cli(['incident', 'approve', incidentId, '--step', 'rebuild-node', '--actor', 'oncall-alice', '--reason', 'node is gone, rebuild it', '--json']);
      expect(approve.code, approve.stderr).toBe(0);
      const approved = parseJson<IncidentView>(approve);
      expect(approved.steps['rebuild-node']).toBe('approved');
      expect(approved.decisions['rebuild-node']).toMatchObject({ decision: 'approved', actor: 'oncall-alice', reason: 'node is gone, rebuild it' });

      // ---- it recovers (observed through the CLI) and resolves ----
      const done = await until('the incident closed', async () => {
        const v = await show();
        return v.closedAt ? v : undefined;
      }, 600_000);
      expect(statuses).toEqual(['awaiting-approval', 'recovering', 'resolved']);
      expect(done.status).toBe('resolved');
      expect(done.steps).toEqual({ 'rebuild-node': 'done' });
      const childId = `${incidentId}-recover-${node}`;
      expect(done.recoveries).toEqual([{ node, workflowId: childId, outcome: 'recovered', detail: expect.stringMatching(/^4 asset\(s\) restored in \d+s$/) }]);
      const actions = done.timeline.map((e) => e.action);
      const order = ['opened', 'planned', 'hold-placed', 'restore-point', 'awaiting-approval:rebuild-node', 'approved:rebuild-node', `recovery-started:${node}`, `recovered:${node}`, 'holds-released', 'closed:resolved'];
      expect(order.map((a) => actions.indexOf(a))).toEqual([...order.map((a) => actions.indexOf(a))].sort((a, b) => a - b));
      expect(order.every((a) => actions.includes(a))).toBe(true);

      // the child recovery: a completed RecoverNodeWorkflow of the incident, from the last verified snapshots
      const child = cl.workflow.getHandle(childId);
      const described = await child.describe();
      expect(described.type).toBe('recoverNodeWorkflow');
      expect(described.parentExecution?.workflowId).toBe(incidentId);
      expect(described.status.name).toBe('COMPLETED');
      const result = (await child.result()) as RecoverNodeResult;
      expect(result.assets.map((a) => [a.asset, a.source, a.verified, a.snapshotId])).toEqual([
        ['platform', 'last-verified', true, snapshots.platform],
        ['spiral', 'last-verified', true, snapshots.spiral],
        ['weights', 'last-verified', true, snapshots.weights],
        ['ckpt', 'last-verified', true, snapshots.ckpt],
      ]);
      expect(result.jobs[0]).toMatchObject({ job: 'train', checkpointAsset: 'ckpt', restoredStep: olderStep, stepAtFailure, rpoSteps: stepAtFailure - olderStep });
      // the larger RPO in steps: from the newer checkpoint it would have been stepAtFailure - newerStep
      expect(result.jobs[0]!.rpoSteps!).toBeGreaterThan(stepAtFailure - newerStep);
      expect(result.assets.find((a) => a.asset === 'ckpt')!.snapshotId).not.toBe(newer.ckpt);
      expect(JSON.parse(await readFile(join(nodeRoot, 'etc', 'platform.json'), 'utf8'))).toEqual({ scheduler: 'local', gpus: 0 });
      expect(await readFile(join(nodeRoot, 'model', 'README.txt'), 'utf8')).toBe('spiral MLP 2-32-32-3\n');

      // ---- the summary: restore points, what was restored, the data-loss window and the time to recover; holds released ----
      const s = done.summary!;
      expect(s.outcome).toBe('resolved');
      expect(s.what).toContain(`node-lost of node ${node}`);
      expect(s.what).toContain('resolved (recover-node)');
      expect(Object.fromEntries(s.restorePoints.map((r) => [r.asset, r.snapshot]))).toEqual(snapshots);
      expect(Object.fromEntries(s.restored.map((r) => [r.asset, r.snapshot]))).toEqual(snapshots);
      const input = { node: result.node, failedAt: result.failedAt };
      expect(input.node).toBe(node);
      // the failure time is the last answered probe: before the kill, after the backup
      expect(Date.parse(input.failedAt)).toBeLessThanOrEqual(killedAt);
      const failedAtMs = Date.parse(input.failedAt);
      expect(failedAtMs).toBeGreaterThan(newerAt);
      // the checkpoint's restore point is the older snapshot, taken at the first pause; the others are the newer ones
      const points = Object.fromEntries(s.restorePoints.map((r) => [r.asset, Date.parse(r.time!)]));
      expect(points.ckpt).toBeGreaterThanOrEqual(olderBefore - 1000);
      expect(points.ckpt).toBeLessThanOrEqual(olderAt);
      for (const asset of ASSETS.filter((a) => a !== 'ckpt')) {
        expect(points[asset]).toBeGreaterThanOrEqual(newerBefore - 1000);
        expect(points[asset]).toBeLessThanOrEqual(newerAt);
      }
      // the window from the older checkpoint, and the smaller one the newer checkpoint would have given
      const olderWindow = Math.round((failedAtMs - points.ckpt!) / 1000);
      const newerWindowAtMost = (failedAtMs - newerBefore + 1000) / 1000;
      expect(s.dataLossWindowSeconds).toBe(olderWindow);
      expect(s.dataLossWindowSeconds!).toBeGreaterThan(newerWindowAtMost);
      expect(s.dataLossWindowSeconds!).toBeGreaterThanOrEqual(Math.round((failedAtMs - olderAt) / 1000));
      expect(s.timeToRecoverSeconds).toBe(Math.round((Date.parse(done.closedAt!) - Date.parse(done.openedAt)) / 1000));
      expect(s.timeToRecoverSeconds!).toBeGreaterThan(0);
      expect(s.holdsReleased).toBe(heldCount);
      expect((await listHolds(await repo())).filter((h) => h.id === incidentMarkId(incidentId))).toEqual([]);
      const text = await cli(['incident', 'show', incidentId]);
      expect(text.code, text.stderr).toBe(0);
      for (const asset of ASSETS) expect(text.stdout).toContain(`restored ${asset} from ${snapshots[asset]!.slice(0, 12)}`);
      expect(text.stdout).toContain(`data-loss window: ${s.dataLossWindowSeconds} s; time to recover: ${s.timeToRecoverSeconds} s; holds released: ${heldCount}`);

      // ---- training resumed from the last verified step and ends with the uninterrupted run's weights ----
      const end = await until('the resumed run to finish', () => {
        const p = jobProgress(cfg, 'train');
        return p.state === 'running' ? undefined : p;
      }, 300_000);
      expect(end).toMatchObject({ state: 'done', startStep: backedUpStep, step: STEPS });
      expect(end.weightsSha256).toBe(referenceHash);
      expect((await new LocalNodeProvider(cfg).isAgentUp(node)).up).toBe(true);
      // the integrity-failure incident stayed out of it
      expect((await cl.workflow.getHandle(integrityIncident).describe()).status.name).toBe('TERMINATED');
      // no processes left once the rebuilt node's agent is stopped
      await new LocalNodeProvider(cfg).stopAgent(node);
      const left = await until('no processes of the node', () => {
        const p = processesOf(node, nodeRoot);
        return p.length === 0 ? p : undefined;
      }, 30_000);
      expect(left).toEqual([]);
      console.log(`incident corrupt-checkpoint e2e: steps a=${olderStep} b=${newerStep} failure=${stepAtFailure}; detected after ${detectedAfterMs} ms; RPO ${s.dataLossWindowSeconds} s (${stepAtFailure - olderStep} steps; newer checkpoint would have been <= ${newerWindowAtMost.toFixed(1)} s, ${stepAtFailure - newerStep} steps); time to recover ${s.timeToRecoverSeconds} s`);
    } finally {
      for (const id of workflows) await rig?.client.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined);
      await tearDownNode({ env, rig, base });
    }
  }, 1_200_000);
});
