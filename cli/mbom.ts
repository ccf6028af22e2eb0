/**
 * `lifeline mbom export|verify|generate`: the signed CycloneDX 1.6 Model BOM
 * of a model snapshot. export and verify read the tenant's repository
 * directly with the keys the config names; generate runs ModelBomWorkflow
 * (for snapshots taken before the BOM existed, or after a failed attempt).
 */
import { writeFile } from 'node:fs/promises';
import { Command } from 'commander';
import { UserError } from '../config/errors';
import { readModelBom, verifyModelBom, type BomVerification } from '../mbom/bom';
import { TenantRepositories } from '../tenancy/repositories';
import { connectClient } from '../workers/temporal';
import { ORCHESTRATOR_TASK_QUEUE } from '../workflows/task-queues';
import type { ModelBomResult } from '../workflows/mbom';
import { modelBomWorkflowId } from '../workflows/mbom';
import { context, json, out } from './context';
import { hasWorkers, workflowUiLink } from './runs';
import { findSnapshot } from './snapshots';
import { EXIT_CORRUPT } from './verify';

export function formatBomVerification(v: BomVerification): string {
  const c = v.checked;
  const lines = [
    `Model BOM of snapshot ${v.snapshotId}: ${v.valid ? 'VALID' : 'INVALID'}`,
    `  signature  ${c.signature ? `ok (signer ${v.signer})` : 'NOT VERIFIED'}`,
    `  schema     ${c.schema ? 'CycloneDX 1.6 ok' : c.signature ? 'INVALID' : 'not checked'}`,
    `  checked    ${c.files} model file hash(es) (${c.filesRead} read back from storage), ${c.snapshots} referenced snapshot(s)`,
  ];
  for (const u of c.unchecked) lines.push(`  not checkable: ${u}`);
  for (const p of v.problems) lines.push(`  PROBLEM ${p.component}: ${p.problem}`);
  return lines.join('\n');
}

export function registerMbomCommands(program: Command): void {
  const mbom = program.command('mbom').description('the signed CycloneDX 1.6 Model Bill of Materials of model snapshots');

  mbom
    .command('export')
    .description("write a model snapshot's Model BOM (CycloneDX 1.6 JSON) after checking its signature")
    .argument('<snapshot>', 'snapshot id or unique prefix (at least 6 hex characters)')
    .option('--tenant <name>', 'look only in this tenant')
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (ref: string, opts: { tenant?: string; out?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const repos = new TenantRepositories(ctx.config, undefined, ctx.logger);
      const { repo, id } = await findSnapshot(ctx.config, repos, ref, opts.tenant, ctx.logger);
      const r = await readModelBom(repo, id);
      if (!r.ok) throw new UserError(`Model BOM of snapshot ${id}: ${r.reason}${r.missing ? ' (make it with lifeline mbom generate ' + id.slice(0, 12) + ')' : ''}`);
      const text = JSON.stringify(r.record.bom, null, 2) + '\n';
      if (opts.out) {
        await writeFile(opts.out, text);
        ctx.logger.info({ snapshotId: id, out: opts.out, signer: r.signer }, 'Model BOM exported');
        out(`${opts.out}: Model BOM of snapshot ${id} (signature ok, signer ${r.signer})`);
      } else process.stdout.write(text);
    });

  mbom
    .command('verify')
    .description("check a model snapshot's Model BOM: signature, CycloneDX 1.6 schema, every hash against the stored data (exit 3 when anything is wrong)")
    .argument('<snapshot>', 'snapshot id or unique prefix (at least 6 hex characters)')
    .option('--tenant <name>', 'look only in this tenant')
    .option('--no-data', "compare file hashes with the snapshot's tree only, without reading the files back from storage")
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { tenant?: string; data: boolean; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const repos = new TenantRepositories(ctx.config, undefined, ctx.logger);
      const { tenant, repo, id } = await findSnapshot(ctx.config, repos, ref, opts.tenant, ctx.logger);
      const v = await verifyModelBom(repo, id, { readData: opts.data });
      ctx.logger.info({ snapshotId: id, tenant, valid: v.valid, problems: v.problems.length }, 'Model BOM verified');
      if (opts.json) json({ tenant, ...v });
      else out(formatBomVerification(v));
      if (!v.valid) process.exitCode = EXIT_CORRUPT;
    });

  mbom
    .command('generate')
    .description('make (or keep) the Model BOM of a model snapshot with ModelBomWorkflow and wait for it')
    .argument('<snapshot>', 'snapshot id or unique prefix (at least 6 hex characters)')
    .option('--tenant <name>', 'look only in this tenant')
    .option('--json', 'machine-readable output')
    .option('--task-queue <name>', 'orchestrator task queue', ORCHESTRATOR_TASK_QUEUE)
    .action(async (ref: string, opts: { tenant?: string; json?: boolean; taskQueue: string }, cmd: Command) => {
      const ctx = context(cmd);
      const repos = new TenantRepositories(ctx.config, undefined, ctx.logger);
      const { repo, id } = await findSnapshot(ctx.config, repos, ref, opts.tenant, ctx.logger);
      const asset = (await repo.loadSnapshot(id)).body.asset;
      if (asset.kind !== 'model') throw new UserError(`snapshot ${id.slice(0, 12)} is of ${asset.name}, kind ${asset.kind}: only model snapshots have a Model BOM`);
      if (!(asset.name in ctx.config.assets)) throw new UserError(`snapshot ${id.slice(0, 12)} is of asset ${asset.name}, which is no longer declared under assets`);
      const { client, connection } = await connectClient(ctx.config);
      try {
        const workflowId = modelBomWorkflowId(id);
        if (!(await hasWorkers(client, opts.taskQueue))) process.stderr.write(`lifeline: no worker polls ${opts.taskQueue}; the BOM is made once one runs (lifeline worker --role orchestrator)\n`);
        const handle = await client.workflow.start('modelBomWorkflow', { taskQueue: opts.taskQueue, workflowId, args: [{ asset: asset.name, snapshotId: id }] });
        const r = (await handle.result()) as ModelBomResult;
        const ui = workflowUiLink(ctx.config, workflowId);
        if (opts.json) json({ workflowId, ui, ...r });
        else out(`Model BOM of snapshot ${id} ${r.created ? 'stored' : 'was already stored'}: ${r.key} (${r.files} files, ${r.components} components)${ui ? `\n${ui}` : ''}`);
      } finally {
        await connection.close().catch(() => {});
      }
    });
}
