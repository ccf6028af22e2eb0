/**
 * Drills of the stored-object faults, end to end on the real Temporal and
 * MinIO: detection is Lifeline's own — the asset's deep-verify schedule (every
 * 5 s here) finds the damaged pack, the snapshot is marked corrupt and an
 * integrity-failure incident opens; ChaosDrillWorkflow follows it (approves its
 * restore step as drill:<id>) until it is resolved, measures RTO to that point,
 * reverts the fault (bytes back, SHA-256 = the pack's name) and checks that
 * backups continue. A cancelled drill reverts too.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import type { DrillSummary } from '../../activities/drill';
import { loadConfig } from '../../config/load';
import { readDrillReport } from '../../drills/report-files';
import { parseScenario } from '../../drills/scenario';
import { nodeHealthId } from '../../incidents/watch';
import { createBufferLogger } from '../../logging/logger';
import { scheduleId } from '../../schedules/desired';
import { applySchedules } from '../../schedules/temporal';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { DrillProgress } from '../../workflows/drill';
import { connect, makeEnv, removeEnv, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { storedSha256 } from '../support/faults';
import { uniqueTaskQueue } from '../support/services';
import { until } from '../support/until';

const MiB = 1024 ** 2;
const ASSET = 'objdrillmodel';
let env: LifelineEnv;
let client: Client;
let connection: Connection | undefined;
const workers: RunningWorker[] = [];
let drillWorker: LifelineWorker | undefined;
let drillDone: Promise<void> | undefined;
const drillQueue = uniqueTaskQueue('drill-object');
const cleanup: string[] = [];

const stored = (key: string) => storedSha256(env, key);

/** a fresh newest snapshot with packs of its own, and a verification of all (the drill's precondition) */
async function newSnapshot(file: string): Promise<string> {
  await writeRandomFile(join(env.assetPath(ASSET), file), 1 * MiB);
  const r = (await client.workflow.execute('backupWorkflow', { taskQueue: env.taskQueue, workflowId: `test-objdrill-backup-${Date.now()}`, args: [{ asset: ASSET, trigger: 'manual' }] })) as { snapshotId: string };
  await client.workflow.execute('verifyWorkflow', { taskQueue: env.taskQueue, workflowId: `test-objdrill-verify-${Date.now()}`, args: [{ asset: ASSET, snapshot: r.snapshotId }] });
  return r.snapshotId;
}

const scenario = (name: string, kind: 'corrupt-object' | 'delete-object', timeout = '6m') =>
  parseScenario(
    stringify({ name, environment: 'staging', node: env.node, faults: [{ kind, target: { asset: ASSET, snapshot: 'newest', object: 'pack' } }], objectives: { rto: '5m', expect: ['incident-opened', 'restored-from-verified', 'backups-continue'] }, timeout }),
    `${name}.yaml`,
  );

beforeAll(async () => {
  env = await makeEnv('drill-object-drills', {
    assets: { [ASSET]: { kind: 'model', policy: 'deep' } },
    policies: { deep: { verify: { deep: { every: '5s', samplePercent: 100 } }, overlap: 'skip' } },
  });
  const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
  raw.incident = { environment: 'staging', approvalTimeout: '1h', nodeProbeEvery: '2s', nodeLostAfter: '1h' };
  await writeFile(env.configFile, stringify(raw), { mode: 0o600 });
  env = { ...env, config: loadConfig({ configPath: env.configFile, env: {} }) };
  ({ client, connection } = await connect(env));
  workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));
  drillWorker = await createLifelineWorker({ config: env.config, role: 'drill', taskQueue: drillQueue, logger: createBufferLogger({ level: 'info' }).logger });
  drillDone = drillWorker.run();
  drillDone.catch(() => undefined);
  await newSnapshot('a.bin');
  // the deep verification runs on its schedule from now on: it is the detector
  await applySchedules(client, env.config, { taskQueue: env.taskQueue });
}, 600_000);

afterAll(async () => {
  await client?.schedule.getHandle(scheduleId(ASSET, 'verify-deep')).delete().catch(() => undefined);
  for (const id of [...cleanup, nodeHealthId(env?.node)]) await client?.workflow.getHandle(id).terminate('test cleanup').catch(() => undefined);
  drillWorker?.worker.shutdown();
  await drillDone?.catch(() => undefined);
  for (const w of workers) await w.stop();
  await connection?.close();
  await removeEnv(env);
});

async function runDrill(kind: 'corrupt-object' | 'delete-object', file: string) {
  const snapshot = await newSnapshot(file);
  const handle = await client.workflow.start('chaosDrillWorkflow', { taskQueue: drillQueue, workflowId: `drill-${kind}-${Date.now()}`, args: [{ scenario: scenario(kind, kind), orchestratorTaskQueue: env.taskQueue }] });
  cleanup.push(handle.workflowId, `incident-integrity-failure-${ASSET}-${snapshot.slice(0, 12)}`);
  const summary = (await handle.result()) as DrillSummary;
  const { report } = await readDrillReport(env.config.devstack.dataDir, handle.workflowId);
  console.log(`[${kind}-drill] ${JSON.stringify({ verdict: summary.verdict, rto: summary.rtoSeconds, objectives: summary.objectives, timeline: report.timeline.map((e) => e.event), errors: summary.errors })}`);
  return { snapshot, summary, report };
}

describe('stored-object drills', () => {
  for (const [kind, file] of [['corrupt-object', 'b.bin'], ['delete-object', 'c.bin']] as const) {
    it(`${kind}: the verify schedule detects, the integrity incident is followed to resolved, the object is back byte for byte`, async () => {
      const { snapshot, summary, report } = await runDrill(kind, file);
      expect(summary).toMatchObject({ verdict: 'pass', aborted: false, faultsLeft: [] });
      expect(summary.objectives.map((o) => [o.name, o.pass])).toEqual([['rto', true], ['incident-opened', true], ['restored-from-verified', true], ['backups-continue', true]]);
      expect(report.timeline.map((e) => e.event)).toEqual(expect.arrayContaining(['fault-injected', 'detected', 'incident-opened', 'approved', 'fault-reverted']));
      const detected = report.timeline.find((e) => e.event === 'detected')!;
      expect(detected.detail).toMatch(/verification: .* snapshot found corrupt/);
      expect(Date.parse(detected.at)).toBeGreaterThanOrEqual(Date.parse(report.faults[0]!.injectedAt!) - 1000);
      expect(summary.rtoSeconds).toBeGreaterThan(0);
      // the restore point is the older verified snapshot, not the damaged one
      expect(report.restored.map((r) => r.snapshotId)).not.toContain(snapshot);
      // the object is back: its bytes hash to its name
      const fault = report.faults[0]!;
      expect(fault).toMatchObject({ kind, reverted: true, detail: { snapshot, object: 'pack' } });
      const key = String(fault.detail.key);
      expect(await stored(key)).toBe(key.split('/').pop());
    }, 600_000);
  }

  it('a corrupt-object drill cancelled while the fault is active reverts it and leaves nothing', async () => {
    await client.schedule.getHandle(scheduleId(ASSET, 'verify-deep')).pause('cancel test: nothing detects');
    const snapshot = await newSnapshot('d.bin');
    const handle = await client.workflow.start('chaosDrillWorkflow', { taskQueue: drillQueue, workflowId: `drill-cancel-${Date.now()}`, args: [{ scenario: scenario('cancelled', 'corrupt-object'), orchestratorTaskQueue: env.taskQueue }] });
    cleanup.push(handle.workflowId);
    await until('the fault injected', async () => ((await handle.query<DrillProgress>('progress').catch(() => undefined))?.faults[0]?.state === 'injected' ? true : undefined), 120_000);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    const { report } = await readDrillReport(env.config.devstack.dataDir, handle.workflowId);
    expect(report).toMatchObject({ aborted: true, verdict: 'fail' });
    expect(report.errors).toContain('drill cancelled by an operator');
    const fault = report.faults[0]!;
    expect(fault).toMatchObject({ reverted: true, detail: { snapshot } });
    const key = String(fault.detail.key);
    expect(await stored(key)).toBe(key.split('/').pop());
  }, 600_000);
});
