/**
 * `lifeline alarm watch`: the storage tamper alarm. Listens to MinIO bucket
 * notifications on the repository and audit buckets and opens (or joins) a
 * `storage-tamper` incident for every burst of deletes, overwrites or
 * retention changes that Lifeline did not make. Runs until SIGINT/SIGTERM.
 */
import { Command } from 'commander';
import { UserError } from '../config/errors';
import { durationMs } from '../config/platform';
import { resolveStorage, roleAccessKeyIds } from '../config/storage';
import { ownPrincipals, tenantPrefixes, watchedBuckets } from '../alarm/layout';
import { burstEvent } from '../alarm/tamper';
import { TamperWatcher } from '../alarm/watch';
import { dispatchEvent } from '../events/dispatch';
import { connectClient } from '../workers/temporal';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import { context, out } from './context';
import { workflowLink } from './progress';

export const ALARM_SOURCE = 'lifeline-alarm';

export function registerAlarmCommands(program: Command): void {
  const alarm = program.command('alarm').description('storage tamper alarm: incidents for changes to stored backups that Lifeline did not make');

  alarm
    .command('watch')
    .description('listen to bucket notifications (MinIO) and open a storage-tamper incident per burst of foreign deletes, overwrites or retention changes')
    .option('--json', 'one JSON object per line: {"event":"watching",…} once listening, {"event":"incident",…} per burst reported')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (o: { json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const storage = resolveStorage(ctx.config);
      if (storage.embedded) {
        ctx.logger.warn(
          'the embedded MinIO root user is also Lifeline\'s admin (keys init, key rotation), so changes made with the root credentials look like its own and raise no alarm; workers use the role users `lifeline up` creates',
        );
      }
      const line = (v: Record<string, unknown>, text: string) => out(o.json ? JSON.stringify(v) : text);
      const { client, connection } = await connectClient(ctx.config);
      const watcher = new TamperWatcher({
        storage,
        buckets: watchedBuckets(ctx.config),
        tenants: tenantPrefixes(ctx.config),
        // The role users (least privilege) are Lifeline's own too.
        own: ownPrincipals(ctx.config, storage, roleAccessKeyIds(ctx.config, storage)),
        logger: ctx.logger,
        quietMs: durationMs(ctx.config.alarm.burstQuiet),
        maxMs: durationMs(ctx.config.alarm.burstMax),
        report: async (b) => {
          const r = await dispatchEvent(burstEvent(b, ALARM_SOURCE), { client, config: ctx.config, taskQueue: o.taskQueue, actor: ALARM_SOURCE });
          const ui = workflowLink(ctx.config, r.workflowId);
          line(
            { event: 'incident', incident: r.workflowId, bucket: b.bucket, count: b.count, kinds: b.kinds, actions: b.actions, tenants: b.tenants, principals: b.principals, firstAt: b.firstAt, lastAt: b.lastAt, ...(ui ? { ui } : {}) },
            `storage-tamper incident ${r.workflowId}: ${b.count} object(s) in ${b.bucket} (${Object.entries(b.kinds).map(([k, n]) => `${k} ${n}`).join(', ')}) ${Object.keys(b.actions).join('/')} by ${b.principals.join(', ')}${ui ? `  ${ui}` : ''}`,
          );
        },
      });
      let stopping: Promise<void> | undefined;
      const stop = (signal: string) => {
        ctx.logger.info({ signal }, 'stopping the tamper alarm');
        stopping ??= watcher.stop();
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      try {
        const { watching, missing } = await watcher.start();
        if (!watching.length) throw new UserError(`none of the buckets to watch exists (${missing.join(', ')}); run a backup or lifeline keys init first`);
        if (await watcher.ready(60_000)) line({ event: 'watching', buckets: watching, missing }, `watching ${watching.join(', ')}${missing.length ? ` (not existing, not watched: ${missing.join(', ')})` : ''}`);
        else ctx.logger.warn({ buckets: watching }, 'the notification streams did not confirm within 60 s; still trying');
        await new Promise<void>((done) => {
          const wait = setInterval(() => {
            if (stopping) {
              clearInterval(wait);
              void stopping.then(done);
            }
          }, 200);
        });
      } finally {
        await connection.close().catch(() => {});
      }
    });
}
