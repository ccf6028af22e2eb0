/** `lifeline storage policies`: the least-privilege IAM policy of each storage role, for this installation's bucket and tenants. */
import { Command, InvalidArgumentError } from 'commander';
import { roleScope } from '../tenancy/provision-roles';
import { allRolePolicies } from '../tenancy/storage-roles';
import { context, json, out } from './context';

const ROLE_NAMES = ['backup', 'verifier', 'retention', 'audit', 'restore'];

export function registerStorageCommands(program: Command): void {
  const storage = program.command('storage').description('object storage: least-privilege roles');
  storage
    .command('policies')
    .description('print the IAM policy of every storage role (MinIO `mc admin policy create` and AWS IAM accept them as they are)')
    .option('--role <role>', `only this role (${ROLE_NAMES.join(', ')})`, (v: string) => {
      if (!ROLE_NAMES.includes(v)) throw new InvalidArgumentError(`expected one of ${ROLE_NAMES.join(', ')}`);
      return v;
    })
    .option('--json', 'machine-readable output')
    .action((opts: { role?: string; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      // The scope needs no credentials: bucket names and tenant prefixes only.
      const s = ctx.config.storage;
      const scope = roleScope(ctx.config, { bucket: s.bucket, prefix: s.prefix });
      const policies = allRolePolicies(scope).filter((p) => !opts.role || p.role === opts.role);
      if (opts.json) {
        json(policies);
        return;
      }
      if (policies.length === 0) out('no tenants configured, so no restore roles (add them under `tenants:`)');
      for (const p of policies) out(`# ${p.name}${p.tenant ? ` (tenant ${p.tenant})` : ''}\n${JSON.stringify(p.policy, null, 2)}\n`);
    });
}
