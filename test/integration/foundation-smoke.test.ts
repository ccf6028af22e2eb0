import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { createBufferLogger } from '../../logging/logger';
import { runSmoke } from '../../workers/smoke';
import { testConfig } from '../support/config';
import { createTestBucket, testS3Client, uniqueTaskQueue } from '../support/services';

describe('smoke workflow against the shared test services', () => {
  it('writes an object through a worker, reads it back, compares and cleans up', async () => {
    const bucket = await createTestBucket('smoke');
    const config = testConfig({ bucket, prefix: 'smoke-test/' });
    const { logger } = createBufferLogger({ level: 'info' });
    const run = await runSmoke({ config, logger, taskQueue: uniqueTaskQueue('smoke'), sizeBytes: 300_000 });
    expect(run.result.matched).toBe(true);
    expect(run.result.bucket).toBe(bucket);
    expect(run.result.bytes).toBe(300_000);
    expect(run.result.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(run.result.key.startsWith('smoke-test/smoke/')).toBe(true);
    expect(run.result.cleanedUp).toBe(true);
    // cleaned up: the object is gone
    await expect(testS3Client().send(new HeadObjectCommand({ Bucket: bucket, Key: run.result.key }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
  });
});
