/** S3 client construction from resolved storage settings (any S3-compatible store). */
import { CreateBucketCommand, HeadBucketCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import type { ResolvedStorage } from '../config/storage';

export function createS3Client(storage: ResolvedStorage): S3Client {
  const { endpoint, route } = storage;
  return new S3Client({
    // A drill may route this worker's traffic through its fault proxy (drills/storage-route.ts).
    endpoint: endpoint && route ? async () => ({ url: new URL(route() ?? endpoint) }) : endpoint,
    region: storage.region,
    forcePathStyle: storage.forcePathStyle,
    credentials: { ...storage.credentials },
    // Retries for transient errors; Temporal retries the activity on top.
    maxAttempts: 3,
  });
}

/** The store refused the credentials for this bucket: retrying will not help. */
export class StorageAccessDenied extends Error {
  override readonly name = 'StorageAccessDenied';
}

function statusOf(e: unknown): number | undefined {
  return e instanceof S3ServiceException ? e.$metadata.httpStatusCode : (e as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/**
 * Create the bucket when it does not exist. Only a 404 on HeadBucket leads to
 * CreateBucket, so a store where Lifeline may not create buckets still works
 * when the bucket is there.
 */
export async function ensureBucket(client: S3Client, bucket: string, opts: { objectLock?: boolean; signal?: AbortSignal } = {}): Promise<'exists' | 'created'> {
  try {
    await client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: opts.signal });
    return 'exists';
  } catch (e) {
    const status = statusOf(e);
    if (status === 403) throw new StorageAccessDenied(`access denied to bucket ${bucket} (check storage.credentials)`, { cause: e });
    if (status !== 404) throw e;
  }
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: opts.objectLock || undefined }), {
      abortSignal: opts.signal,
    });
    return 'created';
  } catch (e) {
    const name = (e as Error).name;
    if (name === 'BucketAlreadyOwnedByYou') return 'exists';
    throw e;
  }
}
