/**
 * `lifeline keys rotate|revoke` as on-call runs them (bin/lifeline, clean
 * environment) against the test MinIO, checked with the real `age` CLI:
 *
 *   S1 with the old keys → rotate → S2: every object S2 added, and every
 *   manifest and index object, opens only with the new identity; S1 still
 *   restores. Revoke without --existing is refused (old packs need the old
 *   identity); revoke --existing → the old identity opens no object in the
 *   repository; S1 and S2 restore and deep-verify with the new identity alone.
 *   Each step is an audit entry of type key-operation. CLI mistakes (unknown
 *   tenant, identity in an environment variable, the only identity, a secret
 *   on the command line) are refused clearly.
 *
 * Identities are X25519 here because Debian's age 1.1.1 cannot open
 * post-quantum files; the unit test covers a hybrid new identity.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { generateX25519Identity } from 'age-encryption';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type LoadedConfig } from '../../config/load';
import { backup } from '../../engine/archiver';
import { checkSnapshots } from '../../engine/checker';
import { restore } from '../../engine/restorer';
import { TenantRepositories } from '../../tenancy/repositories';
import { recipientFingerprint } from '../../tenancy/key-rotation';
import { describeTree, makeAsset } from '../support/engine-fixtures';
import { parseJson, runCli, type CliResult } from '../support/cli';
import { createTestBucket, testS3Client, testServices } from '../support/services';

const run = promisify(execFile);
let dir: string;
let configFile: string;
let bucket: string;
let env: NodeJS.ProcessEnv;
const PREFIX = 'tenants/acme/';

beforeAll(async () => {
  const { s3 } = testServices();
  dir = await mkdtemp(join(tmpdir(), 'lifeline-keys-rotation-'));
  await writeFile(join(dir, 's3-access'), s3.accessKeyId, { mode: 0o600 });
  await writeFile(join(dir, 's3-secret'), s3.secretAccessKey, { mode: 0o600 });
  bucket = await createTestBucket('keys-rotation');
  configFile = join(dir, 'lifeline.yaml');
  await writeFile(
    configFile,
    stringify({
      storage: {
        endpoint: s3.endpoint,
        region: s3.region,
        bucket,
        credentials: { accessKeyId: { file: join(dir, 's3-access') }, secretAccessKey: { file: join(dir, 's3-secret') } },
      },
      devstack: { dataDir: join(dir, 'data') },
      audit: { bucket: `${bucket}-audit`, retention: '1d', lockMode: 'none' },
      tenants: {
        acme: { identity: { file: join(dir, 'keys', 'acme.age') }, signingKey: { file: join(dir, 'keys', 'acme-signing.pem') } },
        envco: { identity: { env: 'ENVCO_IDENTITY' }, signingKey: { file: join(dir, 'keys', 'envco-signing.pem') } },
        pq: { identity: { file: join(dir, 'keys', 'pq.age') }, signingKey: { file: join(dir, 'keys', 'pq-signing.pem') } },
      },
      logging: { level: 'warn', format: 'json' },
    }),
  );
  env = { XDG_CACHE_HOME: join(dir, 'cache'), LIFELINE_CACHE_DIR: join(dir, 'cache', 'repos'), ENVCO_IDENTITY: await generateX25519Identity() };
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli(['--config', configFile, ...args], { env, timeoutMs: 300_000 });

function ok(r: CliResult): CliResult {
  if (r.code !== 0) throw new Error(`exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** Nothing secret in any output: no identity, no signing key, no S3 secret. */
function noSecrets(r: CliResult): void {
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{20}/);
    expect(text).not.toMatch(/PRIVATE KEY/);
    expect(text).not.toContain(testServices().s3.secretAccessKey);
  }
}

function config(): LoadedConfig {
  return loadConfig({ configPath: configFile });
}

async function listKeys(prefix = PREFIX): Promise<string[]> {
  const s3 = testS3Client();
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) keys.push(o.Key!);
    token = r.NextContinuationToken;
  } while (token);
  return keys;
}

/** Downloads an object and asks the age CLI to open it with one identity file. */
async function ageOpens(key: string, identityFile: string): Promise<boolean> {
  const res = await testS3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const file = join(dir, `obj-${randomBytes(6).toString('hex')}`);
  await writeFile(file, await res.Body!.transformToByteArray());
  try {
    await run('age', ['-d', '-i', identityFile, '-o', '/dev/null', file]);
    return true;
  } catch (err) {
    expect((err as { stderr?: string }).stderr ?? '').toMatch(/no identity matched|failed to decrypt/);
    return false;
  } finally {
    await rm(file, { force: true });
  }
}

/** Identity lines of the tenant's identity file, written one per file for the age CLI. */
async function identityFiles(): Promise<string[]> {
  const text = await readFile(join(dir, 'keys', 'acme.age'), 'utf8');
  const lines = text.split('\n').filter((l) => l.startsWith('AGE-SECRET-KEY-'));
  const out: string[] = [];
  for (const l of lines) {
    const f = join(dir, `id-${randomBytes(4).toString('hex')}.txt`);
    await writeFile(f, `${l}\n`, { mode: 0o600 });
    out.push(f);
  }
  return out;
}

async function backupAsset(src: string, repos = new TenantRepositories(config())): Promise<string> {
  const repo = await repos.repository('acme');
  return (await backup(repo, { root: src, asset: { name: 'llama', kind: 'model', tenant: 'acme' } })).snapshotId;
}

async function restoresAndDeepVerifies(snapshots: Array<[string, string]>): Promise<void> {
  const repo = await new TenantRepositories(config()).repository('acme');
  const deep = await checkSnapshots(repo, { snapshotIds: snapshots.map(([s]) => s), mode: 'deep' });
  expect(deep.problems).toEqual([]);
  expect(deep.snapshots.map((s) => s.ok)).toEqual(snapshots.map(() => true));
  for (const [snap, src] of snapshots) {
    const target = join(dir, `restore-${randomBytes(4).toString('hex')}`);
    await restore(repo, snap, { target });
    expect(await describeTree(target)).toEqual(await describeTree(src));
  }
}

describe('lifeline keys rotate and revoke', () => {
  it('rotates, keeps old snapshots readable, revokes with --existing, and the old identity opens nothing', async () => {
    ok(await cli('audit', 'init', '--json'));
    const init = ok(await cli('keys', 'init', 'acme', '--kind', 'x25519', '--json'));
    noSecrets(init);
    const src1 = join(dir, 'src1');
    await makeAsset(src1, { smallFiles: 8, largeFileBytes: 2 * 1024 * 1024 });
    // A long-lived process (like a worker) opened the repository before the rotation.
    const worker = new TenantRepositories(config());
    const s1 = await backupAsset(src1, worker);
    const [oldId] = await identityFiles();
    const oldRecipient = parseJson(init).recipients[0] as string;
    const before = new Set(await listKeys());

    // ---- rotate
    const rot = ok(await cli('keys', 'rotate', 'acme', '--kind', 'x25519', '--json'));
    noSecrets(rot);
    const rotated = parseJson(rot);
    expect(rotated.recipient).not.toBe(oldRecipient);
    expect(rotated.readOnlyRecipients.map((r: { recipient: string }) => r.recipient)).toEqual([oldRecipient]);
    expect(rotated.rewrapped.manifests).toBe(1);
    expect(rotated.rewrapped.indexes).toBeGreaterThan(0);
    expect(rotated.audited).toBe(true);
    expect((await stat(join(dir, 'keys', 'acme.age'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'keys', 'acme-signing.pem'))).mode & 0o777).toBe(0o600);
    const [newId, oldAgain] = await identityFiles();
    expect(await readFile(oldAgain!, 'utf8')).toBe(await readFile(oldId!, 'utf8'));
    const list = parseJson(ok(await cli('keys', 'list', '--json')));
    expect(list.find((t: { tenant: string }) => t.tenant === 'acme').recipients).toEqual([rotated.recipient]);

    const src2 = join(dir, 'src2');
    await makeAsset(src2, { smallFiles: 4, largeFileBytes: 1024 * 1024 });
    // It picks up the new keys at its next operation, without a restart.
    expect((await worker.repository('acme')).recipients).toEqual([rotated.recipient]);
    const s2 = await backupAsset(src2, worker);
    const added = (await listKeys()).filter((k) => !before.has(k) && !k.includes('/locks/'));
    expect(added.some((k) => k.startsWith(`${PREFIX}data/`))).toBe(true);
    expect(added).toContain(`${PREFIX}snapshots/${s2}`);
    // Every object S2 added, and every manifest and index object (re-wrapped), opens only with the new identity.
    const metadata = (await listKeys()).filter((k) => /\/(snapshots|index)\//.test(k) || k === `${PREFIX}config`);
    for (const key of new Set([...added, ...metadata])) {
      expect(await ageOpens(key, newId!), `${key} with the new identity`).toBe(true);
      expect(await ageOpens(key, oldId!), `${key} with the old identity`).toBe(false);
    }
    // S1's packs are still the old ones; S1 restores with the tenant's identity set.
    const s1Packs = [...before].filter((k) => k.startsWith(`${PREFIX}data/`));
    expect(s1Packs.length).toBeGreaterThan(0);
    for (const key of s1Packs) expect(await ageOpens(key, oldId!)).toBe(true);
    await restoresAndDeepVerifies([[s1, src1]]);

    // ---- revoke without --existing: refused, the old packs still need the old identity
    const refused = await cli('keys', 'revoke', 'acme', recipientFingerprint(oldRecipient));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/encrypted only to that identity; removing it would make them unreadable.*--existing/);
    expect(refused.stderr).toMatch(/\d+ packs/);
    expect((await identityFiles()).length).toBe(2);

    // ---- revoke --existing waits for a backup that started before it, and changes nothing when it outlasts the wait
    const t0 = new Date().toISOString();
    const lock = { format: 'lifeline-lease', id: 'running-backup', purpose: 'backup llama', host: 'h', pid: 1, startedAt: t0, refreshedAt: t0 };
    await testS3Client().send(new PutObjectCommand({ Bucket: bucket, Key: `${PREFIX}locks/running-backup`, Body: JSON.stringify(lock) }));
    const busy = await cli('keys', 'revoke', 'acme', oldRecipient, '--existing', '--wait-for-backups', '2s');
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(/backup llama running-backup is still running on this repository; nothing was changed/);
    await testS3Client().send(new DeleteObjectCommand({ Bucket: bucket, Key: `${PREFIX}locks/running-backup` }));
    for (const key of s1Packs) expect(await ageOpens(key, oldId!)).toBe(true);

    // ---- revoke --existing
    const rev = ok(await cli('keys', 'revoke', 'acme', oldRecipient, '--existing', '--json'));
    noSecrets(rev);
    const revoked = parseJson(rev);
    expect(revoked.packs.packsReencrypted).toBe(s1Packs.length);
    expect(revoked.signersDropped).toHaveLength(1);
    expect(revoked.limits.join(' ')).toMatch(/Object Lock/);
    expect(revoked.audited).toBe(true);
    const remaining = await identityFiles();
    expect(remaining).toHaveLength(1);
    expect(await readFile(remaining[0]!, 'utf8')).toBe(await readFile(newId!, 'utf8'));

    const all = (await listKeys()).filter((k) => !/\/(locks|tombstones)\//.test(k));
    expect(all.length).toBeGreaterThan(s1Packs.length + 4);
    for (const k of s1Packs) expect(all).not.toContain(k);
    for (const key of all) {
      expect(await ageOpens(key, oldId!), `${key} with the revoked identity`).toBe(false);
      expect(await ageOpens(key, newId!), `${key} with the current identity`).toBe(true);
    }
    await restoresAndDeepVerifies([
      [s1, src1],
      [s2, src2],
    ]);

    // ---- audit: each operation is a key-operation entry (ids only)
    const shown = parseJson(ok(await cli('audit', 'show', '--type', 'key-operation', '--tenant', 'acme', '--json')));
    const entries = (shown as Array<{ entry: { action: string; outcome: string; details: Record<string, unknown> } }>).map((r) => r.entry);
    expect(entries.map((e) => `${e.action}:${e.outcome}`)).toEqual(['keys-rotated:success', 'identity-revoked:denied', 'identity-revoked:failure', 'identity-revoked:success']);
    expect(entries[0]!.details.recipient).toBe(recipientFingerprint(rotated.recipient));
    expect(JSON.stringify(entries)).not.toMatch(/AGE-SECRET-KEY|age1/);

    // ---- the only identity left cannot be revoked
    const only = await cli('keys', 'revoke', 'acme', rotated.recipient);
    expect(only.code).not.toBe(0);
    expect(only.stderr).toMatch(/refusing to revoke tenant acme's only identity/);
    // Verify the audit log is intact after all this.
    ok(await cli('audit', 'verify', '--no-witness', '--json'));
  }, 600_000);

  it('new identities are post-quantum hybrid by default', async () => {
    const init = parseJson(ok(await cli('keys', 'init', 'pq', '--json')));
    expect(init.recipients[0]).toMatch(/^age1pq1/);
    const rot = ok(await cli('keys', 'rotate', 'pq', '--json'));
    noSecrets(rot);
    const r = parseJson(rot);
    expect(r.recipient).toMatch(/^age1pq1/);
    expect(r.recipient).not.toBe(init.recipients[0]);
    expect(r.readOnlyRecipients.map((o: { recipient: string }) => o.recipient)).toEqual(init.recipients);
    expect(r.rewrapped.skipped).toEqual([]);
    const repo = await new TenantRepositories(config()).repository('pq');
    expect(repo.recipients).toEqual([r.recipient]);
    expect(repo.config.signers.map((s) => s.keyId)).toEqual([r.signingKeyId, init.signingKeyId]);
  }, 120_000);

  it('refuses clearly: unknown tenant, identity in an environment variable, a secret on the command line, an unknown recipient', async () => {
    const unknown = await cli('keys', 'rotate', 'nosuch');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/unknown tenant "nosuch" \(declared: acme, envco, pq\)/);

    const fromEnv = await cli('keys', 'rotate', 'envco');
    expect(fromEnv.code).not.toBe(0);
    expect(fromEnv.stderr).toMatch(/tenants\.envco\.identity is an environment variable; `lifeline keys rotate` has to rewrite the key file/);
    const revokeEnv = await cli('keys', 'revoke', 'envco', 'age1qqqqqqqqqqqq');
    expect(revokeEnv.stderr).toMatch(/tenants\.envco\.identity is an environment variable/);

    const secret = await generateX25519Identity(); // a real identity, made now: nothing key-shaped is committed
    const onCommandLine = await cli('keys', 'revoke', 'acme', secret);
    expect(onCommandLine.code).not.toBe(0);
    expect(onCommandLine.stderr).toMatch(/that argument is a secret identity: never put one on a command line/);
    expect(onCommandLine.stderr + onCommandLine.stdout).not.toContain(secret);

    const noMatch = await cli('keys', 'revoke', 'acme', 'age1doesnotexist0000');
    expect(noMatch.code).not.toBe(0);
    expect(noMatch.stderr).toMatch(/tenant acme has no identity with recipient or fingerprint age1doesnotexist0000; its identities: /);
  }, 120_000);
});
