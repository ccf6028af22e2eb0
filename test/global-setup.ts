/**
 * One Temporal dev server and one MinIO for the whole integration run, started
 * with the same devstack code as `lifeline up` but on free ports and a fresh
 * data folder under the OS temp dir; stopped (and removed) in teardown.
 *
 * With LIFELINE_TEST_TEMPORAL_ADDRESS / LIFELINE_TEST_S3_* set, nothing is
 * started and those services are used.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureMinioCredentials, minioEndpoint, stackLayout, temporalAddress, type StackSettings } from '../devstack/layout';
import { freePorts } from '../devstack/process';
import { down, up } from '../devstack/stack';
import { ensureTools } from '../devstack/tools.mjs';
import { servicesFromEnv, type TestServices } from './support/services';

export default async function setup(project: TestProject) {
  const external = servicesFromEnv();
  if (external) {
    project.provide('lifelineServices', external);
    project.provide('lifelineServicesDataDir', null);
    return;
  }
  const log = (m: string) => process.stderr.write(`[test-services] ${m}\n`);
  await ensureTools(['temporal', 'minio', 'mc'], { log });

  const dataDir = mkdtempSync(join(tmpdir(), 'lifeline-test-'));
  const [port, uiPort, minioPort, consolePort] = await freePorts(4);
  const settings: StackSettings = {
    dataDir,
    host: '127.0.0.1',
    namespace: 'default',
    temporal: { enabled: true, port: port!, uiPort: uiPort!, ui: false },
    minio: { enabled: true, port: minioPort!, consolePort: consolePort! },
  };
  const t0 = Date.now();
  try {
    await up(settings, { log, healthTimeoutMs: 180_000 });
  } catch (e) {
    await down(settings).catch(() => {});
    throw e;
  }
  log(`Temporal ${temporalAddress(settings)}, MinIO ${minioEndpoint(settings)} up in ${((Date.now() - t0) / 1000).toFixed(1)} s (data: ${dataDir})`);

  const creds = ensureMinioCredentials(stackLayout(dataDir).minioCredentials);
  const services: TestServices = {
    temporal: { address: temporalAddress(settings), namespace: settings.namespace },
    s3: { endpoint: minioEndpoint(settings), region: 'us-east-1', accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey },
  };
  project.provide('lifelineServices', services);
  project.provide('lifelineServicesDataDir', dataDir);

  return async () => {
    await down(settings, { log });
    if (!process.env.LIFELINE_TEST_KEEP_DATA) rmSync(dataDir, { recursive: true, force: true });
    else log(`kept test data in ${dataDir}`);
  };
}
