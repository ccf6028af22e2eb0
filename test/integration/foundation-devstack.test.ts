/** Process plumbing of the dev stack: port probes, detached services, SIGTERM → SIGKILL fallback, stale records. */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureMinioCredentials, readMinioCredentials, stackLayout } from '../../devstack/layout';
import { freePorts, pidAlive, portInUse, processMatches, spawnDetached, stopProcess, waitFor, writeRecord } from '../../devstack/process';
import { embeddedStatus, runningRecord } from '../../devstack/stack';
import { scrubString } from '../../logging/redact';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-devstack-test-'));
const started: number[] = [];
afterAll(async () => {
  for (const pid of started) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('devstack process plumbing', () => {
  it('portInUse sees a listener and freePorts returns distinct free ports', async () => {
    const ports = await freePorts(4);
    expect(new Set(ports).size).toBe(4);
    for (const p of ports) expect(await portInUse('127.0.0.1', p)).toBe(false);
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(ports[0], '127.0.0.1', r));
    try {
      expect(await portInUse('127.0.0.1', ports[0]!)).toBe(true);
    } finally {
      await new Promise((r) => srv.close(r));
    }
    expect(await portInUse('127.0.0.1', ports[0]!)).toBe(false);
  });

  it('a detached service writes to its log file and stops on SIGTERM', async () => {
    const log = join(dir, 'svc.log');
    const pid = spawnDetached('/bin/sh', ['-c', 'echo started; exec sleep 300'], { logFile: log });
    started.push(pid);
    await waitFor('the log line', () => readFileSync(log, 'utf8').includes('started'), { timeoutMs: 30_000 });
    expect(processMatches(pid, '/bin/sh') || processMatches(pid, 'sleep')).toBe(true);
    expect(await stopProcess(pid, 10_000)).toBe('terminated');
    await waitFor('reaped', () => !pidAlive(pid), { timeoutMs: 10_000 });
  });

  it('a service that ignores SIGTERM is killed after the grace period', async () => {
    const pid = spawnDetached('/bin/sh', ['-c', 'trap "" TERM; echo ready; while :; do sleep 1; done'], { logFile: join(dir, 'stubborn.log') });
    started.push(pid);
    await waitFor('ready', () => readFileSync(join(dir, 'stubborn.log'), 'utf8').includes('ready'), { timeoutMs: 30_000 });
    const t0 = Date.now();
    expect(await stopProcess(pid, 1500)).toBe('killed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    await waitFor('reaped', () => !pidAlive(pid), { timeoutMs: 10_000 });
    expect(await stopProcess(pid)).toBe('not-running');
  });

  it('a record whose process is gone (or is another program) is stale and removed', async () => {
    const layout = stackLayout(join(dir, 'stack'));
    const pid = spawnDetached('/bin/sh', ['-c', 'exec sleep 300'], { logFile: join(dir, 'other.log') });
    started.push(pid);
    // the pid is alive but it is not the recorded executable (pid reuse)
    writeRecord(layout.temporalRecord, { service: 'temporal', pid, executable: '/not/temporal', args: [], logFile: '', startedAt: '', info: {} });
    expect(runningRecord(layout.temporalRecord)).toBeNull();
    const status = await embeddedStatus({
      dataDir: layout.dataDir,
      host: '127.0.0.1',
      namespace: 'default',
      temporal: { enabled: true, port: 1, uiPort: 2, ui: false },
      minio: { enabled: false, port: 3, consolePort: 4 },
    });
    expect(status).toEqual([expect.objectContaining({ service: 'temporal', running: false, healthy: false })]);
    process.kill(pid, 'SIGKILL');
  });

  it('generated MinIO credentials are random, private, stable and registered for scrubbing', () => {
    const file = join(dir, 'creds', 'minio-root.json');
    const a = ensureMinioCredentials(file);
    const b = ensureMinioCredentials(file);
    expect(b).toEqual(a);
    expect(a.accessKeyId).toMatch(/^LL[A-Z2-7]{18}$/);
    expect(a.secretAccessKey.length).toBeGreaterThanOrEqual(40);
    expect(readMinioCredentials(join(dir, 'creds', 'absent.json'))).toBeNull();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'creds')).mode & 0o777).toBe(0o700);
    expect(scrubString(`user ${a.accessKeyId} pass ${a.secretAccessKey}`)).toBe('user [REDACTED] pass [REDACTED]');
    const other = ensureMinioCredentials(join(dir, 'creds2', 'minio-root.json'));
    expect(other.secretAccessKey).not.toBe(a.secretAccessKey);
  });
});
