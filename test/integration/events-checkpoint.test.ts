/**
 * Checkpoint events: over HTTP (`POST /events`) and the CLI (`lifeline event
 * checkpoint`) they signal-with-start the asset's coordinator; a burst of
 * events during a running backup yields exactly one more backup; malformed
 * events are rejected with the field and the problem and start nothing.
 */
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { WorkflowNotFoundError, type Client, type Connection } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventServer } from '../../events/http';
import { createBufferLogger } from '../../logging/logger';
import { TenantRepositories } from '../../tenancy/repositories';
import { WORKFLOWS_PATH } from '../../workers/worker';
import { checkpointCoordinatorId, checkpointStateQuery, type CheckpointCoordinatorResult } from '../../workflows/checkpoint';
import { PROGRESS_QUERY, type Progress } from '../../workflows/progress';
import { parseJson, runCli } from '../support/cli';
import { connect, makeEnv, removeEnv, startWorker, writeRandomFile, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { uniqueTaskQueue } from '../support/services';

let env: LifelineEnv;
let orchestrator: RunningWorker;
let agent: RunningWorker;
let client: Client;
let connection: Connection;
let server: Server;
let base: string;

beforeAll(async () => {
  env = await makeEnv('events', {
    assets: {
      ck: { checkpoint: { completion: 'marker', marker: 'COMPLETE' } },
      other: { checkpoint: { completion: 'event' } },
    },
  });
  ({ client, connection } = await connect(env));
  orchestrator = await startWorker(env, 'orchestrator');
  agent = await startWorker(env, 'node-agent');
  server = createEventServer({
    client,
    config: env.config,
    taskQueue: env.taskQueue,
    logger: createBufferLogger({ level: 'warn' }).logger,
    backupOptions: { heartbeatTimeoutSeconds: 20, progressSignalMs: 200, checkpointPollSeconds: 0.3 },
    idleSeconds: 3,
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 300_000);

afterAll(async () => {
  await new Promise((r) => server?.close(r));
  await agent?.stop();
  await orchestrator?.stop();
  await connection?.close();
  await removeEnv(env);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function post(body: unknown, raw = false): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw ? (body as string) : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

async function coordinatorExists(asset: string): Promise<boolean> {
  try {
    await client.workflow.getHandle(checkpointCoordinatorId(asset)).describe();
    return true;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

describe('checkpoint events', () => {
  it('a burst of 5 events during a running backup yields exactly one more backup', async () => {
    const root = env.assetPath('ck');
    await writeRandomFile(join(root, 'weights.bin'), 4 * 1024 * 1024);
    const ev = (step: number) => ({ type: 'checkpoint', node: env.node, path: join(root, 'weights.bin'), step });

    const first = await post(ev(100));
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ accepted: true, type: 'checkpoint', asset: 'ck', step: '100', workflowId: 'checkpoint-backup-ck' });

    // The first backup is running: it waits for the marker (the checkpoint is not complete yet).
    const coordinator = client.workflow.getHandle(first.body.workflowId);
    let current: string | undefined;
    for (let i = 0; ; i++) {
      const s = await coordinator.query(checkpointStateQuery).catch(() => undefined);
      if (s?.running && s.current) {
        const p = await client.workflow.getHandle(s.current).query<Progress>(PROGRESS_QUERY).catch(() => undefined);
        if (p?.phase === 'waiting-for-checkpoint') {
          current = s.current;
          break;
        }
      }
      if (i > 600) throw new Error('the first backup never started waiting for the marker');
      await sleep(100);
    }

    for (let step = 101; step <= 105; step++) expect((await post(ev(step))).status).toBe(202);
    const queued = await coordinator.query(checkpointStateQuery);
    expect(queued).toMatchObject({ running: true, current, runs: 0, pending: { events: 5, step: '105' } });

    await writeFile(join(root, 'COMPLETE'), 'done\n');
    const result = (await coordinator.result()) as CheckpointCoordinatorResult;
    expect(result).toMatchObject({ asset: 'ck', runs: 2, failures: 0 });

    // Two backups, two snapshots: the event's step, then the newest step of the burst.
    const history = await coordinator.fetchHistory();
    const children = (history.events ?? []).filter((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
    expect(children.length).toBe(2);
    // The coordinator's history (6 signals, 2 children) replays deterministically.
    await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, history, first.body.workflowId);
    const repo = await new TenantRepositories(env.config).repository(env.tenant);
    const snaps = await repo.listSnapshots({ asset: 'ck' });
    expect(snaps.map((s) => s.labels.step)).toEqual(['100', '105']);
    expect(snaps.every((s) => s.labels.trigger === 'event')).toBe(true);
  });

  describe('malformed events are rejected and start nothing', () => {
    it('over HTTP: 400 with the field and the problem', async () => {
      const root = env.assetPath('other');
      const cases: Array<{ body: unknown; raw?: boolean; field: string; problem: RegExp }> = [
        { body: '{"type": "checkpoint", "node": ', raw: true, field: '', problem: /not valid JSON/ },
        { body: [1, 2], field: '', problem: /expected a JSON object/ },
        { body: { node: env.node, path: root, step: 1 }, field: 'type', problem: /required/ },
        { body: { type: 'explosion', node: env.node }, field: 'type', problem: /unknown event type "explosion" \(known: checkpoint\b/ },
        { body: { type: 'checkpoint', path: root, step: 1, asset: 'other' }, field: 'node', problem: /required: a node name/ },
        { body: { type: 'checkpoint', node: env.node, path: 'ckpt/step-1', step: 1, asset: 'other' }, field: 'path', problem: /absolute path/ },
        { body: { type: 'checkpoint', node: env.node, path: root, step: -3, asset: 'other' }, field: 'step', problem: /training step/ },
        { body: { type: 'checkpoint', node: env.node, path: root, step: 'step 7', asset: 'other' }, field: 'step', problem: /training step/ },
        { body: { type: 'checkpoint', node: env.node, path: root, step: 1, asset: 'other', priority: 'high' }, field: 'priority', problem: /unknown field/ },
        { body: { type: 'checkpoint', node: 'no-such-node', path: root, step: 1 }, field: 'node', problem: /unknown node "no-such-node"/ },
        { body: { type: 'checkpoint', node: env.node, path: root, step: 1, asset: 'nope' }, field: 'asset', problem: /unknown asset "nope"/ },
        { body: { type: 'checkpoint', node: env.node, path: '/somewhere/else', step: 1 }, field: 'path', problem: /no asset on node/ },
      ];
      for (const c of cases) {
        const r = await post(c.body, c.raw);
        expect(r.status, JSON.stringify(c.body)).toBe(400);
        if (c.field) {
          const issue = (r.body.issues as Array<{ field: string; problem: string }>).find((i) => i.field === c.field);
          expect(issue, `${JSON.stringify(c.body)} → ${JSON.stringify(r.body)}`).toBeDefined();
          expect(issue!.problem).toMatch(c.problem);
        } else {
          expect(r.body.error).toMatch(c.problem);
        }
      }
      expect(await coordinatorExists('other')).toBe(false);
      // Only POST /events accepts events.
      expect((await fetch(`${base}/events`)).status).toBe(405);
    });

    it('over the CLI: one clear line, exit code ≠ 0; a valid event is accepted (control)', async () => {
      const root = env.assetPath('other');
      const cli = (args: string[]) => runCli(['--config', env.configFile, 'event', 'checkpoint', ...args], { timeoutMs: 120_000 });
      const bad = [
        { args: ['--node', env.node, '--path', root, '--step=-3', '--asset', 'other'], says: /^lifeline: invalid event: step: expected the training step/ },
        { args: ['--node', env.node, '--path', root, '--step', '7', '--asset', 'nope'], says: /^lifeline: invalid event: asset: unknown asset "nope"/ },
        { args: ['--node', env.node, '--path', '/somewhere/else', '--step', '7'], says: /^lifeline: invalid event: path: no asset on node/ },
        { args: ['--node', env.node, '--path', root], says: /required option '--step <step>' not specified/ },
      ];
      for (const b of bad) {
        const r = await cli(b.args);
        expect(r.code, r.stderr).not.toBe(0);
        expect(r.stderr.trim().split('\n')[0]).toMatch(b.says);
        expect(r.stdout).toBe('');
      }
      expect(await coordinatorExists('other')).toBe(false);

      // Control: the same command with a valid event starts the coordinator (on a queue no worker polls).
      const ok = await cli(['--node', env.node, '--path', root, '--step', '7', '--json', '--task-queue', uniqueTaskQueue('events-cli')]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(parseJson(ok)).toMatchObject({ accepted: true, asset: 'other', step: '7', workflowId: 'checkpoint-backup-other' });
      expect(await coordinatorExists('other')).toBe(true);
      await client.workflow.getHandle('checkpoint-backup-other').terminate('test done');
    });
  });
});
