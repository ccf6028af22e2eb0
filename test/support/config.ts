/** A Lifeline config pointing at the shared test services (external mode: nothing is started). */
import { configFromObject, type LoadedConfig } from '../../config/load';
import type { LifelineConfigInput } from '../../config/schema';
import { testServices } from './services';

/** Env vars the test config's secret references point at (set in this process by testConfig). */
export const TEST_ACCESS_KEY_ENV = 'LIFELINE_TEST_CONFIG_ACCESS_KEY';
export const TEST_SECRET_KEY_ENV = 'LIFELINE_TEST_CONFIG_SECRET_KEY';

export function testConfig(opts: { bucket: string; prefix?: string; extra?: Partial<LifelineConfigInput> }): LoadedConfig {
  const svc = testServices();
  process.env[TEST_ACCESS_KEY_ENV] = svc.s3.accessKeyId;
  process.env[TEST_SECRET_KEY_ENV] = svc.s3.secretAccessKey;
  return configFromObject(
    {
      ...opts.extra,
      temporal: { address: svc.temporal.address, namespace: svc.temporal.namespace },
      storage: {
        endpoint: svc.s3.endpoint,
        region: svc.s3.region,
        bucket: opts.bucket,
        prefix: opts.prefix ?? '',
        forcePathStyle: true,
        credentials: { accessKeyId: { env: TEST_ACCESS_KEY_ENV }, secretAccessKey: { env: TEST_SECRET_KEY_ENV } },
      },
    },
    { source: 'test config' },
  );
}
