/** `lifeline recover node <id>`: rebuild a lost node and resume its training from the last verified state. */
import { Command, InvalidArgumentError } from 'commander';
import { UserError } from '../config/errors';
import { nodeRecoveryPlan } from '../config/training-jobs';
import { connectClient } from '../workers/temporal';
import type { RecoverNodeProgress, RecoverNodeResult } from '../workflows/recover-node';
import { isValidNodeId, ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { collect, context, json, out } from './context';
import { follow, formatBytes, hasWorkers, workflowUiLink } from './runs';

/** `asset=snapshotId` pairs → a map; one line per mistake. */
export function parseSnapshotOverrides(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]{0,62})=([0-9a-f]{6,64})$/.exec(p);
    if (!m) throw new InvalidArgumentError(`--snapshot ${p}: expected <asset>=<snapshot id or prefix of at least 6 hex characters>`);
    if (m[1]! in out) throw new InvalidArgumentError(`--snapshot: asset ${m[1]} given twice`);
    out[m[1]!] = m[2]!;
  }
  return out;
}

export function formatRecoverResult(r: RecoverNodeResult): string {
  const lines = [`node ${r.node} recovered in ${Math.round(r.durationMs / 1000)} s (${r.startedAt} → ${r.finishedAt}; lost at ${r.failedAt})`];
  for (const a of r.assets) {
    lines.push(`  ${a.stage.padEnd(19)} ${a.asset}: snapshot ${a.snapshotId.slice(0, 12)} of ${a.snapshotTime} (${a.source}), ${a.files} file(s), ${formatBytes(a.bytes)}, every file's SHA-256 checked`);
  }
  for (const j of r.jobs) {
    lines.push(
      `  job ${j.job}: resumed from step ${j.restoredStep} (pid ${j.pid}), now past step ${j.confirmedStep}; RPO ${j.rpoSeconds} s` +
        (j.rpoSteps !== null ? `, ${j.rpoSteps} step(s) lost (step ${j.stepAtFailure} at the failure)` : ''),
    );
  }
  return lines.join('\n');
}

export function registerRecoverCommands(program: Command): void {
  const recover = program.command('recover').description('disaster recovery runbooks');
  recover
    .command('node')
    .description('rebuild a lost node: provision it, start its node agent, restore platform config, models and data sets, then checkpoints (last verified snapshots), and resume its training jobs')
    .argument('<id>', 'node id from the config')
    .option('--snapshot <asset=id>', 'restore this snapshot of the asset instead of its last verified one (repeatable)', collect, [] as string[])
    .option('--failed-at <time>', 'when the node was lost (ISO 8601; default now): the RPO is measured against it')
    .option('--wait', 'wait for the result, showing each step')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (nodeId: string, opts: { snapshot: string[]; failedAt?: string; wait?: boolean; json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      if (!isValidNodeId(nodeId)) throw new UserError(`invalid node id ${JSON.stringify(nodeId)}`);
      let plan;
      try {
        plan = nodeRecoveryPlan(ctx.config, nodeId);
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      const snapshots = parseSnapshotOverrides(opts.snapshot);
      for (const a of Object.keys(snapshots)) {
        if (!plan.assets.some((p) => p.asset === a)) throw new UserError(`--snapshot ${a}=…: asset ${a} is not on node ${nodeId} (its assets: ${plan.assets.map((p) => p.asset).join(', ') || 'none'})`);
      }
      const failedAt = opts.failedAt ?? new Date().toISOString();
      if (!Number.isFinite(Date.parse(failedAt))) throw new UserError(`--failed-at ${failedAt}: expected an ISO 8601 time`);
      const { client, connection } = await connectClient(ctx.config);
      try {
        const workflowId = `recover-node-${nodeId}-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        const handle = await client.workflow.start('recoverNodeWorkflow', {
          taskQueue: opts.taskQueue,
          workflowId,
          args: [{ node: nodeId, failedAt: new Date(failedAt).toISOString(), ...(Object.keys(snapshots).length ? { snapshots } : {}) }],
        });
        const ui = workflowUiLink(ctx.config, workflowId);
        if (!(await hasWorkers(client, opts.taskQueue))) {
          process.stderr.write(`lifeline: no worker polls ${opts.taskQueue}; the recovery waits until one runs (lifeline worker --role orchestrator)\n`);
        }
        if (!opts.wait) {
          if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui });
          else out(`recovery of node ${nodeId} started: workflow ${workflowId}${ui ? `\n${ui}` : ''}`);
          return;
        }
        if (!opts.json) out(`recovering node ${nodeId}: workflow ${workflowId}${ui ? `\n${ui}` : ''}`);
        let last = '';
        const outcome = await follow<RecoverNodeResult>(handle, async () => {
          if (opts.json) return;
          const p = await handle.query<RecoverNodeProgress>('progress');
          const line = p.step === 'compensating' ? `compensating after ${p.failedStep}: ${p.compensations.join(', ') || '…'}` : `step ${p.step} (${p.done.length} done)`;
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
        }, 1000);
        if (!outcome.ok) {
          if (opts.json) json({ workflowId, ui, ok: false, type: outcome.type, message: outcome.message, details: outcome.details });
          else process.stderr.write(`lifeline: ${outcome.message}\n`);
          process.exitCode = 1;
          return;
        }
        if (opts.json) json({ ui, ok: true, ...outcome.result });
        else out(formatRecoverResult(outcome.result));
      } finally {
        await connection.close().catch(() => {});
      }
    });
}
