/** `lifeline event checkpoint …` (send one event) and `lifeline event serve` (receive events over HTTP). */
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { UserError } from '../config/errors';
import { checkpointAsset, dispatchEvent } from '../events/dispatch';
import { createEventServer } from '../events/http';
import { parseEvent } from '../events/schema';
import { connectClient } from '../workers/temporal';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { context, json, out } from './context';
import { workflowLink } from './progress';
import { registerIncidentEventCommands } from './incident';

function portArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port 0–65535');
  return n;
}

export function registerEventCommands(program: Command): void {
  const event = program
    .command('event')
    .alias('events')
    .description('events that trigger work now (checkpoint written, …)');

  event
    .command('checkpoint')
    .description("a checkpoint is complete: back up its asset now (coalesced with a running backup of the asset)")
    .requiredOption('--node <id>', 'node the checkpoint was written on')
    .requiredOption('--path <path>', 'checkpoint path on that node (relative paths: against the current directory)')
    .requiredOption('--step <step>', 'training step (a non-negative integer or a short name)')
    .option('--asset <name>', 'asset to back up (default: the asset of that node whose folder contains the path)')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (opts: { node: string; path: string; step: string; asset?: string; json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const raw = { type: 'checkpoint', node: opts.node, path: resolve(opts.path), step: opts.step, ...(opts.asset !== undefined ? { asset: opts.asset } : {}) };
      // Validate before connecting: a malformed event fails fast and starts nothing.
      const ev = parseEvent(raw);
      if (ev.type === 'checkpoint') checkpointAsset(ctx.config, ev);
      const { client, connection } = await connectClient(ctx.config);
      try {
        const r = await dispatchEvent(raw, { client, config: ctx.config, taskQueue: opts.taskQueue });
        const ui = workflowLink(ctx.config, r.workflowId);
        if (opts.json) json({ ...r, ui });
        else {
          out(`checkpoint event accepted: asset ${r.asset}, step ${r.step} → ${r.workflowId} (runs a backup now, or once more after the running one)`);
          if (ui) out(`  ${ui}`);
        }
      } finally {
        await connection.close().catch(() => {});
      }
    });

  registerIncidentEventCommands(event);

  event
    .command('serve')
    .description('receive events over HTTP: POST /events with a JSON event; GET /healthz')
    .option('--port <port>', 'port to listen on (0 = any free port)', portArg, 8787)
    .option('--host <host>', 'interface to listen on (no authentication: keep it on a trusted network)', '127.0.0.1')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (opts: { port: number; host: string; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { client, connection } = await connectClient(ctx.config);
      const server = createEventServer({ client, config: ctx.config, taskQueue: opts.taskQueue, logger: ctx.logger });
      await new Promise<void>((ok, fail) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          fail(err.code === 'EADDRINUSE' ? new UserError(`port ${opts.port} on ${opts.host} is already in use; choose another --port`) : err),
        );
        server.listen(opts.port, opts.host, () => ok());
      });
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : opts.port;
      ctx.logger.info({ host: opts.host, port, taskQueue: opts.taskQueue }, 'event server listening');
      out(`listening on http://${opts.host}:${port}/events`);
      await new Promise<void>((done) => {
        const stop = () => server.close(() => done());
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await connection.close().catch(() => {});
    });
}
