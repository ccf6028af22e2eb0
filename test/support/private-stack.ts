/**
 * A devstack of a test's own (own data folder, free ports) for tests that
 * stop or kill a service: the shared test services are never disturbed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureMinioCredentials, minioEndpoint, stackLayout, type StackSettings } from '../../devstack/layout';
import { freePorts } from '../../devstack/process';
import { down } from '../../devstack/stack';

export interface PrivateStack {
  dir: string;
  settings: StackSettings;
}

/** Settings for a private stack in a new folder named after `prefix`, with only the services asked for enabled; it is not started (`up(settings)`). */
export async function privateStack(prefix: string, services: { temporal?: boolean; minio?: boolean }): Promise<PrivateStack> {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const [port, uiPort, minioPort, consolePort] = await freePorts(4);
  return {
    dir,
    settings: {
      dataDir: dir,
      host: '127.0.0.1',
      namespace: 'default',
      temporal: { enabled: services.temporal ?? false, port: port!, uiPort: uiPort!, ui: false },
      minio: { enabled: services.minio ?? false, port: minioPort!, consolePort: consolePort! },
    },
  };
}

/** Stops the stack's services and removes its folder; either may be missing (setup failed half way). */
export async function removePrivateStack(stack: Partial<PrivateStack>): Promise<void> {
  if (stack.settings) await down(stack.settings).catch(() => undefined);
  if (stack.dir) rmSync(stack.dir, { recursive: true, force: true });
}

/** The private MinIO's endpoint and root credentials, as makeEnv's `s3` option. */
export function privateMinioS3(stack: PrivateStack): { endpoint: string; accessKeyId: string; secretAccessKey: string } {
  const creds = ensureMinioCredentials(stackLayout(stack.dir).minioCredentials);
  return { endpoint: minioEndpoint(stack.settings), accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey };
}
