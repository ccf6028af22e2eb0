/**
 * Smoke activities: prove a worker can reach the object store end to end by
 * writing an object, reading it back and comparing digests. Only keys,
 * sizes and digests cross the workflow boundary.
 */
import { createHash, randomBytes } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ApplicationFailure, Context, log } from '@temporalio/activity';
import { StorageAccessDenied, ensureBucket } from './s3';

export interface SmokeDeps {
  s3: S3Client;
  bucket: string;
  prefix: string;
}

export interface SmokeWriteInput {
  /** Key relative to the storage prefix. */
  key: string;
  sizeBytes: number;
}

export interface SmokeObject {
  bucket: string;
  /** Full object key (prefix included). */
  key: string;
  bytes: number;
  /** hex SHA-256 of the content */
  sha256: string;
}

export interface SmokeVerifyResult extends SmokeObject {
  matched: boolean;
}

const MAX_SMOKE_BYTES = 64 * 1024 * 1024;

export function createSmokeActivities(deps: SmokeDeps) {
  const fullKey = (key: string) => `${deps.prefix}${key}`;
  return {
    async smokeWrite(input: SmokeWriteInput): Promise<SmokeObject> {
      if (!Number.isInteger(input.sizeBytes) || input.sizeBytes < 1 || input.sizeBytes > MAX_SMOKE_BYTES) {
        throw ApplicationFailure.nonRetryable(`sizeBytes must be 1…${MAX_SMOKE_BYTES}`, 'InvalidInput');
      }
      const signal = Context.current().cancellationSignal;
      const created = await ensureBucket(deps.s3, deps.bucket, { signal }).catch((e: unknown) => {
        if (e instanceof StorageAccessDenied) throw ApplicationFailure.nonRetryable(e.message, 'StorageAccessDenied');
        throw e;
      });
      if (created === 'created') log.info('created bucket', { bucket: deps.bucket });
      const body = randomBytes(input.sizeBytes);
      const sha256 = createHash('sha256').update(body).digest();
      const key = fullKey(input.key);
      await deps.s3.send(
        new PutObjectCommand({
          Bucket: deps.bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
          ChecksumSHA256: sha256.toString('base64'),
          ContentType: 'application/octet-stream',
        }),
        { abortSignal: signal },
      );
      log.info('smoke object written', { bucket: deps.bucket, key, bytes: body.length });
      return { bucket: deps.bucket, key, bytes: body.length, sha256: sha256.toString('hex') };
    },

    async smokeVerify(expected: SmokeObject): Promise<SmokeVerifyResult> {
      const signal = Context.current().cancellationSignal;
      const res = await deps.s3.send(new GetObjectCommand({ Bucket: expected.bucket, Key: expected.key, ChecksumMode: 'ENABLED' }), {
        abortSignal: signal,
      });
      const body = Buffer.from(await res.Body!.transformToByteArray());
      const sha256 = createHash('sha256').update(body).digest('hex');
      const matched = sha256 === expected.sha256 && body.length === expected.bytes;
      log[matched ? 'info' : 'error']('smoke object read back', { key: expected.key, bytes: body.length, matched });
      return { bucket: expected.bucket, key: expected.key, bytes: body.length, sha256, matched };
    },

    async smokeDelete(obj: Pick<SmokeObject, 'bucket' | 'key'>): Promise<void> {
      await deps.s3.send(new DeleteObjectCommand({ Bucket: obj.bucket, Key: obj.key }), {
        abortSignal: Context.current().cancellationSignal,
      });
      log.debug('smoke object deleted', { key: obj.key });
    },
  };
}
