/**
 * No secret ever reaches the logs: a realistic flow (deployment-style config
 * with secret files → worker with the SDK logger installed → smoke workflow)
 * logged at debug level into a buffer must not contain the MinIO root
 * credentials (the access key pair this stack runs on) anywhere.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load';
import { resolveStorage } from '../../config/storage';
import { stackLayout } from '../../devstack/layout';
import { createBufferLogger } from '../../logging/logger';
import { runSmoke } from '../../workers/smoke';
import { createTestBucket, testServices, testServicesDataDir, uniqueTaskQueue } from '../support/services';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-secrets-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('no secrets in logs', () => {
  it('a debug-level smoke run logs context but never the credentials', async () => {
    const svc = testServices();
    const secrets = [svc.s3.accessKeyId, svc.s3.secretAccessKey];
    const bucket = await createTestBucket('nosecrets');

    // Deployment-style: credentials in 0600 files referenced by the config.
    writeFileSync(join(dir, 'access-key'), svc.s3.accessKeyId + '\n', { mode: 0o600 });
    writeFileSync(join(dir, 'secret-key'), svc.s3.secretAccessKey + '\n', { mode: 0o600 });
    const configFile = join(dir, 'lifeline.yaml');
    writeFileSync(
      configFile,
      [
        'temporal:',
        `  address: ${svc.temporal.address}`,
        `  namespace: ${svc.temporal.namespace}`,
        'storage:',
        `  endpoint: ${svc.s3.endpoint}`,
        `  bucket: ${bucket}`,
        '  prefix: secrets-test/',
        '  credentials:',
        `    accessKeyId: { file: ${join(dir, 'access-key')} }`,
        `    secretAccessKey: { file: ${join(dir, 'secret-key')} }`,
        'logging:',
        '  level: debug',
        '',
      ].join('\n'),
    );
    const config = loadConfig({ configPath: configFile, env: {} });
    const { logger, lines, text } = createBufferLogger({ level: config.logging.level });

    // The things a careless line might log: the config, the resolved storage, an error holding a key.
    logger.debug({ config: { ...config } }, 'config loaded');
    const storage = resolveStorage(config, {});
    logger.debug({ storage }, 'storage resolved');
    logger.debug(`S3 client for ${storage.endpoint} as ${storage.credentials.accessKeyId}`);
    logger.warn({ err: new Error(`SignatureDoesNotMatch for key ${storage.credentials.secretAccessKey}`) }, 'simulated S3 failure');

    const run = await runSmoke({ config, logger, taskQueue: uniqueTaskQueue('nosecrets'), sizeBytes: 128 * 1024 });
    expect(run.result.matched).toBe(true);

    // Wait for the SDK's forwarded core logs (buffered up to 100 ms) to land.
    await new Promise((r) => setTimeout(r, 500));
    const all = text();
    const parsed = lines().map((l) => JSON.parse(l) as Record<string, unknown>);

    // The capture is real: debug lines, workflow and activity context from the SDK, core logs.
    expect(parsed.some((l) => l.level === 20)).toBe(true);
    expect(parsed.some((l) => l.workflowId === run.workflowId && l.runId === run.runId && l.sdkComponent === 'workflow')).toBe(true);
    expect(parsed.some((l) => l.workflowId === run.workflowId && typeof l.activityId === 'string' && l.activityType === 'smokeWrite')).toBe(true);
    expect(parsed.some((l) => l.sdkComponent === 'core')).toBe(true);
    expect(all).toContain('[REDACTED]');

    for (const s of secrets) {
      expect(all.includes(s), 'a credential appeared in the logs').toBe(false);
    }

    // The shared test stack's own service logs hold no credentials either.
    const data = testServicesDataDir();
    if (data) {
      const layout = stackLayout(data);
      for (const f of [layout.minioLog, layout.temporalLog]) {
        const t = readFileSync(f, 'utf8');
        for (const s of secrets) expect(t.includes(s), `a credential appeared in ${f}`).toBe(false);
      }
    }
  }, 300_000);
});
