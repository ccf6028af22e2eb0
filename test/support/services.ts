/**
 * Connection info for the services the test run shares (one Temporal dev
 * server, one MinIO), started by test/global-setup.ts — or external ones
 * given by LIFELINE_TEST_* environment variables.
 */
import { randomBytes } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { inject } from 'vitest';
import { ensureBucket } from '../../activities/s3';

export interface TestServices {
  temporal: { address: string; namespace: string };
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
}

declare module 'vitest' {
  export interface ProvidedContext {
    lifelineServices: TestServices | null;
    /** Data folder of the embedded test stack (logs in <dir>/logs), or null for external services. */
    lifelineServicesDataDir: string | null;
  }
}

/** Services from LIFELINE_TEST_* env vars when LIFELINE_TEST_TEMPORAL_ADDRESS and LIFELINE_TEST_S3_ENDPOINT are set. */
export function servicesFromEnv(env: NodeJS.ProcessEnv = process.env): TestServices | null {
  const address = env.LIFELINE_TEST_TEMPORAL_ADDRESS;
  const endpoint = env.LIFELINE_TEST_S3_ENDPOINT;
  if (!address && !endpoint) return null;
  const missing = ['LIFELINE_TEST_TEMPORAL_ADDRESS', 'LIFELINE_TEST_S3_ENDPOINT', 'LIFELINE_TEST_S3_ACCESS_KEY', 'LIFELINE_TEST_S3_SECRET_KEY'].filter(
    (n) => !env[n],
  );
  if (missing.length) throw new Error(`external test services need ${missing.join(', ')} too`);
  return {
    temporal: { address: address!, namespace: env.LIFELINE_TEST_TEMPORAL_NAMESPACE || 'default' },
    s3: {
      endpoint: endpoint!,
      region: env.LIFELINE_TEST_S3_REGION || 'us-east-1',
      accessKeyId: env.LIFELINE_TEST_S3_ACCESS_KEY!,
      secretAccessKey: env.LIFELINE_TEST_S3_SECRET_KEY!,
    },
  };
}

export function testServices(): TestServices {
  const fromEnv = servicesFromEnv();
  if (fromEnv) return fromEnv;
  const provided = inject('lifelineServices');
  if (!provided) {
    throw new Error(
      'no test services: this test file needs the integration project (test/global-setup.ts) or LIFELINE_TEST_* variables; put it outside test/unit',
    );
  }
  return provided;
}

/** Data folder of the shared embedded test stack, or null with external services. */
export function testServicesDataDir(): string | null {
  return servicesFromEnv() ? null : (inject('lifelineServicesDataDir') ?? null);
}

let client: S3Client | null = null;

/** An S3 client for the test services (shared within a test file). */
export function testS3Client(): S3Client {
  if (!client) {
    const { s3 } = testServices();
    client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
  }
  return client;
}

function slug(label: string, max: number): string {
  const s = label.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, max).replace(/-+$/, '');
  return s || 'x';
}

/** Create a fresh, uniquely named bucket (optionally with Object Lock) and return its name. */
export async function createTestBucket(label: string, opts: { objectLock?: boolean } = {}): Promise<string> {
  const name = `t-${slug(label, 36)}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const created = await ensureBucket(testS3Client(), name, { objectLock: opts.objectLock });
  if (created !== 'created') throw new Error(`bucket ${name} already existed`);
  return name;
}

/** A task queue name no other test uses. */
export function uniqueTaskQueue(label: string): string {
  return `test-${slug(label, 40)}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}
