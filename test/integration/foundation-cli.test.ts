/**
 * The `lifeline` CLI end to end on its own embedded stack (own ports, own data
 * folder): config errors start nothing, a foreign port is refused, up is
 * idempotent, status sees services and workers, demo runs the smoke workflow,
 * down stops everything and status says so.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackLayout, type StackSettings } from '../../devstack/layout';
import { freePorts, portInUse, waitFor } from '../../devstack/process';
import { down } from '../../devstack/stack';
import { parseJson, runCli, startCli } from '../support/cli';

let dir: string;
let dataDir: string;
let configFile: string;
let settings: StackSettings;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lifeline-cli-test-'));
  dataDir = join(dir, 'data');
  const [port, uiPort, minioPort, consolePort] = await freePorts(4);
  settings = {
    dataDir,
    host: '127.0.0.1',
    namespace: 'default',
    temporal: { enabled: true, port: port!, uiPort: uiPort!, ui: true },
    minio: { enabled: true, port: minioPort!, consolePort: consolePort! },
  };
  configFile = join(dir, 'lifeline.yaml');
  writeFileSync(
    configFile,
    [
      'devstack:',
      `  dataDir: ${dataDir}`,
      `  temporal: { port: ${port}, uiPort: ${uiPort} }`,
      `  minio: { port: ${minioPort}, consolePort: ${consolePort} }`,
      'storage:',
      '  bucket: cli-test',
      'logging:',
      '  level: info',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  // Whatever happened above, leave no services behind.
  if (settings) await down(settings).catch(() => {});
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function nothingStarted() {
  expect(existsSync(dataDir)).toBe(false);
  expect(await portInUse('127.0.0.1', settings.temporal.port)).toBe(false);
  expect(await portInUse('127.0.0.1', settings.minio.port)).toBe(false);
}

describe('config errors: one line naming file, key path and problem; nothing starts', () => {
  const cases: [string, (cfg: string) => string, (file: string) => string][] = [
    ['a typo in a key', (c) => c.replace('  bucket: cli-test', '  bucekt: cli-test'), (f) => `${f}: storage.bucekt: unknown key; did you mean "bucket"?`],
    ['a wrong type', (c) => c.replace('  bucket: cli-test', '  bucket: 12345'), (f) => `${f}: storage.bucket: expected string, got number`],
    [
      'a missing secret file',
      (c) =>
        c.replace(
          '  bucket: cli-test',
          `  bucket: cli-test\n  endpoint: http://127.0.0.1:${settings.minio.port}\n  credentials:\n    accessKeyId: { file: ${join(dir, 'ak')} }\n    secretAccessKey: { file: ${join(dir, 'missing-secret')} }`,
        ),
      (f) => `${f}: storage.credentials.secretAccessKey: secret file ${join(dir, 'missing-secret')} does not exist`,
    ],
  ];
  for (const [name, edit, expected] of cases) {
    it(name, async () => {
      writeFileSync(join(dir, 'ak'), 'AKIAPRESENTBUTUNUSED\n');
      const bad = join(dir, `bad-${name.replace(/\W+/g, '-')}.yaml`);
      writeFileSync(bad, edit(readFileSync(configFile, 'utf8')));
      for (const cmd of [['up'], ['demo'], ['smoke']]) {
        const r = await runCli(['--config', bad, ...cmd]);
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toBe(expected(bad) + '\n');
        expect(r.stderr).not.toContain('AKIAPRESENTBUTUNUSED');
      }
      await nothingStarted();
    }, 240_000);
  }
});

describe('lifeline up / status / worker / demo / down', () => {
  it('refuses a port held by another process with one line naming it, and starts nothing', async () => {
    const squatter: Server = createServer();
    await new Promise<void>((r) => squatter.listen(settings.minio.port, '127.0.0.1', r));
    try {
      const r = await runCli(['--config', configFile, 'up']);
      expect(r.code).toBe(1);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`lifeline: port ${settings.minio.port} (MinIO S3 API) on 127.0.0.1 is already in use by a process lifeline did not start`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(await portInUse('127.0.0.1', settings.temporal.port)).toBe(false);
      expect(existsSync(stackLayout(dataDir).temporalRecord)).toBe(false);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('runs the whole lifecycle', async () => {
    const env = {};
    // up starts both services and waits for health
    const first = parseJson(await runCli(['--config', configFile, 'up', '--json'], { env }));
    expect(first.services.map((s: any) => [s.service, s.state])).toEqual([
      ['temporal', 'started'],
      ['minio', 'started'],
    ]);
    // the embedded default's audit log is made ready: key file, locked bucket, first entry
    expect(first.audit).toMatchObject({ keyId: expect.stringMatching(/^[0-9a-f]{32}$/), created: { keyFile: true, log: true } });
    // up again reuses the same processes (and the audit log)
    const again = parseJson(await runCli(['--config', configFile, 'up', '--json'], { env }));
    expect(again.services.map((s: any) => [s.service, s.state, s.pid])).toEqual(first.services.map((s: any) => [s.service, 'reused', s.pid]));
    expect(again.audit).toMatchObject({ keyId: first.audit.keyId, created: { keyFile: false, log: false } });

    // a node agent started by the CLI shows up in status
    const agent = startCli(['--config', configFile, 'worker', '--role', 'node-agent', '--node', 'cli-n1'], { env });
    let agentErr = '';
    agent.stderr!.on('data', (d) => (agentErr += d));
    const agentExit = new Promise<number | null>((r) => agent.on('close', r));
    try {
      const status = await waitFor(
        'the node agent to poll lifeline-node-cli-n1',
        async () => {
          if (agent.exitCode !== null) throw new Error(`worker exited ${agent.exitCode}: ${agentErr}`);
          const r = await runCli(['--config', configFile, 'status', '--json', '--node', 'cli-n1'], { env });
          const s = parseJson(r);
          const q = s.taskQueues.find((t: any) => t.name === 'lifeline-node-cli-n1');
          return q?.activityPollers.length ? { r, s } : null;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      );
      expect(status.r.code).toBe(0);
      expect(status.s.healthy).toBe(true);
      const [temporal, storage] = status.s.services;
      expect(temporal).toMatchObject({ service: 'temporal', mode: 'embedded', healthy: true, running: true, address: `127.0.0.1:${settings.temporal.port}`, ui: `http://127.0.0.1:${settings.temporal.uiPort}` });
      expect(storage).toMatchObject({ service: 'storage', mode: 'embedded', healthy: true, running: true, address: `http://127.0.0.1:${settings.minio.port}`, bucket: 'cli-test' });
      expect(status.s.taskQueues.find((t: any) => t.name === 'lifeline-node-cli-n1').activityPollers[0].identity).toMatch(/^node-agent:cli-n1@\d+$/);

      // the Temporal UI answers on its port
      const ui = await fetch(`http://127.0.0.1:${settings.temporal.uiPort}/`);
      expect(ui.status).toBe(200);

      // smoke reuses the stack and runs the smoke workflow, here through the node agent
      const demo = await runCli(['--config', configFile, 'smoke', '--json', '--node', 'cli-n1', '--size', '200000'], { env });
      const d = parseJson(demo);
      expect(demo.code).toBe(0);
      expect(d.stack.map((s: any) => s.state)).toEqual(['reused', 'reused']);
      expect(d.smoke.result).toMatchObject({ matched: true, bytes: 200000, bucket: 'cli-test', taskQueue: 'lifeline-node-cli-n1', cleanedUp: true });
    } finally {
      agent.kill('SIGTERM');
    }
    expect(await agentExit).toBe(0);

    // human-readable status names both services and the UI link
    const text = await runCli(['--config', configFile, 'status'], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^Temporal healthy/m);
    expect(text.stdout).toMatch(/^Storage  healthy/m);
    expect(text.stdout).toContain(`UI http://127.0.0.1:${settings.temporal.uiPort}`);

    // down stops both; status then says so (exit 3)
    const downR = parseJson(await runCli(['--config', configFile, 'down', '--json'], { env }));
    expect(downR.services.map((s: any) => [s.service, s.state])).toEqual([
      ['temporal', 'stopped'],
      ['minio', 'stopped'],
    ]);
    const after = await runCli(['--config', configFile, 'status', '--json'], { env });
    expect(after.code).toBe(3);
    const a = parseJson(after);
    expect(a.healthy).toBe(false);
    expect(a.services.map((s: any) => [s.service, s.healthy, s.running])).toEqual([
      ['temporal', false, false],
      ['storage', false, false],
    ]);
    expect(await portInUse('127.0.0.1', settings.temporal.port)).toBe(false);
    expect(await portInUse('127.0.0.1', settings.minio.port)).toBe(false);

    // the generated credentials are private and appear in no service log
    const layout = stackLayout(dataDir);
    const creds = JSON.parse(readFileSync(layout.minioCredentials, 'utf8'));
    const { statSync } = await import('node:fs');
    expect(statSync(layout.minioCredentials).mode & 0o777).toBe(0o600);
    // up also made one MinIO user per storage role (README "Least privilege"), keys private, never printed
    const roles = JSON.parse(readFileSync(layout.minioRoles, 'utf8'));
    expect(statSync(layout.minioRoles).mode & 0o777).toBe(0o600);
    expect(Object.keys(roles).sort()).toEqual(['audit', 'backup', 'retention', 'verifier']);
    const roleSecrets = Object.values(roles as Record<string, { accessKeyId: string; secretAccessKey: string }>).flatMap((c) => [c.accessKeyId, c.secretAccessKey]);
    expect(new Set(roleSecrets).size).toBe(8);
    for (const log of [layout.temporalLog, layout.minioLog]) {
      const text = readFileSync(log, 'utf8');
      expect(text.length).toBeGreaterThan(0);
      expect(text).not.toContain(creds.secretAccessKey);
      expect(text).not.toContain(creds.accessKeyId);
      for (const secret of roleSecrets) expect(text).not.toContain(secret);
    }
    for (const secret of roleSecrets) expect(first.services.map((x: any) => JSON.stringify(x)).join('') + JSON.stringify(again)).not.toContain(secret);
  }, 600_000);
});
