/**
 * Incident response against the real Temporal dev server and MinIO: events
 * over HTTP and the CLI open IncidentWorkflows that hold and quarantine
 * snapshots in the repository, notify a local webhook receiver, and wait for
 * approval through a validated Update — approved, rejected, or expired with an
 * escalation. A real deep verification that finds damage opens an incident too.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { applicationFailureOf } from '../../cli/runs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { incidentMarkId } from '../../activities/incident';
import { backup } from '../../engine/archiver';
import { lastVerifiedSnapshot, listHolds, listQuarantined } from '../../engine/verification';
import { createEventServer } from '../../events/http';
import type { IncidentNotice } from '../../incidents/model';
import { createBufferLogger } from '../../logging/logger';
import { tenantLocation } from '../../tenancy/repositories';
import { Worker } from '@temporalio/worker';
import { WORKFLOWS_PATH, createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import type { IncidentView } from '../../workflows/incident';
import { parseJson, runCli } from '../support/cli';
import { createTestPlatform, suffix, type TestPlatform } from '../support/platform';
import { testS3Client, testServices, uniqueTaskQueue } from '../support/services';

const asset = `llm-${suffix()}`;
const TOKEN_ENV = 'LIFELINE_TEST_HOOK_TOKEN';
const token = `Bearer hook-${randomBytes(12).toString('hex')}`;
// Long enough for a few CLI runs (each ~8 s on a loaded 2-core machine) between "awaiting approval" and the approval.
const APPROVAL_TIMEOUT_S = 40;

let p: TestPlatform;
let worker: LifelineWorker;
let running: Promise<void>;
let connection: Connection;
let client: Client;
let taskQueue: string;
let hookServer: Server;
let eventServer: Server;
let eventsUrl: string;
const received: Array<{ auth: string | undefined; raw: string; notice: IncidentNotice }> = [];
const started = new Set<string>();
/** closed incidents whose histories are replayed at the end */
const closed: string[] = [];
const log = createBufferLogger({ level: 'info' });

const listen = (s: Server) => new Promise<number>((ok) => s.listen(0, '127.0.0.1', () => ok((s.address() as AddressInfo).port)));

beforeAll(async () => {
  hookServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      received.push({ auth: req.headers.authorization, raw, notice: JSON.parse(raw) as IncidentNotice });
      res.writeHead(204).end();
    });
  });
  const hookPort = await listen(hookServer);
  process.env[TOKEN_ENV] = token;
  p = await createTestPlatform({ label: 'incident', assets: { [asset]: {} } });
  (p.platform as Record<string, unknown>).incident = {
    webhooks: [{ url: `http://127.0.0.1:${hookPort}/hooks/lifeline`, headers: { Authorization: { env: TOKEN_ENV } } }],
    approvalTimeout: `${APPROVAL_TIMEOUT_S}s`,
  };
  await p.rewrite();
  taskQueue = uniqueTaskQueue('incident');
  worker = await createLifelineWorker({ config: p.config, role: 'orchestrator', logger: log.logger, taskQueue });
  running = worker.run();
  const svc = testServices();
  connection = await Connection.connect({ address: svc.temporal.address });
  client = new Client({ connection, namespace: svc.temporal.namespace });
  eventServer = createEventServer({ client, config: p.config, taskQueue, logger: log.logger, actor: 'http-test' });
  eventsUrl = `http://127.0.0.1:${await listen(eventServer)}/events`;
}, 300_000);

afterAll(async () => {
  for (const id of started) await client?.workflow.getHandle(id).terminate('test cleanup').catch(() => {});
  eventServer?.close();
  hookServer?.close();
  worker?.worker.shutdown();
  await running?.catch(() => {});
  await connection?.close();
  await p?.cleanup();
  delete process.env[TOKEN_ENV];
});

const cli = (args: string[]) => runCli(['--config', p.configFile, ...args], { env: p.cliEnv, timeoutMs: 180_000 });

async function post(body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(eventsUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** The validator's message when an Update is refused. */
async function refusal(update: Promise<unknown>): Promise<string | undefined> {
  try {
    await update;
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    return applicationFailureOf(err)?.message;
  }
  throw new Error('the update was accepted');
}

async function view(id: string): Promise<IncidentView> {
  return (await client.workflow.getHandle(id).query('incident')) as IncidentView;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const awaiting = (id: string, step: string) => until(`${id} awaiting ${step}`, async () => ((await view(id)).steps[step] === 'awaiting-approval' ? view(id) : undefined));

async function snapshot(step: number): Promise<{ id: string; time: string; packs: string[] }> {
  const repo = await p.repository();
  const before = new Set<string>();
  for await (const o of repo.store.list('data/')) before.add(o.key);
  await writeFile(join(p.assetPath(asset), 'weights.bin'), randomBytes(200_000 + step));
  const r = await backup(repo, { root: p.assetPath(asset), asset: { name: asset, kind: 'model', tenant: 'acme', node: p.node }, labels: { step: String(step) } });
  const packs: string[] = [];
  for await (const o of repo.store.list('data/')) if (!before.has(o.key)) packs.push(o.key);
  const s = (await repo.listSnapshots({ asset })).find((x) => x.id === r.snapshotId)!;
  return { id: r.snapshotId, time: s.time, packs };
}

describe('incident response', () => {
  const snaps: Array<{ id: string; time: string; packs: string[] }> = [];
  let compromise: string;

  it('a suspected compromise at T holds every snapshot, quarantines those after T, and the timeline shows it; approval resolves it', async () => {
    snaps.push(await snapshot(0));
    await new Promise((r) => setTimeout(r, 50));
    compromise = new Date(Date.parse(snaps[0]!.time) + 20).toISOString();
    await new Promise((r) => setTimeout(r, 50));
    snaps.push(await snapshot(1), await snapshot(2));
    expect(Date.parse(snaps[1]!.time)).toBeGreaterThan(Date.parse(compromise));
    const verified = (await client.workflow.execute('verifyWorkflow', { taskQueue, workflowId: `test-verify-${suffix()}`, args: [{ asset }] })) as { verified: number };
    expect(verified.verified).toBe(3);
    const repo = await p.repository();
    expect((await lastVerifiedSnapshot(repo, asset))!.id).toBe(snaps[2]!.id);

    const r = await post({ type: 'suspected-compromise', assets: [asset], compromisedAt: compromise, source: 'ids:inference-attack-detector', details: 'model extraction pattern' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const id = r.body.incident as string;
    started.add(id);
    expect(id).toBe(`incident-suspected-compromise-${asset}`);

    const v = await awaiting(id, 'restore');
    expect(v).toMatchObject({ type: 'suspected-compromise', severity: 'critical', status: 'awaiting-approval', assets: [asset] });
    // Contained: all three held by this incident, the two after T quarantined, and "last verified" skips them.
    const mark = incidentMarkId(id);
    const fresh = await p.repository();
    expect((await listHolds(fresh)).filter((h) => h.id === mark).map((h) => h.snapshotId).sort()).toEqual(snaps.map((s) => s.id).sort());
    expect((await listQuarantined(fresh)).filter((m) => m.id === mark).map((m) => m.snapshotId).sort()).toEqual([snaps[1]!.id, snaps[2]!.id].sort());
    expect((await lastVerifiedSnapshot(fresh, asset))!.id).toBe(snaps[0]!.id);
    expect(v.contained).toEqual([{ asset, tenant: 'acme', held: snaps.map((s) => s.id), quarantined: [snaps[1]!.id, snaps[2]!.id], restorePoint: { snapshot: snaps[0]!.id, time: snaps[0]!.time } }]);
    const actions = v.timeline.map((e) => e.action);
    expect(actions.slice(0, 5)).toEqual(['opened', 'planned', 'hold-placed', 'quarantined', 'restore-point']);
    expect(v.timeline[0]).toMatchObject({ actor: 'http-test', detail: 'suspected-compromise: model extraction pattern (source ids:inference-attack-detector)' });
    expect(v.timeline.find((e) => e.action === 'quarantined')!.detail).toContain(snaps[1]!.id.slice(0, 12));
    expect(actions).toContain('awaiting-approval:restore');

    // The same report again joins the open incident.
    const again = await post({ type: 'suspected-compromise', assets: [asset], compromisedAt: compromise, source: 'ids:second-sensor' });
    expect(again.body.incident).toBe(id);
    await until('the joined report in the timeline', async () => ((await view(id)).timeline.some((e) => e.action === 'event:suspected-compromise' && e.detail?.includes('ids:second-sensor')) ? true : undefined));

    // The validator refuses an unknown step (through the API and the CLI) and records nothing.
    const handle = client.workflow.getHandle(id);
    expect(await refusal(handle.executeUpdate('approve', { args: [{ step: 'format-disks', actor: 'mallory' }] }))).toBe('unknown step "format-disks" (known steps: rebuild-node, restore)');
    expect(await refusal(handle.executeUpdate('approve', { args: [{ step: 'rebuild-node', actor: 'mallory' }] }))).toBe('step rebuild-node is not part of this incident (its steps: restore)');
    expect(await refusal(handle.executeUpdate('reject', { args: [{ step: 'restore', actor: 'mallory' }] }))).toBe('reject: required: reason');
    const refused = await cli(['incident', 'approve', id, '--step', 'format-disks']);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^lifeline: approve refused: unknown step "format-disks"/)]);
    expect((await view(id)).timeline.some((e) => e.actor === 'mallory')).toBe(false);

    const ok = await cli(['incident', 'approve', id, '--step', 'restore', '--actor', 'alice', '--reason', 'restore from before T']);
    expect(ok.code, ok.stderr).toBe(0);
    const done = (await handle.result()) as IncidentView;
    closed.push(id);
    expect(done.status).toBe('resolved');
    expect(done.steps).toEqual({ restore: 'done' });
    expect(done.decisions.restore).toMatchObject({ decision: 'approved', actor: 'alice', reason: 'restore from before T' });
    expect(done.summary).toMatchObject({ outcome: 'resolved', restorePoints: [{ asset, snapshot: snaps[0]!.id, time: snaps[0]!.time }], holdsReleased: 3, quarantined: 2 });
    expect(done.summary!.dataLossWindowSeconds).toBe(0); // the restore point is 20 ms before T
    expect(done.summary!.timeToRecoverSeconds).toBeGreaterThanOrEqual(0);
    // Holds released at the close; the suspect snapshots stay quarantined (evidence) and are still never restore points.
    const after = await p.repository();
    expect((await listHolds(after)).filter((h) => h.id === mark)).toEqual([]);
    expect((await listQuarantined(after)).filter((m) => m.id === mark)).toHaveLength(2);
    expect((await lastVerifiedSnapshot(after, asset))!.id).toBe(snaps[0]!.id);

    const show = await cli(['incident', 'show', id]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain('status resolved');
    expect(show.stdout).toMatch(/alice\s+approved:restore — restore from before T/);
    expect(show.stdout).toContain(`restore point of ${asset}: ${snaps[0]!.id.slice(0, 12)}`);
    const kinds = received.filter((x) => x.notice.incident === id).map((x) => x.notice.kind);
    expect(kinds).toEqual(['opened', 'approval-needed', 'approved', 'closed']);
  }, 300_000);

  it('rejecting the rebuild of a lost node ends the incident rejected with nothing built', async () => {
    const r = await post({ type: 'node-lost', node: p.node });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const id = r.body.incident as string;
    started.add(id);
    expect(id).toBe(`incident-node-lost-${p.node}`);
    await awaiting(id, 'rebuild-node');
    const rej = await cli(['incident', 'reject', id, '--step', 'rebuild-node', '--reason', 'node came back', '--actor', 'bob', '--json']);
    expect(rej.code, rej.stderr).toBe(0);
    expect(parseJson<IncidentView>(rej).decisions['rebuild-node']).toMatchObject({ decision: 'rejected', actor: 'bob' });
    const done = (await client.workflow.getHandle(id).result()) as IncidentView;
    closed.push(id);
    expect(done.status).toBe('rejected');
    expect(done.steps).toEqual({ 'rebuild-node': 'rejected' });
    expect(done.timeline.some((e) => e.action.startsWith('manual:'))).toBe(false);
    expect(done.timeline.map((e) => e.action)).toContain('holds-released');
    expect(done.summary).toMatchObject({ outcome: 'rejected', timeToRecoverSeconds: null, holdsReleased: 3 });
    expect((await listHolds(await p.repository())).filter((h) => h.id === incidentMarkId(id))).toEqual([]);
    expect(received.filter((x) => x.notice.incident === id).map((x) => x.notice.kind)).toEqual(['opened', 'approval-needed', 'rejected', 'closed']);
  }, 300_000);

  it('an approval deadline that passes ends the incident expired, with an escalation webhook and no secret in any payload', async () => {
    const r = await post({ type: 'manual', summary: 'rack 4 power loss', nodes: [p.node], severity: 'high' });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const id = r.body.incident as string;
    started.add(id);
    const v = await awaiting(id, 'rebuild-node');
    expect(Date.parse(v.approvalDeadline!) - Date.now()).toBeLessThanOrEqual(APPROVAL_TIMEOUT_S * 1000);
    const done = (await client.workflow.getHandle(id).result()) as IncidentView;
    closed.push(id);
    expect(done.status).toBe('expired');
    expect(done.steps).toEqual({ 'rebuild-node': 'expired', restore: 'planned' });
    expect(done.timeline.map((e) => e.action)).toEqual(expect.arrayContaining(['expired:rebuild-node', 'notified:escalation', 'holds-released', 'closed:expired']));
    // Approving after the end is refused.
    await expect(client.workflow.getHandle(id).executeUpdate('approve', { args: [{ step: 'rebuild-node' }] })).rejects.toThrow();
    const notices = received.filter((x) => x.notice.incident === id);
    expect(notices.map((x) => x.notice.kind)).toEqual(['opened', 'approval-needed', 'escalation', 'closed']);
    expect(notices.find((x) => x.notice.kind === 'escalation')!.notice).toMatchObject({ type: 'manual', severity: 'high', step: 'rebuild-node', status: 'expired', nodes: [p.node] });
    expect(notices.find((x) => x.notice.kind === 'escalation')!.notice.text).toMatch(/^ESCALATION: step rebuild-node/);
    // Every delivery carried the header from the secret reference; no payload and no history contains it.
    expect(received.length).toBeGreaterThanOrEqual(12);
    const secret = token.split(' ')[1]!;
    for (const x of received) {
      expect(x.auth).toBe(token);
      expect(x.raw).not.toContain(secret);
    }
    const history = JSON.stringify(await client.workflow.getHandle(id).fetchHistory());
    expect(history).not.toContain(secret);
  }, 300_000);

  it('a malformed event is rejected over HTTP and the CLI with the field named, and starts nothing', async () => {
    const bad = await post({ type: 'suspected-compromise', assets: [asset], compromisedAt: 'yesterday', source: 'ids' });
    expect(bad.status).toBe(400);
    expect(bad.body.issues).toEqual([{ field: 'compromisedAt', problem: 'expected compromisedAt as an ISO time with a zone, like 2026-11-26T08:00:00Z' }]);
    const unknown = await post({ type: 'node-lost', node: 'no-such-node' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.issues[0]).toMatchObject({ field: 'node' });

    const c = await cli(['event', 'suspected-compromise', '--asset', 'ghost-asset', '--compromised-at', 'yesterday', '--source', 'ids']);
    expect(c.code).toBe(1);
    expect(c.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^lifeline: invalid event: compromisedAt: expected compromisedAt as an ISO time/)]);
    const m = await cli(['incident', 'open', 'manual', '--summary', 'x']);
    expect(m.code).toBe(1);
    expect(m.stderr.trim()).toMatch(/^lifeline: invalid event: severity: required: one of low, medium, high, critical$/);
    for (const id of ['incident-suspected-compromise-ghost-asset', 'incident-node-lost-no-such-node']) {
      await expect(client.workflow.getHandle(id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    }
  }, 300_000);

  it('the closed incidents (signals, validated and refused updates, timers, activities) replay deterministically', async () => {
    expect(closed).toHaveLength(3);
    for (const id of closed) await Worker.runReplayHistory({ workflowsPath: WORKFLOWS_PATH }, await client.workflow.getHandle(id).fetchHistory(), id);
  }, 300_000);

  it('an integrity failure found by a real deep verification opens an incident', async () => {
    const target = snaps[0]!;
    const prefix = tenantLocation(p.config, 'acme', p.config.storage).prefix;
    await testS3Client().send(new PutObjectCommand({ Bucket: p.bucket, Key: `${prefix}${target.packs[0]!}`, Body: randomBytes(4096) }));
    const verifyId = `test-verify-deep-${suffix()}`;
    await expect(
      client.workflow.execute('verifyWorkflow', { taskQueue, workflowId: verifyId, args: [{ asset, snapshot: target.id, mode: 'deep', samplePercent: 100 }] }),
    ).rejects.toThrow();
    const id = `incident-integrity-failure-${asset}-${target.id.slice(0, 12)}`;
    started.add(id);
    const v = await until('the integrity incident', async () => {
      const x = await view(id);
      return x.steps.restore === 'awaiting-approval' ? x : undefined;
    });
    expect(v).toMatchObject({ type: 'integrity-failure', severity: 'high', assets: [asset] });
    expect(v.timeline[0]).toMatchObject({ actor: verifyId, action: 'opened' });
    expect(v.contained[0]!.quarantined).toEqual([target.id]);
    const list = await cli(['incident', 'list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(parseJson<Array<{ id: string; status: string }>>(list)).toEqual(expect.arrayContaining([expect.objectContaining({ id, status: 'awaiting-approval' })]));
  }, 300_000);
});
