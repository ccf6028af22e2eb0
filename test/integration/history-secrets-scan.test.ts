/**
 * Nothing sensitive in Temporal: a full backup → incident → recovery run of a
 * confidential asset (distinctive file names) on the shared Temporal and
 * MinIO — backup and verification; the node is lost (agent killed, folder
 * wiped); a node-lost incident opened and approved through the CLI rebuilds
 * the node with a child RecoverNodeWorkflow and its RestoreWorkflow — then the
 * complete histories of every workflow of the run (all runs, children
 * included) are scanned for every secret the run used and every plaintext
 * file name and path of the asset. None is found. The scanner is shown to
 * work on a planted workflow carrying a file name in its input and memo.
 * The run's audit entries (incident steps, the approval and who gave it, the
 * recovery steps and restore) are in the log, which verifies.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { Client } from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../../audit/entry';
import { TenantRepositories } from '../../tenancy/repositories';
import type { IncidentView } from '../../workflows/incident';
import { parseJson, runCli } from '../support/cli';
import { fetchHistories, pemNeedles, scanHistory, type Needle } from '../support/history-scan';
import { makeEnv, type LifelineEnv } from '../support/lifeline-env';
import { uniqueTaskQueue } from '../support/services';
import { editConfig, startNodeRig, tearDownNode, type NodeRig } from '../support/training-node';
import { until } from '../support/until';

/** The confidential asset: names that must never leave the node in plaintext. */
const CONFIDENTIAL_FILES: Record<string, string> = {
  'project-nightingale-q7/merger-terms-zx41.pdf': 'terms of the merger\n'.repeat(300),
  'project-nightingale-q7/board-minutes-vq93.txt': 'minutes\n'.repeat(50),
  'payroll-2026-kq58.csv': 'name,salary\nalice,1\n',
  'patients/jane-doe-mrn-558812.json': '{"diagnosis":"confidential"}',
};

describe('Temporal histories of a backup → incident → recovery run', () => {
  it('hold no secret and no plaintext file name of the confidential asset (and the scanner finds a planted one)', async () => {
    const since = new Date(Date.now() - 1000);
    const base = await mkdtemp(join(tmpdir(), 'lifeline-hscan-'));
    const nodeRoot = join(base, 'node');
    const vault = join(nodeRoot, 'vault');
    let env: LifelineEnv | undefined;
    let rig: NodeRig | undefined;
    try {
      for (const [name, content] of Object.entries(CONFIDENTIAL_FILES)) {
        await mkdir(join(vault, name, '..'), { recursive: true });
        await writeFile(join(vault, name), content);
      }
      env = await makeEnv('hscan', { audit: true, assets: { vault: { kind: 'dataset', path: vault } } });
      env = await editConfig(env, (raw) => {
        raw.nodes[env!.node].root = nodeRoot;
        raw.incident = { recovery: 'recover-node', approvalTimeout: '1h' };
      });
      const cfg = env.config;
      const { node, taskQueue } = env;
      const cli = (args: string[]) => runCli(['--config', env!.configFile, ...args], { timeoutMs: 180_000 });

      rig = await startNodeRig(env);
      const client: Client = rig.client;

      // ---- backup and verification ----
      const backupId = `hscan-backup-${Date.now()}`;
      const verifyId = `hscan-verify-${Date.now()}`;
      const b = (await client.workflow.execute('backupWorkflow', { taskQueue, workflowId: backupId, args: [{ asset: 'vault', trigger: 'manual' }] })) as { snapshotId: string };
      await client.workflow.execute('verifyWorkflow', { taskQueue, workflowId: verifyId, args: [{ asset: 'vault' }] });

      // ---- the node is lost ----
      await rig.agent!.kill('SIGKILL');
      rig.agent = undefined;
      await rm(nodeRoot, { recursive: true, force: true });

      // ---- incident, approved through the CLI; the node is rebuilt and the asset restored ----
      const opened = await cli(['incident', 'open', 'node-lost', '--node', node, '--actor', 'monitor-x', '--task-queue', taskQueue, '--json']);
      expect(opened.code, opened.stderr).toBe(0);
      const incidentId = parseJson<{ incident: string }>(opened).incident;
      const handle = client.workflow.getHandle(incidentId);
      await until('the incident awaiting approval', async () => ((await handle.query<IncidentView>('incident').catch(() => undefined))?.status === 'awaiting-approval' ? true : undefined));
      const approve = await cli(['incident', 'approve', incidentId, '--step', 'rebuild-node', '--actor', 'oncall-bob', '--reason', 'rebuild it']);
      expect(approve.code, approve.stderr).toBe(0);
      const view = (await handle.result()) as IncidentView;
      expect(view.status).toBe('resolved');
      expect(view.recoveries).toMatchObject([{ node, outcome: 'recovered' }]);
      for (const [name, content] of Object.entries(CONFIDENTIAL_FILES)) expect(await readFile(join(vault, name), 'utf8')).toBe(content);
      const recoverId = view.recoveries[0]!.workflowId;
      const restoreId = `${recoverId}-restore-vault`;

      // ---- a planted workflow with a file name in its input and a path in its memo: the scanner must see them ----
      const plantedId = `hscan-planted-${Date.now()}`;
      const planted = await client.workflow.start('backupWorkflow', {
        taskQueue: uniqueTaskQueue('hscan-planted'), // nobody polls it
        workflowId: plantedId,
        args: [{ asset: 'payroll-2026-kq58.csv', trigger: 'manual' }],
        memo: { note: join(vault, 'patients/jane-doe-mrn-558812.json') },
      });
      await planted.terminate('planted needle for the history scan');

      // ---- every secret and every file name of the run ----
      const secretsDir = join(env.dir, 'secrets');
      const repo = await new TenantRepositories(cfg).repository(env.tenant);
      const ageIdentity = (await readFile(join(secretsDir, `${env.tenant}.age`), 'utf8')).split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
      expect(ageIdentity).toBeDefined();
      const secrets: Needle[] = [
        { label: 'S3 access key id', value: env.s3.accessKeyId },
        { label: 'S3 secret access key', value: env.s3.secretAccessKey },
        { label: 'tenant age identity', value: ageIdentity },
        ...pemNeedles('tenant signing key', await readFile(join(secretsDir, `${env.tenant}.pem`), 'utf8')),
        ...pemNeedles('audit signing key', await readFile(join(env.dir, 'data', 'keys', 'audit-signing.pem'), 'utf8')),
        { label: 'repository dedup key', value: repo.config.dedupKey },
        { label: 'repository chunker seed', value: repo.config.chunkerSeed },
      ];
      const names: Needle[] = [];
      for (const name of Object.keys(CONFIDENTIAL_FILES)) {
        names.push({ label: `file path ${name}`, value: name }, { label: `absolute path of ${name}`, value: join(vault, name) });
        const parts = name.split('/');
        for (const p of parts) if (p.length >= 6) names.push({ label: `file name part ${p}`, value: p });
      }
      expect(relative(vault, join(vault, Object.keys(CONFIDENTIAL_FILES)[0]!))).not.toMatch(/^\.\./);

      const ours = (id: string) => id.startsWith('hscan-') || id.includes(node);
      const executions = await fetchHistories(client, { since, include: ours, expectIds: [backupId, verifyId, incidentId, recoverId, restoreId, plantedId] });
      const types = new Set(executions.map((e) => e.type));
      for (const t of ['backupWorkflow', 'verifyWorkflow', 'incidentWorkflow', 'recoverNodeWorkflow', 'restoreWorkflow']) expect(types, t).toContain(t);
      expect(executions.reduce((n, e) => n + e.events, 0)).toBeGreaterThan(100);

      const findings = executions.flatMap((e) => scanHistory(e.history, [...secrets, ...names], e));
      const real = findings.filter((f) => f.workflowId !== plantedId);
      expect(real, JSON.stringify(real.slice(0, 10), null, 2)).toEqual([]);
      const inPlanted = findings.filter((f) => f.workflowId === plantedId);
      expect(inPlanted.some((f) => f.needle === 'file path payroll-2026-kq58.csv' && /WORKFLOW_EXECUTION_STARTED|input/.test(f.where))).toBe(true);
      expect(inPlanted.some((f) => f.needle === 'absolute path of patients/jane-doe-mrn-558812.json' && /memo/.test(f.where))).toBe(true);
      // the scanner reads payloads, not only their JSON: the snapshot id is in the backup's result payload
      expect(scanHistory(executions.find((e) => e.workflowId === backupId)!.history, [{ label: 'snapshot id', value: b.snapshotId }], { workflowId: backupId, runId: '' }).length).toBeGreaterThan(0);

      // ---- the run is in the audit log, by id only, and the log verifies ----
      const show = await cli(['audit', 'show', '--since', since.toISOString(), '--json']);
      expect(show.code, show.stderr).toBe(0);
      const entries = parseJson<Array<{ entry: AuditEntry }>>(show).map((x) => x.entry);
      const brief = entries.map((e) => `${e.type}/${e.action}/${e.outcome}`);
      for (const expected of [
        'backup/completed/success',
        'verification/shallow-check/success',
        'incident-step/opened/success',
        'incident-step/contained/success',
        'incident-step/approval-requested/started',
        'approval/granted/success',
        'incident-step/recovery-started/started',
        'incident-step/recovery-step/success',
        'restore/completed/success',
        'incident-step/node-recovered/success',
        'incident-step/recovered/success',
        'incident-step/closed/success',
      ]) {
        expect(brief, expected).toContain(expected);
      }
      expect(entries.find((e) => e.type === 'approval')).toMatchObject({ actor: { kind: 'workflow', id: incidentId }, details: { decidedBy: 'oncall-bob', step: 'rebuild-node', incident: incidentId } });
      expect(entries.find((e) => e.type === 'restore')).toMatchObject({ actor: { id: restoreId }, snapshot: b.snapshotId, node });
      expect(entries.filter((e) => e.action === 'recovery-step').map((e) => e.details?.step)).toEqual(expect.arrayContaining(['provision', 'start-agent', 'wait-for-agent', 'restore:vault']));
      const auditText = JSON.stringify(entries);
      for (const n of [...names, ...secrets]) expect(auditText.includes(n.value), n.label).toBe(false);
      const verified = await cli(['audit', 'verify', '--no-witness', '--json']);
      expect(verified.code, verified.stderr).toBe(0);
    } finally {
      await tearDownNode({ env, rig, base });
    }
  }, 900_000);
});
