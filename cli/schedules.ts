/** `lifeline schedules apply|list|pause|resume|trigger`: the policies' Temporal Schedules. */
import { Command } from 'commander';
import { applySchedules, listSchedules, pauseSchedules, resumeSchedules, triggerSchedule, type ScheduleStatus } from '../schedules/temporal';
import { connectClient } from '../workers/temporal';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { context, json, out, type Ctx } from './context';

async function withClient<T>(ctx: Ctx, fn: (client: Awaited<ReturnType<typeof connectClient>>['client']) => Promise<T>): Promise<T> {
  const { client, connection } = await connectClient(ctx.config);
  try {
    return await fn(client);
  } finally {
    await connection.close().catch(() => {});
  }
}

function when(iso: string | null | undefined): string {
  return iso ? iso.slice(0, 19).replace('T', ' ') : '—';
}

function formatList(list: ScheduleStatus[]): string {
  if (list.length === 0) return 'no Lifeline schedules (run `lifeline schedules apply`)';
  const rows = [
    ['ID', 'ACTION', 'SPEC', 'NEXT RUN (UTC)', 'LAST RESULT', 'PAUSED'],
    ...list.map((s) => [
      s.id,
      s.action,
      s.spec,
      s.paused ? '—' : when(s.nextRun),
      s.lastRun ? `${s.lastRun.status.toLowerCase()} ${when(s.lastRun.startedAt)}` : 'never ran',
      `${s.paused ? 'yes' : 'no'}${s.inSync ? '' : ' (config changed: apply)'}`,
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function registerSchedulesCommands(program: Command): void {
  const schedules = program.command('schedules').description("the policies' Temporal Schedules (one per asset and action)");

  schedules
    .command('apply')
    .description('create or update the schedules the config asks for, and delete the ones it no longer asks for (idempotent)')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'task queue the scheduled workflows run on', ORCHESTRATOR_TASK_QUEUE)
    .action(async (opts: { json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const report = await withClient(ctx, (client) => applySchedules(client, ctx.config, { taskQueue: opts.taskQueue }));
      ctx.logger.info({ created: report.created.length, updated: report.updated.length, deleted: report.deleted.length }, 'schedules applied');
      if (opts.json) json(report);
      else {
        for (const [verb, ids] of [['created', report.created], ['updated', report.updated], ['deleted', report.deleted], ['unchanged', report.unchanged]] as const) {
          for (const id of ids) out(`${verb.padEnd(10)}${id}`);
        }
        out(`${report.created.length} created, ${report.updated.length} updated, ${report.deleted.length} deleted, ${report.unchanged.length} unchanged`);
      }
    });

  schedules
    .command('list')
    .description('schedules of this installation: spec, next run, last result, paused')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'task queue the scheduled workflows run on (to compare with the config)', ORCHESTRATOR_TASK_QUEUE)
    .action(async (opts: { json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const list = await withClient(ctx, (client) => listSchedules(client, ctx.config, { taskQueue: opts.taskQueue }));
      if (opts.json) json(list);
      else out(formatList(list));
    });

  for (const [name, verb, fn] of [
    ['pause', 'paused', pauseSchedules],
    ['resume', 'resumed', resumeSchedules],
  ] as const) {
    schedules
      .command(name)
      .description(`${name} one schedule (lifeline:<asset>:<action>) or every schedule of an asset`)
      .argument('<id|asset>', 'schedule id or asset name')
      .option('--note <text>', 'why (shown by Temporal)')
      .option('--json', 'machine-readable output')
      .action(async (ref: string, opts: { note?: string; json?: boolean }, cmd: Command) => {
        const ctx = context(cmd);
        const ids = await withClient(ctx, (client) => fn(client, ctx.config, ref, opts.note ?? `${verb} with lifeline schedules ${name}`));
        if (opts.json) json({ [verb]: ids });
        else for (const id of ids) out(`${verb} ${id}`);
      });
  }

  schedules
    .command('trigger')
    .description("run a schedule's action now")
    .argument('<id>', 'schedule id (lifeline:<asset>:<action>)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      await withClient(ctx, (client) => triggerSchedule(client, ctx.config, id));
      if (opts.json) json({ triggered: id });
      else out(`triggered ${id}`);
    });
}
