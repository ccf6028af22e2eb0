/** `lifeline backup run <asset>` and `lifeline restore <asset>`: start the workflows, optionally follow them. */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { Command, Option } from 'commander';
import { UserError } from '../config/errors';
import { sealIncludes } from '../backups/include';
import { assetConfig, loadTenantIdentities, tenantConfig } from '../tenancy/repositories';
import { openAuditLog, safeUserName } from '../audit/open';
import { restoreEnded } from '../audit/workflow-entries';
import { connectClient } from '../workers/temporal';
import { backupWorkflow, type BackupWorkflowResult } from '../workflows/backup';
import { restoreWorkflow, type RestoreFrom, type RestoreWorkflowResult } from '../workflows/restore';
import { nodeTaskQueue, ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { collect, context, json, nodeIdArg, out, type Ctx } from './context';
import { formatBytes, waitWithProgress, workflowLink } from './progress';

/** `<kind>-<asset>-<UTC time>-<random>`: unique, sortable, readable in the UI. */
export function workflowIdFor(kind: 'backup' | 'restore', asset: string, now = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `${kind}-${asset}-${t}-${randomBytes(3).toString('hex')}`;
}

function labelArg(v: string, prev: Record<string, string> = {}): Record<string, string> {
  const m = /^([^=\s]+)=(.*)$/.exec(v);
  if (!m) throw new UserError(`--label expects key=value, got ${JSON.stringify(v)}`);
  return { ...prev, [m[1]!]: m[2]! };
}

// Temporal API enum values (temporal.api.enums.v1), as in cli/status.ts.
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

/**
 * A started workflow waits silently when no worker polls its queues: say so
 * (without failing: a worker may be about to start).
 */
export async function missingWorkers(client: Client, namespace: string, queues: { orchestrator: string; node: string }): Promise<string[]> {
  const pollers = async (name: string, type: number) => {
    try {
      const res = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name, kind: TASK_QUEUE_KIND_NORMAL }, taskQueueType: type });
      return (res.pollers ?? []).length;
    } catch {
      return -1; // unknown: no warning
    }
  };
  const out: string[] = [];
  if ((await pollers(queues.orchestrator, TASK_QUEUE_TYPE_WORKFLOW)) === 0) {
    out.push(`no orchestrator worker polls ${queues.orchestrator} (start one: lifeline worker --role orchestrator); the workflow waits until one does`);
  }
  if ((await pollers(nodeTaskQueue(queues.node), TASK_QUEUE_TYPE_ACTIVITY)) === 0) {
    out.push(`no node agent polls ${nodeTaskQueue(queues.node)} (start one on that node: lifeline worker --role node-agent --node ${queues.node}); the work waits until one does`);
  }
  return out;
}

/**
 * A restore for one tenant of another tenant's asset: refused before anything
 * starts, and the refusal is an audit entry (outcome denied, the requesting
 * tenant, actor = the OS user). A snapshot id of another tenant under the
 * tenant's own asset is refused by the RestoreWorkflow, which audits it too.
 */
async function refuseCrossTenantRestore(ctx: Ctx, r: { asset: string; assetTenant: string; tenant: string; snapshot?: string }): Promise<never> {
  const why = `restore for tenant ${r.tenant} refused: asset ${r.asset} belongs to tenant ${r.assetTenant}, and a tenant's restore reads only its own snapshots`;
  const entry = restoreEnded(
    { asset: r.asset, tenant: r.tenant, node: assetConfig(ctx.config, r.asset).node, ownerTenant: r.assetTenant, ...(r.snapshot && /^[0-9a-f]{8,64}$/.test(r.snapshot) ? { snapshot: r.snapshot } : {}) },
    { ok: false, cancelled: false, denied: true, failureType: 'TenantMismatch' },
  );
  try {
    const log = await openAuditLog(ctx.config, { logger: ctx.logger });
    await log.record({ ...entry, actor: { kind: 'user', id: safeUserName() }, details: { ...entry.details, via: 'cli' } });
  } catch (err) {
    throw new UserError(`${why}; the refusal could NOT be recorded in the audit log: ${(err as Error).message}`);
  }
  throw new UserError(why);
}

export function describeBackup(r: BackupWorkflowResult): string {
  const s = r.stats;
  return [
    `snapshot ${r.snapshotId}`,
    `  asset ${r.asset} (tenant ${r.tenant}, node ${r.node}), trigger ${r.trigger}${r.parentId ? `, parent ${r.parentId.slice(0, 12)}` : ''}`,
    `  ${s.files} files, ${s.dirs} folders, ${s.symlinks} symlinks, ${formatBytes(s.totalBytes)}; read ${formatBytes(s.readBytes)}, new ${formatBytes(s.newBytes)}, uploaded ${formatBytes(s.uploadedBytes)}`,
    `  ${r.batches} batch${r.batches === 1 ? '' : 'es'} in ${r.runs} workflow run${r.runs === 1 ? '' : 's'}, ${(r.durationMs / 1000).toFixed(1)} s${r.attempts > 1 ? `, ${r.attempts} attempts (the asset changed during the backup)` : ''}${r.waitedSeconds ? `, waited ${r.waitedSeconds} s for a complete checkpoint` : ''}`,
    ...(r.skipped ? [`  ${r.skipped} entries skipped (not files, folders or symlinks; listed in the node agent's work folder)`] : []),
    ...(r.excluded ? [`  ${r.excluded} temporary entries left out`] : []),
  ].join('\n');
}

export function describeRestore(r: RestoreWorkflowResult): string {
  return [
    `restored snapshot ${r.snapshotId} (${r.snapshotTime}) of ${r.asset} to ${r.node}:${r.target}`,
    `  ${r.files} files, ${r.dirs} folders, ${r.symlinks} symlinks, ${formatBytes(r.bytes)} in ${(r.durationMs / 1000).toFixed(1)} s; every file's SHA-256 verified`,
  ].join('\n');
}

export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('back up assets');

  backup
    .command('run')
    .description("start a backup of an asset now (BackupWorkflow); prints the workflow id and Temporal UI link")
    .argument('<asset>', 'asset name from the config')
    .option('--wait', 'follow the backup with a progress bar until it ends, then print the snapshot')
    .option('--json', 'machine-readable output')
    .option('--label <key=value>', 'extra label recorded with the snapshot (repeatable)', labelArg)
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (asset: string, opts: { wait?: boolean; json?: boolean; label?: Record<string, string>; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const a = assetConfig(ctx.config, asset);
      const { client, connection } = await connectClient(ctx.config);
      try {
        const workflowId = workflowIdFor('backup', asset);
        const handle = await client.workflow.start(backupWorkflow, {
          taskQueue: opts.taskQueue,
          workflowId,
          args: [{ asset, trigger: 'manual', labels: opts.label }],
        });
        const ui = workflowLink(ctx.config, workflowId);
        const warnings = await missingWorkers(client, ctx.config.temporal.namespace, { orchestrator: opts.taskQueue, node: a.node });
        if (!opts.json) {
          out(`backup of ${asset} started: workflow ${workflowId}`);
          if (ui) out(`  ${ui}`);
          for (const w of warnings) process.stderr.write(`lifeline: warning: ${w}\n`);
        }
        if (!opts.wait) {
          if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui, warnings });
          return;
        }
        const result = await waitWithProgress<BackupWorkflowResult>(client, workflowId, { quiet: opts.json });
        if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui, warnings, result });
        else out(describeBackup(result));
      } finally {
        await connection.close().catch(() => {});
      }
    });

  program
    .command('restore')
    .description("restore a snapshot of an asset into a folder on a node (RestoreWorkflow); every file's SHA-256 is verified")
    .argument('<asset>', 'asset name from the config')
    .requiredOption('--target <dir>', 'folder to restore into, on the destination node (relative paths: against the current directory)')
    .option('--snapshot <id>', 'snapshot id or unique prefix (default: the newest snapshot of the asset)')
    .addOption(new Option('--from <which>', 'which snapshot when --snapshot is not given').choices(['latest', 'last-verified']).default('latest'))
    .option('--node <id>', "destination node (default: the asset's node); its node agent writes the files", nodeIdArg)
    .option('--tenant <name>', "the tenant this restore is for (default: the asset's); another tenant's asset or snapshot is refused and audited")
    .option('--include <path>', 'restore only this file or folder of the snapshot (repeatable)', collect)
    .option('--overwrite', 'allow a non-empty target; files of the same name are replaced')
    .option('--wait', 'follow the restore with a progress bar until it ends')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(
      async (
        asset: string,
        opts: { target: string; snapshot?: string; from: 'latest' | 'last-verified'; node?: string; tenant?: string; include?: string[]; overwrite?: boolean; wait?: boolean; json?: boolean; taskQueue: string },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        const a = assetConfig(ctx.config, asset);
        if (opts.snapshot !== undefined && cmd.getOptionValueSource('from') === 'cli') throw new UserError('give either --snapshot or --from, not both');
        if (opts.snapshot !== undefined && !/^[0-9a-f]{6,64}$/.test(opts.snapshot)) throw new UserError(`--snapshot expects a snapshot id or a unique prefix of at least 6 hex characters, got ${JSON.stringify(opts.snapshot)}`);
        if (opts.node !== undefined && !(opts.node in ctx.config.nodes)) {
          throw new UserError(`unknown node ${JSON.stringify(opts.node)} (declared: ${Object.keys(ctx.config.nodes).join(', ') || 'none'})`);
        }
        if (opts.tenant !== undefined) {
          tenantConfig(ctx.config, opts.tenant);
          if (opts.tenant !== a.tenant) await refuseCrossTenantRestore(ctx, { asset, assetTenant: a.tenant, tenant: opts.tenant, snapshot: opts.snapshot });
        }
        const from: RestoreFrom = opts.snapshot !== undefined ? { snapshotId: opts.snapshot } : opts.from;
        let includeSealed: string | undefined;
        if (opts.include?.length) {
          // Seal the paths to the tenant so no file name of the asset enters the workflow history.
          let recipients: string[];
          try {
            recipients = await (await loadTenantIdentities(ctx.config, a.tenant)).currentRecipients();
          } catch (err) {
            throw new UserError(`--include needs tenant ${a.tenant}'s identity on this machine to seal the paths: ${(err as Error).message}`);
          }
          includeSealed = await sealIncludes(opts.include, recipients);
        }
        const target = resolve(opts.target);
        const { client, connection } = await connectClient(ctx.config);
        try {
          const workflowId = workflowIdFor('restore', asset);
          const handle = await client.workflow.start(restoreWorkflow, {
            taskQueue: opts.taskQueue,
            workflowId,
            args: [{ asset, from, target, node: opts.node, tenant: opts.tenant, includeSealed, includeCount: opts.include?.length, overwrite: opts.overwrite }],
          });
          const ui = workflowLink(ctx.config, workflowId);
          const warnings = await missingWorkers(client, ctx.config.temporal.namespace, { orchestrator: opts.taskQueue, node: opts.node ?? a.node });
          if (!opts.json) {
            out(`restore of ${asset} to ${opts.node ?? a.node}:${target} started: workflow ${workflowId}`);
            if (ui) out(`  ${ui}`);
            for (const w of warnings) process.stderr.write(`lifeline: warning: ${w}\n`);
          }
          if (!opts.wait) {
            if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui, warnings });
            return;
          }
          const result = await waitWithProgress<RestoreWorkflowResult>(client, workflowId, { quiet: opts.json });
          if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui, warnings, result });
          else out(describeRestore(result));
        } finally {
          await connection.close().catch(() => {});
        }
      },
    );
}
