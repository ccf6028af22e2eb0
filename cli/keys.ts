/** `lifeline keys …`: tenant identities, signing keys and repositories. */
import { Command, Option } from 'commander';
import { initTenant, listTenantKeys, type TenantKeysSummary } from '../tenancy/keys';
import { context, json, out } from './context';

function shortRecipient(r: string): string {
  return r.length > 40 ? `${r.slice(0, 20)}…${r.slice(-12)}` : r;
}

function describe(s: TenantKeysSummary): string {
  const made = Object.entries(s.created).filter(([, v]) => v).map(([k]) => k);
  return [
    `tenant ${s.tenant}${made.length ? `  (created: ${made.join(', ')})` : ''}`,
    `  recipients   ${s.recipients.map(shortRecipient).join(', ') || '— (no identity file yet)'}`,
    `  signing key  ${s.signingKeyId || '— (no signing key yet)'}`,
    `  identity     ${s.identityFile ?? 'from environment'}`,
    `  repository   ${s.repository}${s.initialised ? '' : '  (not initialised: run lifeline keys init ' + s.tenant + ')'}`,
  ].join('\n');
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description("tenants' encryption identities, signing keys and repositories");

  keys
    .command('init')
    .description("create a tenant's identity and signing key files (owner-only) if missing, and initialise its repository")
    .argument('<tenant>', 'tenant name from the config')
    .addOption(new Option('--kind <kind>', 'identity kind for a new identity').choices(['hybrid', 'x25519']).default('hybrid'))
    .option('--json', 'machine-readable output')
    .action(async (tenant: string, opts: { kind: 'hybrid' | 'x25519'; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const summary = await initTenant(ctx.config, tenant, { kind: opts.kind });
      ctx.logger.info({ tenant, created: summary.created, signingKeyId: summary.signingKeyId }, 'tenant keys ready');
      if (opts.json) json(summary);
      else out(describe(summary));
    });

  keys
    .command('list')
    .description('tenants with their public recipients, signing key id and repository (never secrets)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const list = await listTenantKeys(ctx.config);
      if (opts.json) json(list);
      else out(list.length ? list.map(describe).join('\n') : 'no tenants configured (add them under `tenants:` in the config)');
    });
}
