/**
 * `lifeline snapshots list|show`: snapshots with their verification state,
 * holds and quarantine marks, read directly from the tenants' repositories
 * with the keys the config names (no workflow involved).
 */
import { Command } from 'commander';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { InputError } from '../engine/errors';
import type { Repository } from '../engine/repository';
import { listHolds, listQuarantined, listVerifications, snapshotStatuses, verificationState, type SnapshotStatus } from '../engine/verification';
import type { Logger } from '../logging/logger';
import { assetConfig, TenantRepositories } from '../tenancy/repositories';
import { context, json, out } from './context';
import { formatBytes } from './runs';

function warner(logger: Logger) {
  return (w: { key: string; reason: string }) => logger.warn({ key: w.key, reason: w.reason }, 'ignored an untrustworthy record');
}

/** The tenants to look in: the asset's, or every tenant whose repository exists. */
async function tenantsFor(config: LoadedConfig, repos: TenantRepositories, asset: string | undefined, tenant: string | undefined, logger: Logger): Promise<Array<{ tenant: string; repo: Repository }>> {
  const names = asset ? [assetConfig(config, asset).tenant] : tenant ? [tenant] : Object.keys(config.tenants);
  if (tenant && !(tenant in config.tenants)) throw new UserError(`unknown tenant ${JSON.stringify(tenant)} (declared: ${Object.keys(config.tenants).join(', ') || 'none'})`);
  if (names.length === 0) throw new UserError('no tenants configured (add them under `tenants:` in the config)');
  const out: Array<{ tenant: string; repo: Repository }> = [];
  for (const t of names) {
    try {
      out.push({ tenant: t, repo: await repos.repository(t) });
    } catch (err) {
      // Listing everything should not stop at one tenant that was never initialised.
      if (names.length > 1 && err instanceof UserError && /has no repository/.test(err.message)) {
        logger.warn({ tenant: t }, `tenant ${t} has no repository yet (lifeline keys init ${t})`);
        continue;
      }
      throw err;
    }
  }
  return out;
}

/** The one snapshot a full id or unique prefix names, in the given tenant or in any tenant. */
export async function findSnapshot(config: LoadedConfig, repos: TenantRepositories, ref: string, tenant: string | undefined, logger: Logger): Promise<{ tenant: string; repo: Repository; id: string }> {
  const matches: Array<{ tenant: string; repo: Repository; id: string }> = [];
  for (const t of await tenantsFor(config, repos, undefined, tenant, logger)) {
    try {
      matches.push({ ...t, id: await t.repo.resolveSnapshotId(ref) });
    } catch (err) {
      if (err instanceof InputError && /no snapshot matches/.test(err.message)) continue;
      throw err instanceof InputError ? new UserError(err.message) : err;
    }
  }
  if (matches.length === 0) throw new UserError(`no snapshot matches ${ref}${tenant ? ` in tenant ${tenant}` : ''}`);
  if (matches.length > 1) throw new UserError(`${ref} matches snapshots of tenants ${matches.map((m) => m.tenant).join(', ')}; give more characters or --tenant`);
  return matches[0]!;
}

export function verificationText(s: Pick<SnapshotStatus, 'verification'>): string {
  const v = s.verification;
  if (v.state === 'unverified') return 'unverified';
  if (v.state === 'corrupt') return `CORRUPT ${v.lastFailed!.time.slice(0, 16).replace('T', ' ')}`;
  return `verified ${v.lastPassed!.time.slice(0, 16).replace('T', ' ')} ${v.lastPassed!.mode}${v.lastPassed!.mode === 'deep' ? ` ${v.lastPassed!.samplePercent}%` : ''}`;
}

function flags(s: SnapshotStatus): string {
  return [s.holds.length ? `held(${s.holds.map((h) => h.id).join(',')})` : '', s.quarantine.length ? 'QUARANTINED' : ''].filter(Boolean).join(' ');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function registerSnapshotsCommands(program: Command): void {
  const snapshots = program.command('snapshots').description('snapshots with their verification state, holds and quarantine marks');

  snapshots
    .command('list')
    .description('list snapshots (of one asset, or of every tenant), oldest first')
    .argument('[asset]', 'only this asset')
    .option('--tenant <name>', 'only this tenant')
    .option('--json', 'machine-readable output')
    .action(async (asset: string | undefined, opts: { tenant?: string; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const repos = new TenantRepositories(ctx.config, undefined, ctx.logger);
      const rows: Array<SnapshotStatus & { tenant: string }> = [];
      for (const { tenant, repo } of await tenantsFor(ctx.config, repos, asset, opts.tenant, ctx.logger)) {
        for (const s of await snapshotStatuses(repo, { asset, onWarning: warner(ctx.logger) })) rows.push({ ...s, tenant });
      }
      rows.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : 0));
      if (opts.json) {
        json(
          rows.map((s) => ({
            id: s.id,
            time: s.time,
            asset: s.asset.name,
            kind: s.asset.kind,
            tenant: s.tenant,
            node: s.asset.node ?? null,
            labels: s.labels,
            files: s.stats.files,
            bytes: s.stats.totalBytes,
            verification: s.verification,
            holds: s.holds,
            quarantine: s.quarantine,
          })),
        );
        return;
      }
      if (rows.length === 0) {
        out(asset ? `no snapshots of ${asset}` : 'no snapshots');
        return;
      }
      out(
        table([
          ['ID', 'TIME (UTC)', 'ASSET', 'KIND', 'TENANT', 'FILES', 'SIZE', 'VERIFICATION', 'FLAGS'],
          ...rows.map((s) => [
            s.id.slice(0, 12),
            s.time.slice(0, 19).replace('T', ' '),
            s.asset.name,
            s.asset.kind,
            s.tenant,
            String(s.stats.files),
            formatBytes(s.stats.totalBytes),
            verificationText(s),
            flags(s),
          ]),
        ]),
      );
    });

  snapshots
    .command('show')
    .description('one snapshot: manifest summary, labels, stats, verification history, holds (not the file list unless --files)')
    .argument('<id>', 'snapshot id or unique prefix (at least 6 hex characters)')
    .option('--tenant <name>', 'look only in this tenant')
    .option('--files', 'also list the files')
    .option('--json', 'machine-readable output')
    .action(async (ref: string, opts: { tenant?: string; files?: boolean; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const repos = new TenantRepositories(ctx.config, undefined, ctx.logger);
      const warn = warner(ctx.logger);
      const { tenant, repo, id } = await findSnapshot(ctx.config, repos, ref, opts.tenant, ctx.logger);
      const manifest = await repo.loadSnapshot(id);
      const records = await listVerifications(repo, { snapshotId: id, onWarning: warn });
      const [holds, quarantine] = await Promise.all([listHolds(repo, { snapshotId: id, onWarning: warn }), listQuarantined(repo, { snapshotId: id, onWarning: warn })]);
      const verification = verificationState(records);
      const files = opts.files ? await repo.loadTree(manifest) : undefined;
      const b = manifest.body;
      if (opts.json) {
        json({
          id,
          tenant,
          signer: manifest.signer,
          asset: b.asset,
          labels: b.labels,
          startedAt: b.startedAt,
          time: b.time,
          hostname: b.hostname,
          parent: b.parent,
          stats: b.stats,
          verification,
          history: records.map((r) => ({ key: r.key, ...r.body })),
          holds,
          quarantine,
          ...(files ? { files: files.map((e) => ({ type: e.type, path: e.path, ...(e.type === 'file' ? { size: e.size } : {}) })) } : {}),
        });
        return;
      }
      const lines = [
        `snapshot ${id}`,
        `  asset      ${b.asset.name} (${b.asset.kind}), tenant ${tenant}${b.asset.node ? `, node ${b.asset.node}` : ''}`,
        `  time       ${b.time} (started ${b.startedAt}) on ${b.hostname}`,
        `  parent     ${b.parent ?? '—'}`,
        `  labels     ${Object.entries(b.labels).map(([k, v]) => `${k}=${v}`).join(' ') || '—'}`,
        `  stats      ${b.stats.files} files, ${b.stats.dirs} folders, ${b.stats.symlinks} symlinks, ${formatBytes(b.stats.totalBytes)}; ` +
          `read ${formatBytes(b.stats.readBytes)}, new ${formatBytes(b.stats.newBytes)}, uploaded ${formatBytes(b.stats.uploadedBytes)} in ${(b.stats.durationMs / 1000).toFixed(1)} s`,
        `  signed by  ${manifest.signer}`,
        `  verification  ${verificationText({ verification })}`,
      ];
      for (const r of records) {
        const v = r.body;
        lines.push(`    ${v.time}  ${v.mode}${v.mode === 'deep' ? ` ${v.samplePercent}%` : ''}  ${v.result}${v.by ? `  by ${v.by}` : ''}`);
        for (const p of v.problems) lines.push(`      ${p.object}${p.path ? `  (${p.path})` : ''}: ${p.problem}`);
        if (v.problemCount > v.problems.length) lines.push(`      … ${v.problemCount - v.problems.length} more`);
      }
      for (const h of holds) lines.push(`  hold       ${h.id}: ${h.reason} (since ${h.placedAt}${h.by ? `, by ${h.by}` : ''})`);
      for (const q of quarantine) lines.push(`  QUARANTINED ${q.id}: ${q.reason} (since ${q.placedAt}${q.by ? `, by ${q.by}` : ''})`);
      if (files) {
        lines.push('  files');
        for (const e of files) lines.push(`    ${e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : '-'} ${e.type === 'file' ? formatBytes(e.size).padStart(10) : ''.padStart(10)}  ${e.path}`);
      }
      out(lines.join('\n'));
    });
}
