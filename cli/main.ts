/**
 * The `lifeline` command. User mistakes print one line on stderr and exit
 * non-zero; `--debug` adds stack traces. Command output goes to stdout
 * (`--json` for machines), logs go to stderr.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ConfigError, UserError } from '../config/errors';
import { loadConfig, type LoadedConfig } from '../config/load';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../config/schema';
import { describeStorage, resolveStorage } from '../config/storage';
import { stackLayout, stackSettings, temporalUiUrl } from '../devstack/layout';
import { down, up, type UpResult } from '../devstack/stack';
import { temporalHealthy } from '../devstack/health';
import { createLogger, type Logger } from '../logging/logger';
import { scrubString } from '../logging/redact';
import { runSmoke } from '../workers/smoke';
import { initAudit } from '../audit/open';
import { temporalTarget } from '../workers/temporal';
import { FAILURE_CONVERTER_PATH, payloadEncryptionEnabled } from '../workers/codec';
import { WORKER_ROLES, WORKFLOWS_PATH, createLifelineWorker, roleTaskQueue, type WorkerRole } from '../workers/worker';
import { isValidNodeId } from '../workflows/task-queues';
import { collectStatus, formatStatus } from './status';

import { collect, context, json, nodeIdArg, out, type Ctx } from './context';
import { registerKeysCommands } from './keys';
import { registerRetentionCommands } from './retention';
import { registerSchedulesCommands } from './schedules';
import { registerSnapshotsCommands } from './snapshots';
import { registerVerifyCommand } from './verify';
import { registerBackupCommands } from './backup';
import { registerEventCommands } from './events';
import { registerIncidentCommands } from './incident';
import { registerAuditCommands } from './audit';
import { registerRecoverCommands } from './recover';
import { provisionEmbeddedRoles } from '../tenancy/provision-roles';
import { registerStorageCommands } from './storage';
import { registerMbomCommands } from './mbom';
import { registerPayloadKeyCommand } from './payload-key';
import { registerDrillCommands } from './drill';
import { startSupervisedWorker } from '../workers/supervised';
import { addDrillReportCommand } from './drill-report';
import { registerDemoCommand } from './demo';
import { registerAlarmCommands } from './alarm';

function describeUp(r: UpResult, config: LoadedConfig): string {
  const s = stackSettings(config);
  if (r.service === 'temporal') {
    if (r.state === 'external') return `Temporal  external  ${config.temporal.address} (nothing started)`;
    const ui = temporalUiUrl(s);
    return `Temporal  ${r.state.padEnd(8)}  ${r.address}  namespace ${s.namespace}${ui ? `  UI ${ui}` : ''}  (pid ${r.pid})`;
  }
  if (r.state === 'external') return `MinIO     external  ${config.storage.endpoint} (nothing started)`;
  return `MinIO     ${r.state.padEnd(8)}  ${r.address}  console http://${s.host}:${s.minio.consolePort}  (pid ${r.pid})`;
}

async function bringUp(ctx: Ctx): Promise<UpResult[]> {
  const settings = stackSettings(ctx.config);
  const results = await up(settings, { log: (m) => ctx.logger.info(m) });
  if (settings.minio.enabled) {
    // Least privilege: one MinIO user per storage role and a restore user per tenant (idempotent; keys stay in the data folder).
    const roles = await provisionEmbeddedRoles(ctx.config);
    ctx.logger.info({ roles: Object.keys(roles).filter((k) => k !== 'restore'), restoreTenants: Object.keys(roles.restore ?? {}) }, 'storage role users ready');
  }
  return results;
}

export function buildProgram(): Command {
  const program = new Command('lifeline')
    .description('Lifeline: event-driven resilience and backup orchestrator for AI computing platforms')
    .option('-c, --config <file>', 'config file (default: $LIFELINE_CONFIG, else config/lifeline.yaml if present, else built-in defaults)')
    .addOption(new Option('--log-level <level>', 'log level (overrides logging.level)').choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'log format (overrides logging.format)').choices(LOG_FORMATS))
    .option('--debug', 'show stack traces on errors')
    .showHelpAfterError('(run lifeline --help for usage)')
    .enablePositionalOptions();

  program
    .command('up')
    .description('start the embedded Temporal dev server and MinIO (reusing healthy ones) and wait until healthy')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const results = await bringUp(ctx);
      const layout = stackLayout(stackSettings(ctx.config).dataDir);
      // The embedded default gets a ready audit log (key + locked bucket + first entry); external storage is
      // initialised deliberately with `lifeline audit init`.
      const audit = ctx.config.storage.endpoint === undefined ? await initAudit(ctx.config, { logger: ctx.logger }) : null;
      const auditInfo = audit && { bucket: audit.bucket, keyId: audit.keyId, verifierKey: audit.verifierKey, created: audit.created };
      if (opts.json) json({ dataDir: layout.dataDir, services: results, audit: auditInfo });
      else {
        for (const r of results) out(describeUp(r, ctx.config));
        if (results.some((r) => r.state !== 'external')) out(`data ${layout.dataDir}   logs ${layout.logsDir}`);
        if (audit) out(`audit log ${audit.location} ${audit.created.log ? 'initialised' : 'ready'} (key ${audit.keyId})`);
      }
    });

  program
    .command('down')
    .description('stop the embedded services started from the data folder (SIGTERM, then SIGKILL after a grace period)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const results = await down(stackSettings(ctx.config), { log: (m) => ctx.logger.info(m) });
      if (opts.json) json({ services: results });
      else for (const r of results) out(`${(r.service === 'temporal' ? 'Temporal' : 'MinIO').padEnd(10)}${r.state}${r.pid ? ` (pid ${r.pid})` : ''}`);
    });

  program
    .command('status')
    .description('health of Temporal and storage, and the workers polling Lifeline task queues (exit 3 when something is down)')
    .option('--json', 'machine-readable output')
    .option('--node <id>', 'also show the node agent queue of this node (repeatable)', (v: string, prev?: string[]) => collect(nodeIdArg(v), prev))
    .option('--task-queue <name>', 'also show this task queue (repeatable)', collect)
    .action(async (opts: { json?: boolean; node?: string[]; taskQueue?: string[] }, cmd: Command) => {
      const ctx = context(cmd);
      const report = await collectStatus(ctx.config, { nodes: opts.node, taskQueues: opts.taskQueue });
      if (opts.json) json(report);
      else out(formatStatus(report));
      if (!report.healthy) process.exitCode = 3;
    });

  program
    .command('worker')
    .description('run a Lifeline worker until SIGINT/SIGTERM')
    .addOption(new Option('--role <role>', 'orchestrator (workflows + shared activities), node-agent (activities of one node) or drill (chaos drills, on lifeline-drill)').choices(WORKER_ROLES).default('orchestrator'))
    .option('--node <id>', 'node id (required for --role node-agent): polls lifeline-node-<id>', nodeIdArg)
    .option('--workflow-bundle <file>', 'load workflows from a prebuilt bundle (lifeline bundle) instead of bundling at start')
    .option('--task-queue <name>', "poll this task queue instead of the role's default (isolated installations, tests)")
    .option('--detach', 'orchestrator or drill: start the worker as a supervised background process (pid record in <dataDir>/run/<role>-worker.json, log in <dataDir>/logs/) and return')
    .action(async (opts: { role: WorkerRole; node?: string; workflowBundle?: string; taskQueue?: string; detach?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      if (opts.role === 'node-agent' && !opts.node) throw new UserError('--role node-agent needs --node <id>');
      if (opts.role !== 'node-agent' && opts.node) throw new UserError('--node applies to --role node-agent only');
      if (opts.detach) {
        if (opts.role === 'node-agent') throw new UserError('--detach applies to --role orchestrator or drill (node agents are started by their node provider)');
        const r = await startSupervisedWorker(ctx.config, opts.role, { taskQueue: opts.taskQueue });
        out(`${opts.role} worker ${r.alreadyRunning ? 'already running' : 'started'} (pid ${r.record.pid}); log ${r.record.logFile}`);
        return;
      }
      const target = temporalTarget(ctx.config);
      if (!(await temporalHealthy(target.address, target.namespace, 5000))) {
        throw new UserError(
          `Temporal is not reachable at ${target.address} (namespace ${target.namespace})${target.embedded ? '; run `lifeline up` first' : ''}`,
        );
      }
      const w = await createLifelineWorker({
        config: ctx.config,
        role: opts.role,
        nodeId: opts.node,
        logger: ctx.logger,
        workflowBundlePath: opts.workflowBundle,
        taskQueue: opts.taskQueue,
      });
      const stop = (sig: string) => {
        ctx.logger.info({ signal: sig }, 'shutting down worker');
        w.worker.shutdown();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      ctx.logger.info({ taskQueue: roleTaskQueue(opts.role, opts.node), storage: describeStorage(resolveStorage(ctx.config)) }, 'worker running');
      await w.run();
      ctx.logger.info('worker stopped');
    });

  program
    .command('smoke')
    .description('bring the stack up and run the smoke workflow (write an object, read it back, compare), print the result')
    .option('--json', 'machine-readable output')
    .option('--size <bytes>', 'size of the smoke object', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 64 * 1024 * 1024) throw new InvalidArgumentError('expected 1…67108864');
      return n;
    })
    .option('--node <id>', 'run the storage activities on this node agent (it must be running: lifeline worker --role node-agent --node <id>)', nodeIdArg)
    .action(async (opts: { json?: boolean; size?: number; node?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const stack = await bringUp(ctx);
      if (!opts.json) for (const r of stack) out(describeUp(r, ctx.config));
      const run = await runSmoke({ config: ctx.config, logger: ctx.logger, sizeBytes: opts.size, nodeId: opts.node });
      if (opts.json) json({ stack, smoke: run });
      else {
        out(
          `smoke: wrote ${run.result.bytes} bytes to s3://${run.result.bucket}/${run.result.key}, read them back: sha256 ${run.result.matched ? 'matches' : 'DIFFERS'} (${run.result.sha256.slice(0, 16)}…)`,
        );
        out(`smoke: workflow ${run.workflowId} on ${run.result.taskQueue} completed in ${(run.durationMs / 1000).toFixed(1)} s`);
        const ui = temporalUiUrl(stackSettings(ctx.config));
        if (ui && !ctx.config.temporal.address) out(`see it in the Temporal UI: ${ui}/namespaces/${ctx.config.temporal.namespace}/workflows/${run.workflowId}`);
      }
    });

  program
    .command('bundle')
    .description('prebuild the workflow bundle for production workers (lifeline worker --workflow-bundle <file>)')
    .requiredOption('--out <file>', 'where to write the bundle')
    .action(async (opts: { out: string }, cmd: Command) => {
      const ctx = context(cmd);
      // With payload encryption the bundle carries the failure converter that encodes messages and stack traces.
      const encrypted = payloadEncryptionEnabled(ctx.config);
      const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, ...(encrypted ? { failureConverterPath: FAILURE_CONVERTER_PATH } : {}) });
      writeFileSync(opts.out, code);
      ctx.logger.info({ out: opts.out, bytes: code.length }, 'workflow bundle written');
      out(opts.out);
    });

  registerKeysCommands(program);
  registerPayloadKeyCommand(program);
  registerVerifyCommand(program);
  registerSnapshotsCommands(program);
  registerRetentionCommands(program);
  registerSchedulesCommands(program);
  registerBackupCommands(program);
  registerEventCommands(program);
  registerIncidentCommands(program);
  registerAuditCommands(program);
  registerRecoverCommands(program);
  registerStorageCommands(program);
  registerMbomCommands(program);
  registerDemoCommand(program);
  addDrillReportCommand(registerDrillCommands(program));
  registerAlarmCommands(program);

  return program;
}

export async function main(argv = process.argv): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    const err = e as Error;
    if (e instanceof ConfigError) {
      process.stderr.write(scrubString(err.message) + '\n');
      if (debug && err.stack) process.stderr.write(scrubString(err.stack) + '\n');
      return 2;
    }
    if (e instanceof UserError) {
      process.stderr.write(`lifeline: ${scrubString(err.message)}\n`);
      if (debug && err.stack) process.stderr.write(scrubString(err.stack) + '\n');
      return 1;
    }
    // Temporal wraps the interesting part (e.g. WorkflowFailedError → ActivityFailure → ApplicationFailure): show the chain.
    const chain: string[] = [];
    for (let c: unknown = e, i = 0; c && i < 5; c = (c as Error).cause, i++) {
      const m = c instanceof Error ? c.message : String(c);
      if (m && !chain.includes(m)) chain.push(m.split('\n')[0]!);
    }
    const msg = scrubString(chain.join(': ') || String(e));
    process.stderr.write(`lifeline: ${msg}${debug ? '' : ' (run with --debug for details)'}\n`);
    if (debug) process.stderr.write(scrubString(err?.stack ?? String(e)) + '\n');
    return 1;
  }
}

// Exit explicitly: the Temporal native runtime may keep the event loop alive after workers stop.
main().then(
  (code) => process.exit(code),
  () => process.exit(1),
);
