/**
 * `lifeline demo`, the main job: on the embedded stack, a sample AI platform
 * (demo/platform.ts) is set up, backed up and verified on schedules while its
 * training job checkpoints; then a chaos drill destroys the node and corrupts
 * the newest checkpoint snapshot, recovery runs for real, and the verdict,
 * RTO/RPO and the report's path are printed. Exit 0 only when the drill passed.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { nodeWorkDir } from '../backups/asset';
import { DeleteObjectsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { resolveStorage } from '../config/storage';
import { createS3Client } from '../activities/s3';
import { stackSettings, temporalUiUrl } from '../devstack/layout';
import { up, type UpResult } from '../devstack/stack';
import { DEMO, demoConfigObject, demoPaths, seedDemoNode, writeDemoConfig, type DemoPaths } from '../demo/platform';
import { snapshotStatuses } from '../engine/verification';
import { LocalNodeProvider, nodeStateDir } from '../nodes/local';
import { groupAlive, readProcessRecord, recordAlive } from '../nodes/processes';
import { startSupervisedWorker, stopSupervisedWorker, supervisedWorker, workerLogFile, workerRecordFile, type SupervisedRole } from '../workers/supervised';
import { desiredSchedules } from '../schedules/desired';
import { applySchedules } from '../schedules/temporal';
import { TenantRepositories } from '../tenancy/repositories';
import { initTenant } from '../tenancy/keys';
import { provisionEmbeddedRoles } from '../tenancy/provision-roles';
import { jobProgress, startTrainingJob, stopTrainingJob } from '../training/jobs';
import { connectClient } from '../workers/temporal';
import { LIFELINE_ROOT } from '../config/root';
import { join } from 'node:path';
import { stackLayout } from '../devstack/layout';
import { listDrillReports, readDrillReport } from '../drills/report-files';
import { formatSeconds } from '../drills/report-html';
import { nodeHealthId } from '../incidents/watch';
import { context, out, type Ctx } from './context';
import { formatDrillSummary } from './drill-report';

const STEPS = 7;
const step = (n: number, text: string) => out(`[${n}/${STEPS}] ${text}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns a value; `describe` says what is awaited in the timeout error. */
async function until<T>(what: string, f: () => Promise<T | undefined> | T | undefined, timeoutMs: number, everyMs = 1000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new UserError(`demo: timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Deletes every object of the demo bucket (a previous run's repository), so each run starts clean. */
async function emptyBucket(s3: S3Client, bucket: string): Promise<number> {
  let removed = 0;
  for (;;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 })).catch((e: { name?: string }) => {
      if (e?.name === 'NoSuchBucket') return null;
      throw e;
    });
    const keys = (page?.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (!keys.length) return removed;
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    removed += keys.length;
  }
}

// ---- demo workers: supervised processes (workers/supervised.ts), so the crash-orchestrator fault can crash and restart them ----

function logSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** The log's text written after `from` (a worker's log file is appended to across runs). */
function logSince(file: string, from: number): string {
  try {
    const size = statSync(file).size;
    if (size <= from) return '';
    const buf = Buffer.alloc(Math.min(size - from, 1 << 20));
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, from);
    } finally {
      closeSync(fd);
    }
    return buf.toString('utf8');
  } catch {
    return '';
  }
}

/** Waits for the worker's "worker ready" log line; a worker that exits first is an error with its last log lines. */
async function waitReady(what: string, logFile: string, from: number, recordFile: string): Promise<void> {
  await until(
    `${what} to be ready (log: ${logFile})`,
    () => {
      const text = logSince(logFile, from);
      if (/worker ready/.test(text)) return true;
      const rec = readProcessRecord(recordFile);
      if (rec && !recordAlive(rec) && !groupAlive(rec)) {
        throw new UserError(`demo: ${what} exited before it was ready; its log ${logFile} ends with:\n${text.trim().split('\n').slice(-5).join('\n')}`);
      }
      return undefined;
    },
    180_000,
    500,
  );
}

async function startDemoWorker(config: LoadedConfig, role: SupervisedRole): Promise<void> {
  const log = workerLogFile(config, role);
  const from = logSize(log);
  const { alreadyRunning } = await startSupervisedWorker(config, role);
  // stopDemo ran first, so a running worker here belongs to someone else's config on this data folder
  if (alreadyRunning) throw new UserError(`demo: a supervised ${role} worker already runs on this data folder (${workerRecordFile(config, role)}); stop it first`);
  await waitReady(`the ${role} worker`, log, from, workerRecordFile(config, role));
}

/** Stops whatever a previous (or this) demo run left running: schedules, node health, incidents, the training job, the node agent, the workers. */
async function stopDemo(config: LoadedConfig, client: Client | null, opts: { removeRecords: boolean }): Promise<void> {
  if (client) {
    for (const d of desiredSchedules(config)) await client.schedule.getHandle(d.id).delete().catch(() => undefined);
    // The node's health watch first (it would report the stopped agent and job as incidents), then the demo's open
    // incidents and recoveries: a later run starts with a fresh watch and no incident to join.
    await client.workflow.getHandle(nodeHealthId(DEMO.node)).terminate('lifeline demo: cleanup').catch(() => undefined);
    const names = [DEMO.node, DEMO.job, ...Object.values(DEMO.assets)];
    const running = client.workflow.list({ query: `ExecutionStatus = "Running" AND (WorkflowType = "incidentWorkflow" OR WorkflowType = "recoverNodeWorkflow")` });
    for await (const w of running) {
      if (names.some((n) => w.workflowId.includes(n))) await client.workflow.getHandle(w.workflowId).terminate('lifeline demo: cleanup').catch(() => undefined);
    }
  }
  await stopTrainingJob(config, DEMO.job, 5000).catch(() => undefined);
  await new LocalNodeProvider(config, { agentGraceMs: 10_000 }).stopAgent(DEMO.node).catch(() => undefined);
  // The node's records outside its root (provisioning, agent, job logs): a run's job progress must not read an earlier run's log.
  if (opts.removeRecords) for (const dir of [nodeWorkDir(config, DEMO.node), nodeStateDir(config, DEMO.node)]) await rm(dir, { recursive: true, force: true });
  for (const role of ['drill', 'orchestrator'] as const) {
    // Only the demo's own workers (started with the demo config), never a worker of another config on this data folder.
    if (supervisedWorker(config, role).record?.argv.includes(config.source.file!)) await stopSupervisedWorker(config, role, 15_000).catch(() => undefined);
  }
}

/**
 * Runs `lifeline drill run <scenario>` with the demo config as a child process,
 * its progress lines indented into the demo's output; resolves with its exit code.
 */
function runDrillCli(config: LoadedConfig, scenario: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(LIFELINE_ROOT, 'bin', 'lifeline'), ['--config', config.source.file!, '--log-format', 'json', 'drill', 'run', scenario], {
      cwd: LIFELINE_ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const relay = (stream: NodeJS.ReadableStream) => {
      let buf = '';
      stream.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          // JSON log lines stay out of the demo's output; the drill's own lines are shown.
          if (line.trim() && !line.startsWith('{')) out(`      ${line}`);
        }
      });
    };
    // Its progress (stderr) is shown; its closing summary (stdout) is replaced by the report's, printed below.
    child.stdout!.resume();
    relay(child.stderr!);
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
}

interface AssetProgress {
  asset: string;
  snapshots: number;
  verified: number;
}

async function assetProgress(config: LoadedConfig, repos: TenantRepositories): Promise<AssetProgress[]> {
  const repo = await repos.repository(DEMO.tenant);
  const outp: AssetProgress[] = [];
  for (const asset of Object.values(DEMO.assets)) {
    const st = await snapshotStatuses(repo, { asset });
    // Only snapshots with files count: the first checkpoint backup may run before the first checkpoint exists.
    const withFiles = st.filter((s) => s.stats.files > 0);
    outp.push({ asset, snapshots: withFiles.length, verified: withFiles.filter((s) => s.verification.state === 'verified').length });
  }
  return outp;
}

export interface DemoRunOptions {
  /** verified checkpoint snapshots to wait for before the drill (the drill corrupts the newest) */
  checkpointSnapshots: number;
}

export async function runDemo(ctx: Ctx, opts: DemoRunOptions): Promise<number> {
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;
  const main = ctx.config;
  const paths: DemoPaths = demoPaths(stackSettings(main).dataDir);

  step(1, 'starting (or reusing) the embedded Temporal and MinIO');
  // Checked first: a config naming an external Temporal or store is refused before anything starts.
  demoConfigObject(main, paths);
  const settings = stackSettings(main);
  const stack: UpResult[] = await up(settings, { log: (m) => ctx.logger.info(m) });
  for (const r of stack) out(`      ${r.service === 'temporal' ? 'Temporal' : 'MinIO   '} ${r.state} ${r.address ?? ''}`);

  step(2, `setting up the sample platform under ${paths.dir}`);
  const config = await writeDemoConfig(main, paths);
  const { client, connection } = await connectClient(config);
  const s3 = createS3Client(resolveStorage(config));
  try {
    await stopDemo(config, client, { removeRecords: true });
    const removed = await emptyBucket(s3, DEMO.bucket);
    if (removed) out(`      removed the previous run's ${removed} object(s) from bucket ${DEMO.bucket}`);
    await seedDemoNode(paths);
    await initTenant(config, DEMO.tenant, { kind: 'x25519' });
    // Least privilege as `lifeline up` does it: the workers use one MinIO user per storage role.
    await provisionEmbeddedRoles(config);
    out(`      config ${paths.configFile} (incident.environment: staging)`);
    out(`      tenant ${DEMO.tenant} (keys in ${paths.keysDir}), bucket ${DEMO.bucket}`);
    out(`      node ${DEMO.node} at ${paths.nodeRoot}: platform config, model, data set, checkpoints; training job ${DEMO.job}`);

    step(3, 'starting the workers: orchestrator, drill, node agent');
    await startDemoWorker(config, 'orchestrator');
    await startDemoWorker(config, 'drill');
    const agentLog = join(nodeStateDir(config, DEMO.node), 'agent.log');
    const agentFrom = logSize(agentLog);
    await new LocalNodeProvider(config).startAgent(DEMO.node);
    await waitReady(`the node agent of ${DEMO.node}`, agentLog, agentFrom, join(nodeStateDir(config, DEMO.node), 'agent.json'));
    out(`      ready (${elapsed()})`);

    step(4, `starting training job ${DEMO.job} and applying the schedules`);
    const job = await startTrainingJob(config, DEMO.job, { runId: `demo-${Date.now().toString(36)}` });
    const applied = await applySchedules(client, config);
    out(`      job pid ${job.pid}; schedules ${[...applied.created, ...applied.updated, ...applied.unchanged].join(', ')}`);

    step(5, `waiting until every asset has a verified snapshot (checkpoints: ${opts.checkpointSnapshots})`);
    const repos = new TenantRepositories(config, undefined, ctx.logger);
    let last = '';
    await until(
      'verified snapshots of every asset',
      async () => {
        const p = await assetProgress(config, repos).catch(() => null);
        if (!p) return undefined;
        const jp = jobProgress(config, DEMO.job);
        if (jp.state !== 'running') throw new UserError(`demo: training job ${DEMO.job} is ${jp.state}${jp.errorKind ? ` (${jp.errorKind})` : ''}`);
        const line = `      step ${jp.step ?? 0}, checkpoint ${jp.checkpointStep ?? '-'} | ${p.map((a) => `${a.asset.replace('demo-', '')} ${a.verified}/${a.snapshots} verified`).join(', ')}`;
        if (line !== last) {
          out(`${line}  (${elapsed()})`);
          last = line;
        }
        const need = (a: AssetProgress) => (a.asset === DEMO.assets.checkpoints ? opts.checkpointSnapshots : 1);
        return p.every((a) => a.verified >= need(a)) ? p : undefined;
      },
      300_000,
      2000,
    );

    step(6, `running the drill ${DEMO.scenario}: the newest checkpoint snapshot is corrupted and the node destroyed; recovery runs for real`);
    const drillStarted = Date.now();
    const drillCode = await runDrillCli(config, DEMO.scenario);
    const id = (await listDrillReports(stackSettings(config).dataDir)).find((d) => d.startsWith('drill-main-job-'));
    const found = id ? await readDrillReport(stackSettings(config).dataDir, id) : null;
    if (!found || Date.parse(found.report.startedAt) < drillStarted - 60_000) {
      throw new UserError(`demo: the drill wrote no report (lifeline drill run exited ${drillCode}); see the drill worker's log ${workerLogFile(config, 'drill')}`);
    }
    const { report, htmlPath } = found;
    const resumed = jobProgress(config, DEMO.job);
    out('');
    out(formatDrillSummary(report, htmlPath));
    out(
      resumed.state === 'running' && resumed.startStep !== undefined && resumed.startStep > 0
        ? `training ${DEMO.job}: resumed from step ${resumed.startStep}, now at step ${resumed.step ?? resumed.startStep} (run ${resumed.runId})`
        : `training ${DEMO.job}: ${resumed.state}${resumed.step !== undefined ? ` at step ${resumed.step}` : ''} — it did not resume`,
    );
    out(`main job ${report.verdict === 'pass' ? 'PASSED' : 'FAILED'} in ${elapsed()}: drill ${report.verdict.toUpperCase()}, RTO ${formatSeconds(report.measured.rtoSeconds)}, RPO ${formatSeconds(report.measured.rpoSeconds)}; open the report: ${htmlPath}`);
    return report.verdict === 'pass' ? 0 : 1;
  } finally {
    step(STEPS, 'cleaning up the demo (the stack stays up)');
    // The logs stay until the next run, for whoever wants to see what happened.
    await stopDemo(config, client, { removeRecords: false }).catch((e: unknown) => ctx.logger.warn({ err: String(e) }, 'demo cleanup'));
    s3.destroy();
    await connection.close().catch(() => undefined);
    const ui = temporalUiUrl(settings);
    if (ui) out(`Temporal UI: ${ui}`);
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('the main job: a sample AI platform on the embedded stack, backed up and verified, then a chaos drill (node destroyed, newest checkpoint corrupted) with recovery; prints the verdict, RTO/RPO and the report path; exit 0 only if the drill passed')
    .action(async (_opts: unknown, cmd: Command) => {
      const ctx = context(cmd);
      process.exitCode = await runDemo(ctx, { checkpointSnapshots: 2 });
    });
}
