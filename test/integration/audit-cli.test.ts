/**
 * `lifeline audit init|record|show|verify` as a user runs them (bin/lifeline,
 * clean environment) against the test MinIO: the key file and the Object Lock
 * bucket are created once, entries are recorded and filtered, verify passes
 * and saves its witness, and a truncation made by a principal who may bypass
 * governance retention is caught thanks to the witness (exit 3).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectLockConfigurationCommand, ListObjectVersionsCommand } from '@aws-sdk/client-s3';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkpointKey, entryKey, proofKey } from '../../audit/log';
import { initAudit, openAuditLog } from '../../audit/open';
import { loadConfig } from '../../config/load';
import { cleanEnv, parseJson, runCli } from '../support/cli';
import { testS3Client, testServices } from '../support/services';

let dir: string;
let configFile: string;
let auditBucket: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  const { s3 } = testServices();
  dir = await mkdtemp(join(tmpdir(), 'lifeline-audit-cli-'));
  await writeFile(join(dir, 's3-access'), s3.accessKeyId, { mode: 0o600 });
  await writeFile(join(dir, 's3-secret'), s3.secretAccessKey, { mode: 0o600 });
  auditBucket = `t-audit-cli-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  configFile = join(dir, 'lifeline.yaml');
  await writeFile(
    configFile,
    stringify({
      storage: {
        endpoint: s3.endpoint,
        region: s3.region,
        bucket: 'unused-by-this-test',
        credentials: { accessKeyId: { file: join(dir, 's3-access') }, secretAccessKey: { file: join(dir, 's3-secret') } },
      },
      devstack: { dataDir: join(dir, 'data') },
      audit: { bucket: auditBucket, retention: '1d' },
      logging: { level: 'warn', format: 'json' },
    }),
  );
  env = { XDG_CACHE_HOME: join(dir, 'cache') };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (...args: string[]) => runCli(['--config', configFile, 'audit', ...args], { env });

function noSecrets(r: { stdout: string; stderr: string }): void {
  const { s3 } = testServices();
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toContain(s3.secretAccessKey);
    expect(text).not.toMatch(/PRIVATE KEY/);
  }
}

describe('lifeline audit', () => {
  it('init creates the owner-only key file, the Object Lock bucket and the first entry, once', async () => {
    const first = await cli('init', '--json');
    expect(first.code, first.stderr).toBe(0);
    noSecrets(first);
    const s = parseJson(first);
    expect(s).toMatchObject({ bucket: auditBucket, origin: `lifeline-audit/${auditBucket}`, lockMode: 'governance', retention: '1d', created: { keyFile: true, log: true } });
    expect(s.verifierKey).toMatch(new RegExp(`^lifeline-audit/${auditBucket}\\+[0-9a-f]{8}\\+`));
    expect(s.signingKeyFile).toBe(join(dir, 'data', 'keys', 'audit-signing.pem'));
    expect((await stat(s.signingKeyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'data', 'keys'))).mode & 0o777).toBe(0o700);
    const lock = await testS3Client().send(new GetObjectLockConfigurationCommand({ Bucket: auditBucket }));
    expect(lock.ObjectLockConfiguration?.ObjectLockEnabled).toBe('Enabled');

    const again = await cli('init', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(parseJson(again)).toMatchObject({ keyId: s.keyId, created: { keyFile: false, log: false } });
  });

  it('record appends entries; show filters them by asset, tenant, type and time', async () => {
    for (const args of [
      ['--type', 'incident-step', '--action', 'paged-on-call', '--asset', 'llama', '--tenant', 'acme', '--detail', 'ticket=INC-7'],
      ['--type', 'approval', '--action', 'granted', '--asset', 'llama', '--tenant', 'acme', '--actor', 'alice'],
      ['--type', 'drill', '--outcome', 'failure', '--asset', 'mistral', '--tenant', 'globex'],
    ]) {
      const r = await cli('record', ...args, '--json');
      expect(r.code, r.stderr).toBe(0);
    }
    const bad = await cli('record', '--type', 'drill', '--detail', 'password=hunter22');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/must not hold secrets/);
    expect(bad.stderr).not.toContain('hunter22');

    const all = parseJson<Array<{ seq: number; entry: { type: string; asset?: string } }>>(await cli('show', '--json'));
    expect(all.map((r) => [r.seq, r.entry.type])).toEqual([
      [0, 'audit'],
      [1, 'incident-step'],
      [2, 'approval'],
      [3, 'drill'],
    ]);
    expect(parseJson<Array<{ seq: number }>>(await cli('show', '--asset', 'llama', '--json')).map((r) => r.seq)).toEqual([1, 2]);
    expect(parseJson<Array<{ seq: number }>>(await cli('show', '--tenant', 'globex', '--json')).map((r) => r.seq)).toEqual([3]);
    expect(parseJson<Array<{ seq: number }>>(await cli('show', '--type', 'approval', '--asset', 'llama', '--json')).map((r) => r.seq)).toEqual([2]);
    expect(parseJson<unknown[]>(await cli('show', '--since', new Date(Date.now() + 3_600_000).toISOString(), '--json'))).toEqual([]);
    expect(parseJson<unknown[]>(await cli('show', '--since', '1h', '--until', new Date(Date.now() + 60_000).toISOString(), '--json'))).toHaveLength(4);
    const text = await cli('show', '--asset', 'llama');
    expect(text.stdout).toMatch(/incident-step\s+paged-on-call\s+success\s+acme\s+llama/);
    expect(text.stdout).toMatch(/user:alice/);
  });

  it('verify passes and saves a witness; a truncation by a governance-bypassing principal is then caught (exit 3)', async () => {
    const ok = await cli('verify', '--json');
    expect(ok.code, ok.stderr).toBe(0);
    noSecrets(ok);
    const r1 = parseJson(ok);
    expect(r1).toMatchObject({ ok: true, entries: 4, problems: [], witnessUpdated: true });
    expect(r1.checkpoint.size).toBe(4);
    expect(await readdir(join(dir, 'cache', 'lifeline', 'audit-witness'))).toHaveLength(1);

    // Remove the newest entry, its checkpoint and its proof, every version (needs s3:BypassGovernanceRetention).
    const client = testS3Client();
    for (const k of [entryKey(3), checkpointKey(4), proofKey(4)]) {
      const res = await client.send(new ListObjectVersionsCommand({ Bucket: auditBucket, Prefix: `audit/${k}` }));
      for (const v of [...(res.Versions ?? []), ...(res.DeleteMarkers ?? [])]) {
        await client.send(new DeleteObjectCommand({ Bucket: auditBucket, Key: v.Key, VersionId: v.VersionId, BypassGovernanceRetention: true }));
      }
    }

    const caught = await cli('verify', '--json');
    expect(caught.code).toBe(3);
    const r2 = parseJson(caught);
    expect(r2.ok).toBe(false);
    expect(r2.problems).toEqual([expect.objectContaining({ kind: 'truncated', seq: 3, lastSeq: 3 })]);
    expect(r2.witnessUpdated).toBe(false);

    const human = await cli('verify');
    expect(human.code).toBe(3);
    expect(human.stdout).toMatch(/1 PROBLEM:\n\s+truncated\s+entry 3\s+the log was truncated/);

    // Without the witness, the shortened log looks whole: that is why the witness exists.
    const blind = await cli('verify', '--no-witness', '--json');
    expect(blind.code).toBe(0);
    expect((await cli('verify', '--no-witness', '--expect-size', '4', '--json')).code).toBe(3);
  });
});

describe('audit writers in separate processes', () => {
  it('two worker processes appending at once get distinct, gap-free sequence numbers; the log verifies', async () => {
    const { s3 } = testServices();
    const bucket = `t-audit-procs-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const file = join(dir, 'procs.yaml');
    await writeFile(
      file,
      stringify({
        storage: {
          endpoint: s3.endpoint,
          region: s3.region,
          bucket: 'unused-by-this-test',
          credentials: { accessKeyId: { file: join(dir, 's3-access') }, secretAccessKey: { file: join(dir, 's3-secret') } },
        },
        devstack: { dataDir: join(dir, 'procs-data') },
        audit: { bucket, retention: '1d' },
        logging: { level: 'warn', format: 'json' },
      }),
    );
    const config = loadConfig({ configPath: file, env: {} });
    await initAudit(config); // entry 0
    // Each writer loads, says READY, and starts appending when both are ready.
    const writers = ['writer-a', 'writer-b'].map((writer) => {
      const p = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'support', 'audit-child.ts'), file, writer, '12'], {
        env: cleanEnv(),
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let markReady: () => void;
      const ready = new Promise<void>((r) => (markReady = r));
      p.stdout!.on('data', (d) => {
        stdout += d;
        if (stdout.startsWith('READY\n')) markReady();
      });
      p.stderr!.on('data', (d) => (stderr += d));
      const done = new Promise<number[]>((resolve, reject) => {
        p.on('error', reject);
        p.on('close', (code) => (code === 0 ? resolve(JSON.parse(stdout.slice('READY\n'.length)) as number[]) : reject(new Error(`${writer} exited ${code}: ${stderr}`))));
      });
      return { p, ready, done };
    });
    await Promise.all(writers.map((w) => w.ready));
    for (const w of writers) w.p.stdin!.write('go\n');
    const [a, b] = (await Promise.all(writers.map((w) => w.done))) as [number[], number[]];
    expect([...a, ...b].sort((x, y) => x - y)).toEqual(Array.from({ length: 24 }, (_, i) => i + 1));
    // They really wrote at the same time: each one's numbers have gaps the other filled.
    expect(a.some((s, i) => i > 0 && s !== a[i - 1]! + 1)).toBe(true);
    expect(b.some((s, i) => i > 0 && s !== b[i - 1]! + 1)).toBe(true);
    const log = await openAuditLog(config);
    const report = await log.verify();
    expect(report.problems).toEqual([]);
    expect(report.warnings).toEqual([]);
    expect(report.checkpoint!.size).toBe(25);
    const records = await log.query({ asset: 'llama' });
    for (const w of ['writer-a', 'writer-b']) expect(records.filter((r) => r.entry.actor.id === w).map((r) => r.entry.details!.n)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    (log.store as unknown as { client: { destroy(): void } }).client.destroy();
  });
});
