/**
 * The incident-response acceptance scenario, end to end on the test Temporal
 * dev server and MinIO: the fixture trainer runs on a local node whose
 * platform config, model, data set and checkpoints are backed up and
 * verified; the node is destroyed (trainer SIGKILLed, node agent SIGKILLed,
 * node folder wiped); NodeHealthWorkflow (started with `lifeline incident
 * watch-nodes`) notices the silent agent and opens a node-lost incident, which
 * holds the node's snapshots and waits for approval; `lifeline incident
 * approve … --step rebuild-node` approves it; the incident's child
 * RecoverNodeWorkflow rebuilds the node, restores and verifies every asset
 * from its last verified snapshot and resumes training, which ends with the
 * weights of an uninterrupted run. The closing summary names the restore
 * points, the data-loss window (RPO) and the time to recover, and the holds
 * are released.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { incidentMarkId } from '../../activities/incident';
import { nodeHealthId } from '../../cli/incident';
import { listHolds } from '../../engine/verification';
import type { IncidentStatus } from '../../incidents/model';
import { LocalNodeProvider } from '../../nodes/local';
import { jobProgress, startTrainingJob } from '../../training/jobs';
import { TenantRepositories } from '../../tenancy/repositories';
import type { IncidentView } from '../../workflows/incident';
import type { NodeHealthView } from '../../workflows/node-health';
import type { RecoverNodeResult } from '../../workflows/recover-node';
import { parseJson, runCli } from '../support/cli';
import type { LifelineEnv } from '../support/lifeline-env';
import { makeTrainingNodeEnv, referenceWeights, startNodeRig, tearDownNode, TRAINING_ASSETS as ASSETS, type NodeRig, type TrainerOptions } from '../support/training-node';
import { until } from '../support/until';

const STEPS = 200;
const TRAINER: TrainerOptions = { steps: STEPS, checkpointEvery: 40, stepDelayMs: 25 };
const LOST_AFTER_S = 8;

describe('incident response: node lost, end to end', () => {
  it('a destroyed node is detected, the incident waits for approval through the CLI, the node is rebuilt and training ends with the uninterrupted weights', async () => {
    const base = await mkdtemp(join(tmpdir(), 'lifeline-incident-e2e-'));
    const nodeRoot = join(base, 'node');
    let env: LifelineEnv | undefined;
    let rig: NodeRig | undefined;
    const workflows: string[] = [];
    try {
      // ---- a node with a platform config, a model, a data set and checkpoints; a training job; incidents recover nodes ----
      env = await makeTrainingNodeEnv('incident-e2e', nodeRoot, {
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

      // ---- the job runs; at checkpoint 80 it is paused while every asset is backed up and verified ----
      const started = await startTrainingJob(cfg, 'train', { runId: 'original' });
      await until('checkpoint 80', () => ((jobProgress(cfg, 'train').checkpointStep ?? 0) >= 80 ? true : undefined));
      process.kill(-started.pid, 'SIGSTOP');
      const backedUpStep = jobProgress(cfg, 'train').checkpointStep!;
      const snapshots: Record<string, string> = {};
      const healthId = nodeHealthId(node);
      const health = () => cl.workflow.getHandle(healthId).query('health') as Promise<NodeHealthView>;
      const incidentId = `incident-node-lost-${node}`;
      let backedUpAt = 0;
      try {
        for (const asset of ASSETS) {
          const b = (await cl.workflow.execute('backupWorkflow', { taskQueue, workflowId: `test-e2e-backup-${asset}-${Date.now()}`, args: [{ asset, trigger: 'manual' }] })) as { snapshotId: string };
          snapshots[asset] = b.snapshotId;
          const v = (await cl.workflow.execute('verifyWorkflow', { taskQueue, workflowId: `test-e2e-verify-${asset}-${Date.now()}`, args: [{ asset }] })) as { verified: number };
          expect(v.verified).toBeGreaterThanOrEqual(1);
        }
        backedUpAt = Date.now();

        // ---- node health watches the node (started through the CLI) and sees it alive ----
        const watch = await cli(['incident', 'watch-nodes', '--node', node, '--task-queue', taskQueue, '--json']);
        expect(watch.code, watch.stderr).toBe(0);
        workflows.push(healthId);
        expect(parseJson<Array<{ node: string; workflowId: string; started: boolean }>>(watch)).toEqual([{ node, workflowId: healthId, started: true }]);
        await until('the node alive', async () => ((await health()).state === 'alive' ? true : undefined));
        workflows.push(incidentId, `${incidentId}-recover-${node}`);
        const before = await cli(['incident', 'show', incidentId, '--json']);
        expect(before.code).not.toBe(0);
        // some time passes after the backup (the data-loss window to come)
        await until('3 s after the backup', () => (Date.now() - backedUpAt >= 3000 ? true : undefined));
      } finally {
        process.kill(-started.pid, 'SIGCONT');
      }

      // training goes on past the backup, then the node is destroyed
      await until('training past the backup', () => ((jobProgress(cfg, 'train').step ?? 0) >= backedUpStep + 20 ? true : undefined));
      process.kill(-started.pid, 'SIGKILL');
      await agent.kill('SIGKILL');
      rig.agent = undefined;
      const killedAt = Date.now();
      await until('the trainer to die', () => (jobProgress(cfg, 'train').state === 'running' ? undefined : true));
      await rm(nodeRoot, { recursive: true, force: true });
      const stepAtFailure = jobProgress(cfg, 'train').step!;
      expect(stepAtFailure).toBeGreaterThanOrEqual(backedUpStep + 20);

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
      expect(result.jobs[0]).toMatchObject({ job: 'train', checkpointAsset: 'ckpt', restoredStep: backedUpStep, stepAtFailure, rpoSteps: stepAtFailure - backedUpStep });
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
      expect(Date.parse(input.failedAt)).toBeGreaterThan(backedUpAt);
      const rpo = Math.round(Math.max(...s.restorePoints.map((r) => Date.parse(input.failedAt) - Date.parse(r.time!))) / 1000);
      expect(s.dataLossWindowSeconds).toBe(rpo);
      expect(s.dataLossWindowSeconds!).toBeGreaterThanOrEqual(2);
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
      console.log(`incident e2e: detected after ${detectedAfterMs} ms; RPO ${s.dataLossWindowSeconds} s (${stepAtFailure - backedUpStep} steps); time to recover ${s.timeToRecoverSeconds} s`);
    } finally {
      for (const id of workflows) await rig?.client.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined);
      await tearDownNode({ env, rig, base });
    }
  }, 1_200_000);
});
