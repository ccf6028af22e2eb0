/** Storage roles: the IAM policies each role gets, and which credentials each role resolves to. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { configFromObject, loadConfig } from '../../config/load';
import { resolveRoleStorage, roleAccessKeyIds } from '../../config/storage';
import { UserError } from '../../config/errors';
import { allRolePolicies, restorePolicy, rolePolicy, type IamPolicy, type RoleScope } from '../../tenancy/storage-roles';

const scope: RoleScope = { bucket: 'repo', tenants: { acme: 'tenants/acme/', globex: 'tenants/globex/' }, auditBucket: 'repo-audit', auditPrefix: 'audit/' };

/** Does the policy allow `action` on `resource`? (IAM evaluation: an explicit Deny wins; `*` wildcards.) */
function allows(p: IamPolicy, action: string, resource: string): boolean {
  const match = (pattern: string, s: string) => new RegExp(`^${pattern.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(s);
  const hits = p.Statement.filter((st) => st.Action.some((a) => match(a, action)) && st.Resource.some((r) => match(r, resource)));
  return hits.some((h) => h.Effect === 'Allow') && !hits.some((h) => h.Effect === 'Deny');
}
const obj = (key: string, bucket = 'repo') => `arn:aws:s3:::${bucket}/${key}`;

describe('role policies', () => {
  it('backup writes new objects, deletes only its leases, never versions or locks', () => {
    const p = rolePolicy('backup', scope);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/data/ab/abcd'))).toBe(true);
    expect(allows(p, 's3:PutObject', obj('tenants/globex/snapshots/1'))).toBe(true);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/bom/1'))).toBe(true);
    expect(allows(p, 's3:GetObject', obj('tenants/acme/config'))).toBe(true);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/config'))).toBe(false);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/tombstones/1'))).toBe(false);
    expect(allows(p, 's3:DeleteObject', obj('tenants/acme/data/ab/abcd'))).toBe(false);
    expect(allows(p, 's3:DeleteObject', obj('tenants/acme/snapshots/1'))).toBe(false);
    expect(allows(p, 's3:DeleteObject', obj('tenants/acme/locks/l1'))).toBe(true);
    expect(allows(p, 's3:DeleteObjectVersion', obj('tenants/acme/locks/l1'))).toBe(false);
    // the Model BOM of a model snapshot: written once, never deleted by the writer
    expect(allows(p, 's3:PutObject', obj('tenants/acme/bom/1'))).toBe(true);
    expect(allows(p, 's3:DeleteObject', obj('tenants/acme/bom/1'))).toBe(false);
    expect(allows(p, 's3:BypassGovernanceRetention', obj('tenants/acme/data/ab/abcd'))).toBe(false);
    expect(allows(p, 's3:PutObject', obj('audit/entries/1', 'repo-audit'))).toBe(false);
    // the smoke test's object, and nothing else outside the repositories
    expect(allows(p, 's3:DeleteObject', obj('smoke/wf-1.bin'))).toBe(true);
    expect(allows(p, 's3:DeleteObject', obj('other/x'))).toBe(false);
  });

  it('verifier reads and writes only its records', () => {
    const p = rolePolicy('verifier', scope);
    expect(allows(p, 's3:GetObject', obj('tenants/acme/data/ab/abcd'))).toBe(true);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/data/ab/abcd'))).toBe(false);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/verifications/s/r'))).toBe(true);
    expect(allows(p, 's3:DeleteObject', obj('tenants/acme/snapshots/1'))).toBe(false);
  });

  it('retention deletes only in the collectable prefixes, never config, holds or the audit log', () => {
    const p = rolePolicy('retention', scope);
    for (const k of ['data/ab/x', 'index/x', 'snapshots/x', 'tombstones/x', 'locks/x', 'bom/x']) expect(allows(p, 's3:DeleteObject', obj(`tenants/acme/${k}`)), k).toBe(true);
    for (const k of ['config', 'holds/s/h/placed', 'quarantine/s/q/placed']) expect(allows(p, 's3:DeleteObject', obj(`tenants/acme/${k}`)), k).toBe(false);
    expect(allows(p, 's3:DeleteObject', obj('audit/entries/1', 'repo-audit'))).toBe(false);
    expect(allows(p, 's3:DeleteObjectVersion', obj('tenants/acme/data/ab/x'))).toBe(false);
  });

  it('audit appends to the audit log only', () => {
    const p = rolePolicy('audit', scope);
    expect(allows(p, 's3:PutObject', obj('audit/entries/1', 'repo-audit'))).toBe(true);
    expect(allows(p, 's3:DeleteObject', obj('audit/entries/1', 'repo-audit'))).toBe(false);
    expect(allows(p, 's3:GetObject', obj('tenants/acme/config'))).toBe(false);
  });

  it("restore reads one tenant's prefix and lists only it", () => {
    const p = restorePolicy('acme', scope);
    expect(allows(p, 's3:GetObject', obj('tenants/acme/data/ab/x'))).toBe(true);
    expect(allows(p, 's3:GetObject', obj('tenants/globex/data/ab/x'))).toBe(false);
    expect(allows(p, 's3:PutObject', obj('tenants/acme/data/ab/x'))).toBe(false);
    const list = p.Statement.find((s) => s.Action.includes('s3:ListBucket'))!;
    expect(list.Condition).toEqual({ StringLike: { 's3:prefix': ['tenants/acme/*'] } });
    expect(() => restorePolicy('nobody', scope)).toThrow(/unknown tenant/);
  });

  it('one policy per shared role and one restore policy per tenant', () => {
    expect(allRolePolicies(scope).map((p) => p.name)).toEqual(['lifeline-backup', 'lifeline-verifier', 'lifeline-retention', 'lifeline-audit', 'lifeline-restore-acme', 'lifeline-restore-globex']);
  });
});

describe('role credentials', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-roles-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const secret = (name: string, value: string) => {
    writeFileSync(join(dir, name), value, { mode: 0o600 });
    return { file: join(dir, name) };
  };
  const tenants = { acme: { identity: { file: '/x/a.age' }, signingKey: { file: '/x/a.pem' } } };

  it('external S3: a role uses its own credentials, others fall back to storage.credentials', () => {
    const config = configFromObject({
      storage: {
        endpoint: 'http://127.0.0.1:9',
        credentials: { accessKeyId: secret('ak', 'ADMINKEY'), secretAccessKey: secret('sk', 'adminsecret') },
        roles: { backup: { accessKeyId: secret('bak', 'BACKUPKEY'), secretAccessKey: secret('bsk', 'backupsecret') }, restore: { acme: { accessKeyId: secret('rak', 'RESTOREKEY'), secretAccessKey: secret('rsk', 'restoresecret') } } },
      },
      tenants,
    });
    expect(resolveRoleStorage(config, 'backup').credentials).toEqual({ accessKeyId: 'BACKUPKEY', secretAccessKey: 'backupsecret' });
    expect(resolveRoleStorage(config, 'verifier').credentials.accessKeyId).toBe('ADMINKEY');
    expect(resolveRoleStorage(config, 'restore', { tenant: 'acme' }).credentials.accessKeyId).toBe('RESTOREKEY');
    // Lifeline's own principals besides the admin (for the tamper alarm): the roles given.
    expect(roleAccessKeyIds(config).sort()).toEqual(['BACKUPKEY', 'RESTOREKEY']);
  });

  it('refuses role credentials for an undeclared tenant and for the embedded MinIO', () => {
    const path = join(dir, 'bad.yaml');
    writeFileSync(path, `storage:\n  endpoint: http://127.0.0.1:9\n  credentials: { accessKeyId: { env: A }, secretAccessKey: { env: B } }\n  roles:\n    restore:\n      nobody: { accessKeyId: { env: A }, secretAccessKey: { env: B } }\n`);
    expect(() => loadConfig({ configPath: path, env: { A: 'x', B: 'y' } })).toThrow(ConfigError);
    expect(() => loadConfig({ configPath: path, env: { A: 'x', B: 'y' } })).toThrow(/storage\.roles\.restore\.nobody: unknown tenant "nobody"/);
    writeFileSync(path, 'storage:\n  roles:\n    backup: { accessKeyId: { env: A }, secretAccessKey: { env: B } }\n');
    expect(() => loadConfig({ configPath: path, env: { A: 'x', B: 'y' } })).toThrow(/storage\.roles\.backup: only allowed together with storage\.endpoint/);
  });

  it('a missing role secret fails at load time naming the key', () => {
    const path = join(dir, 'missing.yaml');
    writeFileSync(path, `storage:\n  endpoint: http://127.0.0.1:9\n  credentials: { accessKeyId: { env: A }, secretAccessKey: { env: B } }\n  roles:\n    verifier: { accessKeyId: { env: A }, secretAccessKey: { file: ${join(dir, 'nope')} } }\n`);
    expect(() => loadConfig({ configPath: path, env: { A: 'x', B: 'y' } })).toThrow(`storage.roles.verifier.secretAccessKey: secret file ${join(dir, 'nope')} does not exist`);
  });

  it('embedded MinIO: role keys come from the file `lifeline up` writes; a role missing from it is a clear error', () => {
    const data = join(dir, 'data');
    mkdirSync(join(data, 'credentials'), { recursive: true });
    writeFileSync(join(data, 'credentials', 'minio-root.json'), JSON.stringify({ accessKeyId: 'ROOTKEY1', secretAccessKey: 'rootsecret' }));
    const config = configFromObject({ devstack: { dataDir: data }, tenants });
    // No role users at all (a stack started by devstack code alone): the root, flagged so callers warn.
    expect(resolveRoleStorage(config, 'retention')).toMatchObject({ rootFallback: true, credentials: { accessKeyId: 'ROOTKEY1' } });
    writeFileSync(join(data, 'credentials', 'minio-roles.json'), JSON.stringify({ retention: { accessKeyId: 'RETKEY01', secretAccessKey: 'retsecret' }, restore: {} }));
    expect(resolveRoleStorage(config, 'retention').credentials.accessKeyId).toBe('RETKEY01');
    expect(resolveRoleStorage(config, 'retention').rootFallback).toBeUndefined();
    expect(() => resolveRoleStorage(config, 'verifier')).toThrow(UserError);
    expect(() => resolveRoleStorage(config, 'verifier')).toThrow(/no verifier credentials .*run `lifeline up`/);
    expect(resolveRoleStorage(config, 'admin').credentials.accessKeyId).toBe('ROOTKEY1');
    expect(() => resolveRoleStorage(config, 'restore', { tenant: 'acme' })).toThrow(/no restore\.acme credentials/);
    expect(roleAccessKeyIds(config)).toEqual(['RETKEY01']);
  });
});
