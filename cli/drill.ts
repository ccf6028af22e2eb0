/**
 * `lifeline drill run|schedule|cancel`: chaos drills in staging. A scenario is
 * validated (and refused for a non-staging installation) before anything
 * starts; `run` follows the drill's `progress` query and prints the verdict,
 * RTO/RPO against the objectives and the report path (exit 1 when the drill
 * fails); `schedule` creates or updates a Temporal Schedule that runs it.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ScheduleNotFoundError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { DurationSchema } from '../config/platform';
import { loadScenario, scenarioProblems, type Scenario } from '../drills/scenario';
import { missingInjectors } from '../drills/faults';
import { scheduleScope } from '../schedules/desired';
import { connectClient } from '../workers/temporal';
import type { DrillSummary } from '../activities/drill';
import type { DrillProgress } from '../workflows/drill';
import { DRILL_TASK_QUEUE, ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { context, json, out } from './context';
import { follow, hasWorkers, workflowUiLink } from './runs';

export const DRILL_SCHEDULE_PREFIX = 'lifeline-drill:';

/** Loads the scenario and refuses, before anything starts, what may not run here. */
export async function checkedScenario(config: LoadedConfig, file: string): Promise<Scenario> {
  const scenario = await loadScenario(file);
  const problems = scenarioProblems(scenario, config);
  const missing = missingInjectors(scenario.faults.map((f) => f.kind));
  if (missing.length) problems.push(`fault kind(s) ${missing.join(', ')} cannot be injected by this build`);
  if (problems.length) throw new UserError(`drill ${scenario.name} refused, nothing started:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return scenario;
}

export function drillWorkflowId(scenario: string, at = new Date()): string {
  return `drill-${scenario}-${at.toISOString().replace(/[:.]/g, '-')}`;
}

export function formatDrillRunResult(s: DrillSummary): string {
  const lines = [`drill ${s.id}: ${s.verdict.toUpperCase()}${s.aborted ? ' (aborted)' : ''}`];
  lines.push(`  RTO ${s.rtoSeconds === null ? 'not measured' : `${s.rtoSeconds} s`}; RPO ${s.rpoSeconds === null ? 'not measured' : `${s.rpoSeconds} s`}${s.rpoSteps !== null ? ` (${s.rpoSteps} training step(s) lost)` : ''}`);
  for (const o of s.objectives) lines.push(`  ${o.pass ? 'pass' : 'FAIL'}  ${o.name.padEnd(26)} target ${o.target.padEnd(18)} measured ${o.measured ?? '—'}`);
  if (s.faultsLeft.length) lines.push(`  FAULTS LEFT ACTIVE: ${s.faultsLeft.join(', ')}`);
  for (const e of s.errors) lines.push(`  ! ${e}`);
  lines.push(`  report ${s.htmlPath ?? s.jsonPath}${s.htmlPath ? ` (JSON: ${s.jsonPath})` : ''}`);
  return lines.join('\n');
}

function progressLine(p: DrillProgress): string {
  const faults = p.faults.map((f) => `${f.id} ${f.state}`).join(', ');
  return `drill: ${p.step}; faults: ${faults}${p.incident ? `; incident ${p.incident} ${p.incidentStatus ?? ''}` : ''}`;
}

function everyArg(v: string): string {
  if (!DurationSchema.safeParse(v).success) throw new InvalidArgumentError('expected a duration like 30m, 12h or 7d');
  return v;
}

async function withClient<T>(config: LoadedConfig, f: (client: Client) => Promise<T>): Promise<T> {
  const { client, connection } = await connectClient(config);
  try {
    return await f(client);
  } finally {
    await connection.close().catch(() => {});
  }
}

interface QueueOpts {
  taskQueue: string;
  orchestratorTaskQueue: string;
}

export function registerDrillCommands(program: Command): Command {
  const drill = program.command('drill').alias('drills').description('chaos drills in staging: inject faults, let Lifeline recover, measure RTO/RPO');

  drill
    .command('run')
    .description('run a drill scenario now and follow it; prints the verdict, RTO/RPO against the objectives and the report path (exit 1 when it fails)')
    .argument('<scenario>', 'the scenario YAML file')
    .option('--json', 'machine-readable output')
    .option('--no-wait', 'start the drill and return its workflow id')
    .option('--task-queue <name>', 'drill worker task queue', DRILL_TASK_QUEUE)
    .option('--orchestrator-task-queue <name>', 'orchestrator task queue (incidents, recoveries)', ORCHESTRATOR_TASK_QUEUE)
    .action(async (file: string, opts: QueueOpts & { json?: boolean; wait: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const scenario = await checkedScenario(ctx.config, file);
      await withClient(ctx.config, async (client) => {
        const workflowId = drillWorkflowId(scenario.name);
        const handle = await client.workflow.start('chaosDrillWorkflow', {
          taskQueue: opts.taskQueue,
          workflowId,
          args: [{ scenario, orchestratorTaskQueue: opts.orchestratorTaskQueue }],
        });
        const ui = workflowUiLink(ctx.config, workflowId);
        if (!(await hasWorkers(client, opts.taskQueue))) process.stderr.write(`lifeline: no drill worker polls ${opts.taskQueue}; the drill waits until one runs (lifeline worker --role drill)\n`);
        if (!opts.wait) {
          if (opts.json) json({ workflowId, runId: handle.firstExecutionRunId, ui });
          else out(`drill ${scenario.name} started: workflow ${workflowId}${ui ? `\n${ui}` : ''}`);
          return;
        }
        if (!opts.json) process.stderr.write(`drill ${scenario.name}: workflow ${workflowId}${ui ? `\n${ui}` : ''}\n`);
        let last = '';
        const outcome = await follow<DrillSummary>(handle, async () => {
          if (opts.json) return;
          const line = progressLine(await handle.query<DrillProgress>('progress'));
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
        }, 1000);
        if (!outcome.ok) {
          if (opts.json) json({ workflowId, ui, ok: false, type: outcome.type, message: outcome.message });
          else process.stderr.write(`lifeline: drill ${workflowId} ${outcome.type === 'DrillRefused' || outcome.type === 'DrillPreconditionFailed' ? 'refused' : 'failed'}: ${outcome.message}\n`);
          process.exitCode = 1;
          return;
        }
        if (opts.json) json({ workflowId, ui, ok: true, ...outcome.result });
        else out(formatDrillRunResult(outcome.result));
        if (outcome.result.verdict !== 'pass') process.exitCode = 1;
      });
    });

  drill
    .command('schedule')
    .description(`run a drill scenario on a Temporal Schedule (id ${DRILL_SCHEDULE_PREFIX}<scenario name>; created, or updated when it exists)`)
    .argument('<scenario>', 'the scenario YAML file')
    .option('--every <duration>', 'interval, e.g. 7d', everyArg)
    .option('--cron <expression>', 'cron expression, e.g. "0 3 * * 1"')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'drill worker task queue', DRILL_TASK_QUEUE)
    .option('--orchestrator-task-queue <name>', 'orchestrator task queue (incidents, recoveries)', ORCHESTRATOR_TASK_QUEUE)
    .action(async (file: string, opts: QueueOpts & { every?: string; cron?: string; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      if (!opts.every === !opts.cron) throw new UserError('drill schedule: give exactly one of --every <duration> or --cron <expression>');
      const scenario = await checkedScenario(ctx.config, file);
      const scheduleId = `${DRILL_SCHEDULE_PREFIX}${scenario.name}`;
      const spec = opts.every ? { intervals: [{ every: opts.every }] } : { cronExpressions: [opts.cron!] };
      const action = {
        type: 'startWorkflow' as const,
        workflowType: 'chaosDrillWorkflow',
        // Temporal appends the scheduled time, so each run has its own id.
        workflowId: `drill-${scenario.name}`,
        taskQueue: opts.taskQueue,
        args: [{ scenario, orchestratorTaskQueue: opts.orchestratorTaskQueue }],
      };
      const state = await withClient(ctx.config, async (client) => {
        const handle = client.schedule.getHandle(scheduleId);
        try {
          await handle.describe();
          await handle.update((prev) => ({ ...prev, spec, action, policies: { ...prev.policies, overlap: 'SKIP' } }));
          return 'updated';
        } catch (err) {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
          await client.schedule.create({
            scheduleId,
            spec,
            action,
            policies: { overlap: 'SKIP', pauseOnFailure: false },
            memo: { lifelineDrill: { scope: scheduleScope(ctx.config), scenario: scenario.name } },
          });
          return 'created';
        }
      });
      const what = opts.every ? `every ${opts.every}` : `cron ${opts.cron}`;
      if (opts.json) json({ scheduleId, state, spec: what });
      else out(`drill schedule ${scheduleId} ${state}: ${what} (drill worker queue ${opts.taskQueue})`);
    });

  drill
    .command('cancel')
    .description('abort a running drill: every fault it injected is reverted, the incident it caused is cancelled, and the report says aborted')
    .argument('<id>', 'the drill workflow id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = context(cmd);
      await withClient(ctx.config, async (client) => {
        try {
          await client.workflow.getHandle(id).cancel();
        } catch (err) {
          if (err instanceof WorkflowNotFoundError) throw new UserError(`no running drill ${id}`);
          throw err;
        }
      });
      out(`drill ${id}: cancel requested; its faults are being reverted`);
    });

  return drill;
}
