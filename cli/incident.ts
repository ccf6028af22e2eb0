/**
 * Incident commands:
 *   lifeline event node-lost|integrity-failure|suspected-compromise|manual …   (same as `incident open`)
 *   lifeline incident open <type> …, list [--json], show <id> [--json],
 *                     approve <id> --step <s> [--actor <name>] [--reason <r>],
 *                     reject <id> --step <s> --reason <r> [--actor <name>]
 */
import { userInfo } from 'node:os';
import { Command } from 'commander';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { durationMs } from '../config/platform';
import type { LoadedConfig } from '../config/load';
import { nodeHealthWorkflow, type NodeHealthInput } from '../workflows/node-health';
import { UserError } from '../config/errors';
import { incidentTrigger, openIncident } from '../events/dispatch';
import { parseEvent, type IncidentEvent } from '../events/schema';
import { INCIDENT_TYPES, type IncidentType } from '../incidents/model';
import { connectClient } from '../workers/temporal';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import type { IncidentView } from '../workflows/incident';
import { collect, context, json, out, type Ctx } from './context';
import { workflowLink } from './progress';
import { applicationFailureOf } from './runs';

interface EventOpts {
  node?: string[];
  asset?: string[];
  tenant?: string;
  snapshot?: string;
  object?: string;
  detectedAt?: string;
  compromisedAt?: string;
  source?: string;
  details?: string;
  summary?: string;
  severity?: string;
  bucket?: string;
  key?: string[];
  count?: string;
  action?: string[];
  principal?: string[];
  json?: boolean;
  taskQueue: string;
  actor?: string;
}

const defaultActor = () => {
  try {
    return `user:${userInfo().username}`;
  } catch {
    return 'user:unknown';
  }
};

/** The raw event from the command line (validation is the schema's: one problem per field). */
export function eventFromOptions(type: IncidentType, o: EventOpts): Record<string, unknown> {
  const one = (v?: string[]) => (v && v.length ? v[v.length - 1] : undefined);
  const list = (v?: string[]) => (v && v.length ? v : undefined);
  const def = (x: Record<string, unknown>) => Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined));
  switch (type) {
    case 'node-lost':
      return def({ type, node: one(o.node), detectedAt: o.detectedAt });
    case 'integrity-failure':
      return def({ type, tenant: o.tenant, asset: one(o.asset), snapshot: o.snapshot, object: o.object });
    case 'suspected-compromise':
      return def({ type, nodes: list(o.node), assets: list(o.asset), compromisedAt: o.compromisedAt, source: o.source, details: o.details });
    case 'manual':
      return def({ type, summary: o.summary, nodes: list(o.node), assets: list(o.asset), severity: o.severity });
    case 'storage-tamper':
      // count stays a string when it is not a number, so the schema names the field
      return def({ type, bucket: o.bucket, keys: list(o.key), count: o.count === undefined ? undefined : /^\d+$/.test(o.count) ? Number(o.count) : o.count, actions: list(o.action), principals: list(o.principal), source: o.source });
  }
}

function addEventOptions(cmd: Command): Command {
  return cmd
    .option('--node <id>', 'node (repeat for several)', collect, [])
    .option('--asset <name>', 'asset (repeat for several)', collect, [])
    .option('--tenant <name>', 'integrity-failure: tenant of the asset')
    .option('--snapshot <id>', 'integrity-failure: the corrupt snapshot')
    .option('--object <key>', 'integrity-failure: the damaged object')
    .option('--detected-at <time>', 'node-lost: when the node was last known alive (ISO time)')
    .option('--compromised-at <time>', 'suspected-compromise: since when (ISO time); snapshots after it become suspect')
    .option('--source <who>', 'suspected-compromise, storage-tamper: the detector or person reporting it')
    .option('--details <text>', 'suspected-compromise: details')
    .option('--summary <text>', 'manual: what happened')
    .option('--severity <level>', 'manual: low, medium, high or critical')
    .option('--bucket <name>', 'storage-tamper: the bucket')
    .option('--key <key>', 'storage-tamper: an affected object key (repeat, at most 20)', collect, [])
    .option('--count <n>', 'storage-tamper: objects affected in all (default: the number of keys)')
    .option('--action <action>', 'storage-tamper: delete, overwrite, write, retention, legal-hold or tagging (repeat)', collect, [])
    .option('--principal <id>', 'storage-tamper: who made the change (repeat)', collect, [])
    .option('--actor <name>', 'who reports it (default: user:<OS user>)')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE);
}

async function openFromCli(ctx: Ctx, type: IncidentType, o: EventOpts): Promise<void> {
  // Validate before connecting: a malformed event fails fast and starts nothing.
  const ev = parseEvent(eventFromOptions(type, o)) as IncidentEvent;
  const trigger = incidentTrigger(ctx.config, ev, o.actor ?? defaultActor());
  await withClient(ctx, async (client) => {
    const { workflowId } = await openIncident(client, o.taskQueue, trigger);
    const ui = workflowLink(ctx.config, workflowId);
    if (o.json) json({ accepted: true, type, incident: workflowId, ui });
    else {
      out(`${type} incident ${workflowId}: opened (or joined the open one); containing, then waiting for approval of destructive steps`);
      out(`  lifeline incident show ${workflowId}`);
      if (ui) out(`  ${ui}`);
    }
  });
}

async function withClient<T>(ctx: Ctx, fn: (client: Client) => Promise<T>): Promise<T> {
  const { client, connection } = await connectClient(ctx.config);
  try {
    return await fn(client);
  } finally {
    await connection.close().catch(() => {});
  }
}

/** The incident's current view: its query while it runs, its result once closed. */
async function incidentView(client: Client, id: string): Promise<IncidentView> {
  const handle = client.workflow.getHandle(id);
  let status: string;
  try {
    status = (await handle.describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new UserError(`no incident ${id} (see lifeline incident list)`);
    throw err;
  }
  if (status === 'RUNNING') return (await handle.query('incident')) as IncidentView;
  try {
    return (await handle.result()) as IncidentView;
  } catch (err) {
    if (err instanceof WorkflowFailedError) throw new UserError(`incident ${id} failed: ${applicationFailureOf(err)?.message ?? err.message}`);
    throw err;
  }
}

// node health ids and inputs live with the incident domain (the drill worker starts node health too)
export { nodeHealthId, nodeHealthInput } from '../incidents/watch';
import { nodeHealthId, nodeHealthInput } from '../incidents/watch';

export function formatIncident(v: IncidentView): string {
  const lines = [
    `incident ${v.id}`,
    `  type ${v.type}, severity ${v.severity}, status ${v.status}`,
    `  nodes: ${v.nodes.join(', ') || '-'}; assets: ${v.assets.join(', ') || '-'}`,
    `  opened ${v.openedAt}${v.closedAt ? `, closed ${v.closedAt}` : ''}${v.approvalDeadline ? `, approval needed by ${v.approvalDeadline}` : ''}`,
    `  steps: ${Object.entries(v.steps).map(([s, st]) => `${s}=${st}`).join(', ') || 'none'}`,
    ...v.recoveries.map((r) => `  recovery of node ${r.node}: ${r.outcome} (${r.workflowId})${r.detail ? ` — ${r.detail}` : ''}`),
    'timeline:',
    ...v.timeline.map((e) => `  ${e.at}  ${e.actor.padEnd(24)} ${e.action}${e.detail ? ` — ${e.detail}` : ''}`),
  ];
  if (v.summary) {
    const s = v.summary;
    lines.push(
      'summary:',
      `  ${s.what}`,
      ...s.restored.map((r) => `  restored ${r.asset} from ${r.snapshot.slice(0, 12)} (${r.time})`),
      ...s.restorePoints.map((r) => `  restore point of ${r.asset}: ${r.snapshot ? `${r.snapshot.slice(0, 12)} (${r.time})` : 'none'}`),
      `  data-loss window: ${s.dataLossWindowSeconds ?? '-'} s; time to recover: ${s.timeToRecoverSeconds ?? '-'} s; holds released: ${s.holdsReleased}; quarantined: ${s.quarantined}`,
    );
  }
  return lines.join('\n');
}

async function decide(ctx: Ctx, kind: 'approve' | 'reject', id: string, o: { step: string; actor?: string; reason?: string; json?: boolean }): Promise<void> {
  if (kind === 'reject' && !o.reason?.trim()) throw new UserError('reject needs --reason');
  await withClient(ctx, async (client) => {
    const handle = client.workflow.getHandle(id);
    let view: IncidentView;
    try {
      view = (await handle.executeUpdate(kind, { args: [{ step: o.step, actor: o.actor ?? defaultActor(), ...(o.reason ? { reason: o.reason } : {}) }] })) as IncidentView;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new UserError(`no open incident ${id} (closed incidents take no decisions; see lifeline incident show ${id})`);
      const app = applicationFailureOf(err);
      if (app) throw new UserError(`${kind} refused: ${app.message}`);
      throw err;
    }
    if (o.json) json(view);
    else out(`incident ${id}: step ${o.step} ${kind === 'approve' ? 'approved' : 'rejected'}; status ${view.status}`);
  });
}

export function registerIncidentEventCommands(event: Command): void {
  for (const type of INCIDENT_TYPES) {
    addEventOptions(event.command(type).description(`report a ${type} incident (same as lifeline incident open ${type})`)).action(async (o: EventOpts, cmd: Command) =>
      openFromCli(context(cmd), type, o),
    );
  }
}

export function registerIncidentCommands(program: Command): void {
  const incident = program.command('incident').alias('incidents').description('incident response: open, list, show, approve or reject steps');

  const open = incident.command('open').description('open an incident (node-lost, integrity-failure, suspected-compromise, manual)');
  for (const type of INCIDENT_TYPES) {
    addEventOptions(open.command(type).description(`open a ${type} incident`)).action(async (o: EventOpts, cmd: Command) => openFromCli(context(cmd), type, o));
  }

  incident
    .command('watch-nodes')
    .description('start the health workflow of every configured node (or --node): a silent node agent opens a node-lost incident')
    .option('--node <id>', 'only this node (repeat for several)', collect, [])
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (o: { node: string[]; json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const nodes = o.node.length ? o.node : Object.keys(ctx.config.nodes);
      for (const n of nodes) if (!(n in ctx.config.nodes)) throw new UserError(`unknown node ${JSON.stringify(n)} (declared: ${Object.keys(ctx.config.nodes).join(', ') || 'none'})`);
      if (!nodes.length) throw new UserError('no nodes declared in the config (nodes.NAME)');
      await withClient(ctx, async (client) => {
        const rows: Array<{ node: string; workflowId: string; started: boolean }> = [];
        for (const node of nodes) {
          const workflowId = nodeHealthId(node);
          try {
            await client.workflow.start(nodeHealthWorkflow, { workflowId, taskQueue: o.taskQueue, args: [nodeHealthInput(ctx.config, node)] });
            rows.push({ node, workflowId, started: true });
          } catch (err) {
            if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
            rows.push({ node, workflowId, started: false });
          }
        }
        if (o.json) json(rows);
        else for (const r of rows) out(`node ${r.node}: ${r.started ? 'now watched' : 'already watched'} (${r.workflowId})${workflowLink(ctx.config, r.workflowId) ? `  ${workflowLink(ctx.config, r.workflowId)}` : ''}`);
      });
    });

  incident
    .command('list')
    .description('incidents, newest first')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      await withClient(ctx, async (client) => {
        const rows: Array<{ id: string; workflowStatus: string; startedAt: string; type?: string; severity?: string; status?: string }> = [];
        for await (const w of client.workflow.list({ query: `WorkflowType = 'incidentWorkflow'` })) {
          const row: (typeof rows)[number] = { id: w.workflowId, workflowStatus: w.status.name, startedAt: w.startTime.toISOString() };
          try {
            // A running incident answers through a worker: do not wait long for one whose worker is down.
            const v = await client.withDeadline(Date.now() + 10_000, () => incidentView(client, w.workflowId));
            Object.assign(row, { type: v.type, severity: v.severity, status: v.status });
          } catch {
            row.status = w.status.name === 'FAILED' ? 'failed' : w.status.name === 'RUNNING' ? 'unknown (no worker answered)' : w.status.name.toLowerCase();
          }
          rows.push(row);
          if (rows.length >= 200) break;
        }
        if (o.json) json(rows);
        else if (!rows.length) out('no incidents');
        else for (const r of rows) out(`${r.id}  ${r.type ?? '-'}  ${r.severity ?? '-'}  ${r.status}  ${r.startedAt}`);
      });
    });

  incident
    .command('show <id>')
    .description("an incident's state, steps, timeline and summary")
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      await withClient(ctx, async (client) => {
        const v = await incidentView(client, id);
        const ui = workflowLink(ctx.config, id);
        if (o.json) json({ ...v, ui });
        else {
          out(formatIncident(v));
          if (ui) out(ui);
        }
      });
    });

  incident
    .command('approve <id>')
    .description('approve a destructive step that awaits approval')
    .requiredOption('--step <step>', 'the step (rebuild-node, restore)')
    .option('--actor <name>', 'who approves (default: user:<OS user>)')
    .option('--reason <text>', 'why')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { step: string; actor?: string; reason?: string; json?: boolean }, cmd: Command) => decide(context(cmd), 'approve', id, o));

  incident
    .command('reject <id>')
    .description('reject a destructive step: the incident ends rejected and nothing is built')
    .requiredOption('--step <step>', 'the step (rebuild-node, restore)')
    .option('--reason <text>', 'why (required)')
    .option('--actor <name>', 'who rejects (default: user:<OS user>)')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { step: string; actor?: string; reason?: string; json?: boolean }, cmd: Command) => decide(context(cmd), 'reject', id, o));
}
