/**
 * Schedules from config against the real Temporal dev server and MinIO:
 * `schedules apply` creates one schedule per asset × action; they run a backup
 * (the real BackupWorkflow on a node agent) and a verification on their own;
 * applying again changes nothing; after a config change it updates the changed
 * schedule in place and deletes the one whose policy entry was removed; pause,
 * resume and trigger work by id or asset, from the CLI too.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, Connection, ScheduleNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../devstack/process';
import { listVerifications } from '../../engine/verification';
import { createBufferLogger } from '../../logging/logger';
import { scheduleId } from '../../schedules/desired';
import { applySchedules, listSchedules } from '../../schedules/temporal';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import { parseJson, runCli } from '../support/cli';
import { testConfig } from '../support/config';
import { createTestBucket, testServices, uniqueTaskQueue } from '../support/services';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';

const asset = `sched-${suffix()}`;
const gone = `gone-${suffix()}`; // removed from the config altogether later
const ids = {
  backup: scheduleId(asset, 'backup'),
  shallow: scheduleId(asset, 'verify-shallow'),
  retention: scheduleId(asset, 'retention'),
  gone: scheduleId(gone, 'retention'),
};
const retentionOffset = (Math.floor(Date.now() / 1000) + 1800) % 3600;
let p: TestPlatform;
const workers: LifelineWorker[] = [];
const running: Array<Promise<void>> = [];
let connection: Connection;
let client: Client;
let taskQueue: string;

beforeAll(async () => {
  p = await createTestPlatform({
    label: 'schedules',
    assets: { [asset]: { policy: 'often' }, [gone]: { policy: 'rarely' } },
    policies: {
      rarely: { retention: { schedule: { cron: '0 3 * * *' } } },
      often: {
        backup: { every: '10s' },
        verify: { shallow: { every: '10s', offset: '5s' } },
        // Hourly, offset so that the next run is half an hour away: the test sees it never run on its own.
        retention: { keepLast: 100, schedule: { every: '1h', offset: `${retentionOffset}s` } },
        overlap: 'skip',
        catchupWindow: '1m',
      },
    },
  });
  await writeFile(join(p.assetPath(asset), 'weights.bin'), randomBytes(200_000));
  taskQueue = uniqueTaskQueue('schedules');
  const { logger } = createBufferLogger({ level: 'warn' });
  workers.push(await createLifelineWorker({ config: p.config, role: 'orchestrator', logger, taskQueue }));
  workers.push(await createLifelineWorker({ config: p.config, role: 'node-agent', nodeId: p.node, logger }));
  for (const w of workers) running.push(w.run());
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
});

afterAll(async () => {
  // Schedules outlive workers: delete them so nothing fires into a stopped test.
  for (const id of Object.values(ids)) await client?.schedule.getHandle(id).delete().catch(() => {});
  for (const w of workers) w.worker.shutdown();
  await Promise.allSettled(running);
  await connection?.close();
  await p?.cleanup();
});

const cli = (args: string[]) => runCli(['--config', p.configFile, ...args], { env: p.cliEnv });

// Loaded 2-core machines (other suites running alongside): generous per-test timeouts.
describe('schedules', () => {
  it('apply creates one schedule per action; they back up and verify on their own', async () => {
    const report = await applySchedules(client, p.config, { taskQueue });
    expect(report).toEqual({ created: [ids.gone, ids.backup, ids.retention, ids.shallow], updated: [], unchanged: [], deleted: [] });

    // Wait (generously: a loaded 2-core machine) until a scheduled backup made a snapshot
    // and a scheduled shallow verification recorded a result for it.
    await waitFor(
      'a scheduled backup and a scheduled verification',
      async () => {
        const repo = await p.repository();
        const snaps = await repo.listSnapshots({ asset });
        if (snaps.length === 0) return false;
        const records = await listVerifications(repo);
        return records.some((r) => r.body.asset === asset && r.body.mode === 'shallow' && r.body.result === 'passed' && r.body.by?.startsWith(`${ids.shallow}-`));
      },
      { timeoutMs: 240_000, intervalMs: 2000 },
    );
    const list = await listSchedules(client, p.config, { taskQueue });
    expect(list.map((s) => s.id)).toEqual([ids.gone, ids.backup, ids.retention, ids.shallow]);
    const byId = Object.fromEntries(list.map((s) => [s.id, s]));
    expect(byId[ids.backup]).toMatchObject({ asset, action: 'backup', spec: 'every 10s', workflowType: 'backupWorkflow', paused: false, inSync: true });
    expect(byId[ids.backup]!.runsTaken).toBeGreaterThanOrEqual(1);
    expect(byId[ids.shallow]!.lastRun).not.toBeNull();
    expect(byId[ids.retention]).toMatchObject({ spec: `every 1h offset ${retentionOffset}s`, lastRun: null, runsTaken: 0 });
    expect(byId[ids.retention]!.nextRun! > new Date(Date.now() + 10 * 60_000).toISOString()).toBe(true);
    expect(byId[ids.gone]).toMatchObject({ asset: gone, action: 'retention', spec: 'cron 0 3 * * *', workflowType: 'retentionWorkflow' });
  }, 300_000);

  it('apply again changes nothing; after a config change it updates in place and deletes the removed action', async () => {
    expect(await applySchedules(client, p.config, { taskQueue })).toEqual({ created: [], updated: [], unchanged: [ids.gone, ids.backup, ids.retention, ids.shallow], deleted: [] });

    const before = await client.schedule.getHandle(ids.backup).describe();
    p.platform.policies.often.backup = { every: '1h' };
    delete p.platform.policies.often.verify.shallow;
    // An asset removed from the config altogether is found through Temporal's schedule list.
    delete p.platform.assets[gone];
    delete p.platform.policies.rarely;
    const config = await p.rewrite();
    const applied = await applySchedules(client, config, { taskQueue });
    expect(applied).toEqual({ created: [], updated: [ids.backup], unchanged: [ids.retention], deleted: [ids.shallow, ids.gone].sort() });

    // Exactly the expected schedules, the backup one updated in place (same schedule, history kept).
    const list = await listSchedules(client, config, { taskQueue });
    expect(list.map((s) => s.id)).toEqual([ids.backup, ids.retention]);
    expect(list.every((s) => s.inSync)).toBe(true);
    const after = await client.schedule.getHandle(ids.backup).describe();
    expect(after.info.createdAt).toEqual(before.info.createdAt);
    expect(after.info.numActionsTaken).toBeGreaterThanOrEqual(before.info.numActionsTaken);
    expect(after.spec.intervals?.map((i) => i.every)).toEqual([3_600_000]);
    const [t0, t1] = after.info.nextActionTimes;
    expect(t1!.getTime() - t0!.getTime()).toBe(3_600_000);
    await expect(client.schedule.getHandle(ids.shallow).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);
    await expect(client.schedule.getHandle(ids.gone).describe()).rejects.toBeInstanceOf(ScheduleNotFoundError);

    // Another installation (other storage) with the same asset name must not take these over.
    const other = testConfig({ bucket: await createTestBucket('schedules-other'), extra: { ...p.platform } as never });
    await expect(applySchedules(client, other, { taskQueue })).rejects.toThrow(/belongs to another Lifeline installation/);
  }, 300_000);

  it('the CLI lists, pauses, resumes and triggers', async () => {
    const list = await cli(['schedules', 'list', '--json', '--task-queue', taskQueue]);
    expect(list.code, list.stderr).toBe(0);
    expect(parseJson<Array<{ id: string; paused: boolean }>>(list).map((s) => [s.id, s.paused])).toEqual([
      [ids.backup, false],
      [ids.retention, false],
    ]);

    const pause = await cli(['schedules', 'pause', asset, '--note', 'maintenance']);
    expect(pause.code, pause.stderr).toBe(0);
    expect(pause.stdout.trim().split('\n')).toEqual([`paused ${ids.backup}`, `paused ${ids.retention}`]);
    const paused = await client.schedule.getHandle(ids.retention).describe();
    expect(paused.state).toMatchObject({ paused: true, note: 'maintenance' });
    // apply keeps a paused schedule paused
    expect((await applySchedules(client, p.config, { taskQueue })).unchanged).toEqual([ids.backup, ids.retention]);

    const table = await cli(['schedules', 'list', '--task-queue', taskQueue]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${ids.retention} +retention +every 1h offset ${retentionOffset}s +— +never ran +yes`));

    const resume = await cli(['schedules', 'resume', ids.retention]);
    expect(resume.code, resume.stderr).toBe(0);
    expect((await client.schedule.getHandle(ids.retention).describe()).state.paused).toBe(false);
    expect((await client.schedule.getHandle(ids.backup).describe()).state.paused).toBe(true);

    const trigger = await cli(['schedules', 'trigger', ids.retention]);
    expect(trigger.code, trigger.stderr).toBe(0);
    await waitFor(
      'the triggered retention run to complete',
      async () => {
        const [s] = (await listSchedules(client, p.config, { taskQueue })).filter((x) => x.id === ids.retention);
        return s?.lastRun?.status === 'COMPLETED';
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );

    const bad = await cli(['schedules', 'trigger', 'nightly']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^lifeline: "nightly" is not a schedule id/)]);
    const unknown = await cli(['schedules', 'pause', 'no-such-asset']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/neither a schedule id .* nor a configured asset/);
  }, 300_000);
});
