/**
 * `lifeline retention run <asset>`: apply the asset's keep rules now and
 * collect garbage (the retention workflow, on a worker). `--dry-run` decides
 * locally with the same code and deletes nothing.
 */
import { Command } from 'commander';
import { keepPolicyOf, type RetentionSummary } from '../activities/retention';
import { planRetention, type RetentionPlanEntry } from '../engine/retention-plan';
import type { GcReport } from '../engine/retention';
import { assetConfig, TenantRepositories } from '../tenancy/repositories';
import { connectClient } from '../workers/temporal';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import type { RetentionResult } from '../workflows/retention';
import { context, json, out } from './context';
import { follow, formatBytes, hasWorkers, workflowUiLink } from './runs';

function policyText(p: object): string {
  const parts = Object.entries(p).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : 'no keep rules (everything is kept)';
}

function entryLine(verb: string, e: Pick<RetentionPlanEntry, 'id' | 'time'> & Partial<RetentionPlanEntry>): string {
  return `${verb.padEnd(7)}${e.id.slice(0, 12)}  ${e.time.slice(0, 19).replace('T', ' ')}  ${(e.verification ?? '').padEnd(10)}  ${(e.reasons ?? []).join('; ')}`.trimEnd();
}

function gcText(gc: GcReport): string {
  return (
    `garbage collection: ${gc.condemned} pack(s) condemned, ${gc.deleted} deleted (${formatBytes(gc.deletedBytes)}), ${gc.rescued} rescued, ` +
    `${gc.partiallyUsedPacks} partly used` +
    (gc.deferred.length ? `; deferred: ${gc.deferred.map((d) => `${d.tombstone} (${d.reason})`).join('; ')}` : '')
  );
}

export function registerRetentionCommands(program: Command): void {
  const retention = program.command('retention').description('apply keep rules and collect garbage');

  retention
    .command('run')
    .description("apply the asset policy's keep rules now (never a held, quarantined or newest verified snapshot), then collect garbage")
    .argument('<asset>', 'asset name from the config')
    .option('--dry-run', 'only print what would be kept and forgotten, and why')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (asset: string, opts: { dryRun?: boolean; json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const a = assetConfig(ctx.config, asset);
      const { policy, gcGraceMs } = keepPolicyOf(ctx.config, asset);

      if (opts.dryRun) {
        const repo = await new TenantRepositories(ctx.config, undefined, ctx.logger).repository(a.tenant);
        const plan = await planRetention(repo, asset, policy, {
          onWarning: (w) => ctx.logger.warn({ key: w.key, reason: w.reason }, 'ignored an untrustworthy record'),
        });
        if (opts.json) {
          json({ dryRun: true, asset, tenant: a.tenant, policy, gcGraceMs, keep: plan.keep, forget: plan.forget });
          return;
        }
        out(`retention of ${asset} (policy ${a.policy}: ${policyText(policy)}) — dry run, nothing is deleted`);
        for (const k of plan.keep) out(entryLine('keep', k));
        for (const f of plan.forget) out(entryLine('forget', f));
        out(`${plan.keep.length} kept, ${plan.forget.length} to forget`);
        return;
      }

      const { client, connection } = await connectClient(ctx.config);
      try {
        const workflowId = `lifeline:${asset}:retention-manual-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        const handle = await client.workflow.start('retentionWorkflow', { taskQueue: opts.taskQueue, workflowId, args: [{ asset }] });
        const ui = workflowUiLink(ctx.config, workflowId);
        if (!(await hasWorkers(client, opts.taskQueue))) {
          process.stderr.write(`lifeline: no worker polls ${opts.taskQueue}; retention waits until one runs (lifeline worker --role orchestrator)\n`);
        }
        if (!opts.json) out(`retention of ${asset}: workflow ${workflowId}${ui ? `\n${ui}` : ''}`);
        const outcome = await follow<RetentionResult>(handle, async () => {});
        if (!outcome.ok) throw new Error(`retention workflow ${workflowId} failed: ${outcome.message}`);
        const { retention: r, gc, gcSkipped } = outcome.result;
        if (opts.json) {
          json({ workflowId, ui, ...outcome.result });
          return;
        }
        printSummary(r);
        out(gc ? gcText(gc) : `garbage collection skipped: ${gcSkipped ?? 'dry run'}`);
      } finally {
        await connection.close().catch(() => {});
      }
    });
}

function printSummary(r: RetentionSummary): void {
  for (const k of r.kept) out(entryLine('kept', k));
  for (const f of r.forgotten) out(entryLine('forgot', f));
  for (const s of r.spared) out(`spared ${s.id.slice(0, 12)}  ${s.reason}`);
  out(`${r.keptCount} kept, ${r.forgottenCount} forgotten${r.keptCount > r.kept.length || r.forgottenCount > r.forgotten.length ? ' (lists shortened)' : ''}`);
}
