/** `lifeline verify <asset>`: start (and optionally follow) a verification workflow. */
import { Command, InvalidArgumentError } from 'commander';
import type { VerifyProgress } from '../activities/verify';
import { UserError } from '../config/errors';
import { assetConfig } from '../tenancy/repositories';
import { connectClient } from '../workers/temporal';
import type { VerifyResult } from '../workflows/verify';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { context, json, out } from './context';
import { activityProgress, follow, formatBytes, hasWorkers, workflowUiLink } from './runs';

/** Exit code when a verification finds a corrupt snapshot. */
export const EXIT_CORRUPT = 3;

export function percentArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 100) throw new InvalidArgumentError('expected a percentage 0 < p ≤ 100');
  return n;
}

export function formatVerifyResult(r: VerifyResult): string {
  const lines = [
    `${r.mode} verification of ${r.asset} (tenant ${r.tenant}${r.mode === 'deep' ? `, ${r.samplePercent}% of packs` : ''}): ` +
      `${r.snapshotsChecked} snapshot(s) checked, ${r.verified} verified, ${r.corrupt} corrupt${r.forgotten ? `, ${r.forgotten} forgotten meanwhile` : ''}; ` +
      `${r.packsChecked} pack(s), ${formatBytes(r.bytesDownloaded)} downloaded`,
  ];
  if (r.corrupt > 0) {
    lines.push(`${r.problemCount} problem(s)${r.problemCount > r.problems.length ? `, first ${r.problems.length}` : ''}:`);
    for (const p of r.problems) lines.push(`  snapshot ${p.snapshotId.slice(0, 12)}  ${p.object}: ${p.problem}`);
    lines.push(`affected files: lifeline snapshots show <id>`);
  }
  return lines.join('\n');
}

export function registerVerifyCommand(program: Command): void {
  program
    .command('verify')
    .description('verify the snapshots of an asset (or one snapshot): shallow by default, --deep downloads and re-hashes packs; records the result with each snapshot')
    .argument('<asset>', 'asset name from the config')
    .option('--snapshot <id>', 'only this snapshot (id or unique prefix, at least 6 hex characters)')
    .option('--deep', 'download, decrypt and re-hash packs instead of checking presence, size and checksum only')
    .option('--sample <pct>', 'with --deep: percentage of packs to check (default 100)', percentArg)
    .option('--wait', 'wait for the result, showing progress (exit 3 when a snapshot is corrupt)')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (asset: string, opts: { snapshot?: string; deep?: boolean; sample?: number; wait?: boolean; json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      assetConfig(ctx.config, asset);
      if (opts.sample !== undefined && !opts.deep) throw new UserError('--sample applies to --deep only');
      const mode = opts.deep ? 'deep' : 'shallow';
      const { client, connection } = await connectClient(ctx.config);
      try {
        const workflowId = `lifeline:${asset}:verify-${mode}-manual-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        const handle = await client.workflow.start('verifyWorkflow', {
          taskQueue: opts.taskQueue,
          workflowId,
          args: [{ asset, snapshot: opts.snapshot, mode, ...(opts.deep ? { samplePercent: opts.sample ?? 100 } : {}) }],
        });
        const ui = workflowUiLink(ctx.config, workflowId);
        if (!(await hasWorkers(client, opts.taskQueue))) {
          process.stderr.write(`lifeline: no worker polls ${opts.taskQueue}; the verification waits until one runs (lifeline worker --role orchestrator)\n`);
        }
        if (!opts.wait) {
          if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui });
          else out(`verification started: workflow ${workflowId}${ui ? `\n${ui}` : ''}`);
          return;
        }
        if (!opts.json) out(`verifying ${asset} (${mode}): workflow ${workflowId}${ui ? `\n${ui}` : ''}`);
        let last = '';
        const outcome = await follow<VerifyResult>(handle, async () => {
          const [p] = await activityProgress<VerifyProgress>(handle);
          if (!p || opts.json) return;
          const line = p.phase === 'checking' ? `checking ${p.snapshots} snapshot(s): ${p.packsDone}/${p.packsTotal} packs` : `${p.phase} ${p.snapshots} snapshot(s)…`;
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
        });
        const result = outcome.ok ? outcome.result : outcome.type === 'IntegrityFailure' ? (outcome.details[0] as VerifyResult) : null;
        if (!result) throw new Error(`verification workflow ${workflowId} failed: ${!outcome.ok ? outcome.message : ''}`);
        if (opts.json) json({ workflowId, ui, ...result });
        else out(formatVerifyResult(result));
        if (result.corrupt > 0) process.exitCode = EXIT_CORRUPT;
      } finally {
        await connection.close().catch(() => {});
      }
    });
}
