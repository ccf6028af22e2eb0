/**
 * `ObjectStore` on any S3-compatible service (AWS S3, MinIO, …) with
 * `@aws-sdk/client-s3`.
 *
 * - Integrity: every upload carries a SHA-256 we computed (`x-amz-checksum-sha256`;
 *   per part for multipart uploads, whose object checksum is then the composite
 *   "checksum of part checksums-N"); downloads ask for the stored checksum
 *   (`ChecksumMode: ENABLED`) and the SDK checks whole-object checksums on the
 *   body; `head` reports the SHA-256 when the store has a full-object one.
 * - Conditional create: `ifNoneMatch` sends `If-None-Match: *`; on 412 the
 *   existing object is compared, so a retried put of the same bytes succeeds.
 * - Object Lock: `retention` / `legalHold` send `x-amz-object-lock-mode`,
 *   `-retain-until-date` and `-legal-hold` (the bucket must have been created
 *   with Object Lock; AWS then requires the checksum every put carries anyway).
 * - Large files: parallel multipart upload from a file with a bounded buffer
 *   pool, resumable (ListParts, skip parts whose size and checksum match).
 *   Nothing is aborted on failure so the upload can resume.
 * - Failures: transient ones (network, timeouts, 5xx, 429/SlowDown) are retried
 *   with exponential backoff and jitter within a time budget, with a warning per
 *   retry; permanent ones fail at once as `StorageError(permanent)` whose
 *   message names `s3://bucket/prefix/key` and what to do. Messages and causes
 *   never contain credentials (SDK errors are replaced by sanitized copies).
 */
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import { inspect } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  type CompletedPart,
  CreateBucketCommand,
  type CreateBucketCommandInput,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import {
  type ByteRange,
  type MultipartResumeState,
  ObjectExistsError,
  type ObjectInfo,
  ObjectNotFoundError,
  type ObjectVersion,
  type ObjectStore,
  type PutLargeOptions,
  type PutOptions,
  StorageError,
} from './object-store';
import { DEFAULT_RETRY_POLICY, type RetryPolicy, RetryExhaustedError, type RetryVerdict, withRetry } from './retry';

export interface S3StoreOptions {
  /** e.g. `http://127.0.0.1:9000` for MinIO; omit for AWS. */
  endpoint?: string;
  /**
   * Asked on every request: an endpoint to use instead of `endpoint` right now
   * (a drill's fault proxy), or undefined for `endpoint` itself.
   */
  endpointRoute?: () => string | undefined;
  region: string;
  bucket: string;
  /** Root of the repository inside the bucket ('' allowed); surrounding slashes are ignored. */
  prefix: string;
  /** Path-style URLs (default: true when `endpoint` is set). */
  forcePathStyle?: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Attempts per request for transient errors (default: unlimited within `retryBudgetMs`). */
  maxAttempts?: number;
  /** Total time to keep retrying transient errors, default 120000. */
  retryBudgetMs?: number;
  /** First retry delay in ms (default 250), doubling up to `maxRetryDelayMs` (default 15000). */
  retryBaseDelayMs?: number;
  maxRetryDelayMs?: number;
  logger?: { warn(obj: object, msg: string): void };
  /** Keys per ListObjectsV2 page (default 1000, the S3 maximum). */
  listPageSize?: number;
  /** Default part size of `putFile` (default 16 MiB). */
  partSize?: number;
  /** Default parallel parts of `putFile` (default 4). */
  concurrency?: number;
  /** TCP connect timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** Socket inactivity timeout per request (default 120 s). */
  requestTimeoutMs?: number;
}

/** A storage error from S3, with the service's error code and HTTP status when there was a response. */
export class S3StorageError extends StorageError {
  constructor(
    message: string,
    key: string | undefined,
    permanent: boolean,
    readonly code: string | undefined,
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, key, permanent, options);
    this.name = 'S3StorageError';
  }
}

const MiB = 1024 * 1024;
const DEFAULT_PART_SIZE = 16 * MiB;
const DEFAULT_CONCURRENCY = 4;
const MIN_PART_SIZE = 5 * MiB;
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10_000;
/** Part buffers kept between `putFile` calls (memory already mapped is much faster to fill). */
const MAX_POOLED_PART_BUFFERS = 8;

// ---------------------------------------------------------------------------
// Error classification

interface ErrorFacts {
  code?: string;
  status?: number;
  message: string;
  requestId?: string;
  network: boolean;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_HTTP2_STREAM_ERROR',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const NETWORK_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'NetworkingError']);

/** Service error codes worth retrying even though some come with a 4xx status. */
const TRANSIENT_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'OperationAborted',
  'ConditionalRequestConflict',
  'XMinioServerNotInitialized',
  'XMinioReadQuorum',
  'XMinioWriteQuorum',
  // MinIO's HTTP 499 when the connection broke mid-request (e.g. the server is shutting down): a network failure, not a refusal
  'ClientDisconnected',
]);

const CHECKSUM_UPLOAD_CODES = new Set(['BadDigest', 'XAmzContentChecksumMismatch', 'InvalidDigest', 'XAmzContentSHA256Mismatch']);

function errorFacts(err: unknown): ErrorFacts {
  const e = (err ?? {}) as {
    name?: string;
    code?: string;
    Code?: string;
    message?: string;
    errors?: Array<{ code?: string }>;
    $metadata?: { httpStatusCode?: number; requestId?: string };
  };
  const status = e.$metadata?.httpStatusCode;
  const sysCode = e.code ?? e.errors?.find((x) => x?.code)?.code;
  const network = status === undefined && ((sysCode !== undefined && NETWORK_CODES.has(sysCode)) || NETWORK_NAMES.has(e.name ?? '') || /socket hang up/i.test(e.message ?? ''));
  let code: string | undefined = e.Code ?? (status !== undefined ? e.name : sysCode ?? e.name);
  if (code === 'Unknown' || code === 'UnknownError' || code === 'Error') code = undefined;
  return { code, status, message: String(e.message ?? err), requestId: e.$metadata?.requestId, network };
}

function isChecksumReadMismatch(err: unknown): boolean {
  return /^Checksum mismatch/.test((err as Error)?.message ?? '');
}

function isAbortError(err: unknown): boolean {
  const name = (err as Error)?.name;
  return name === 'AbortError';
}

/** Retry policy of one request: transient failures and (a few times) a checksum mismatch on download. */
function classify(err: unknown): RetryVerdict {
  if (err instanceof StorageError) return { retry: false };
  if (isAbortError(err)) return { retry: false };
  if (isChecksumReadMismatch(err)) return { retry: true, maxAttempts: 3 };
  const f = errorFacts(err);
  if (f.network) return { retry: true };
  if (f.code && TRANSIENT_CODES.has(f.code)) return { retry: true };
  if (f.status !== undefined) {
    if (f.status >= 500 || f.status === 429 || f.status === 408) return { retry: true };
    if (f.code === 'RequestTimeTooSkewed') return { retry: true, maxAttempts: 2 }; // the SDK corrects its clock offset
    return { retry: false };
  }
  return { retry: false };
}

/**
 * A copy of an SDK error that keeps what helps debugging (name, code, status,
 * request id, message) and drops everything else the service sent back (AWS
 * echoes `AWSAccessKeyId`, `StringToSign` and `CanonicalRequest` on signature
 * errors), scrubbing any credential string that would still appear.
 */
function sanitizeCause(err: unknown, scrub: (s: string) => string): Error {
  const f = errorFacts(err);
  const name = (err as Error)?.name ?? 'Error';
  const out = new Error(scrub(f.message));
  out.name = name;
  Object.assign(out, {
    ...(f.code ? { code: f.code } : {}),
    ...(f.status !== undefined ? { status: f.status } : {}),
    ...(f.requestId ? { requestId: f.requestId } : {}),
  });
  const stack = (err as Error)?.stack;
  if (typeof stack === 'string') out.stack = scrub(stack);
  return out;
}

// ---------------------------------------------------------------------------
// Helpers

function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Object Lock headers of a put (retention mode and date, legal hold); nothing when not asked for. */
function objectLockParams(opts: PutOptions): {
  ObjectLockMode?: 'GOVERNANCE' | 'COMPLIANCE';
  ObjectLockRetainUntilDate?: Date;
  ObjectLockLegalHoldStatus?: 'ON';
} {
  return {
    ...(opts.retention ? { ObjectLockMode: opts.retention.mode, ObjectLockRetainUntilDate: opts.retention.until } : {}),
    ...(opts.legalHold ? { ObjectLockLegalHoldStatus: 'ON' as const } : {}),
  };
}

/** A multipart object's checksum ("base64-N") is not the SHA-256 of the object. */
function isCompositeChecksum(c: string | undefined): boolean {
  return c !== undefined && /-\d+$/.test(c);
}

function compositeChecksum(partDigests: Buffer[]): string {
  return `${createHash('sha256').update(Buffer.concat(partDigests)).digest('base64')}-${partDigests.length}`;
}

function stripQuotes(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

async function readFully(fh: FileHandle, buf: Uint8Array, len: number, pos: number): Promise<number> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await fh.read(buf, done, len - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** An AbortSignal that fires when any of the given ones does. */
function anySignal(signals: Array<AbortSignal | undefined>): AbortSignal | undefined {
  const list = signals.filter((s): s is AbortSignal => s !== undefined);
  if (list.length <= 1) return list[0];
  return AbortSignal.any(list);
}

/** Sets `x-amz-content-sha256` to a digest we already computed, so the signer does not hash the payload again. */
function withPayloadHash<C extends { middlewareStack: { add: (...args: never[]) => unknown } }>(command: C, digest: Buffer): C {
  const hex = digest.toString('hex');
  (command.middlewareStack as unknown as {
    add(mw: (next: (args: unknown) => Promise<unknown>) => (args: { request: { headers: Record<string, string> } }) => Promise<unknown>, opts: object): void;
  }).add(
    (next) => async (args) => {
      args.request.headers['x-amz-content-sha256'] = hex;
      return next(args);
    },
    { step: 'build', name: 'lifelinePayloadHash' },
  );
  return command;
}

interface CallContext {
  /** What we were doing, for messages: "read", "write", … */
  op: string;
  /** Repository-relative key, if any. */
  key?: string;
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------

export class S3ObjectStore implements ObjectStore {
  readonly client: S3Client;
  readonly location: string;
  readonly bucket: string;
  /** Normalized prefix (no leading/trailing slash; may be empty). */
  readonly prefix: string;
  private readonly endpointLabel: string;
  private readonly policy: RetryPolicy;
  private readonly logger?: S3StoreOptions['logger'];
  private readonly listPageSize: number;
  private readonly defaultPartSize: number;
  private readonly defaultConcurrency: number;
  readonly #secrets: string[];
  /** Set once the bucket is known to exist (HEAD 404s are then missing keys). */
  private bucketExists = false;
  private readonly partPool: Buffer[] = [];

  constructor(opts: S3StoreOptions) {
    if (!opts.bucket) throw new StorageError('no bucket configured for the S3 store', undefined, true);
    this.bucket = opts.bucket;
    this.prefix = (opts.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.location = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.endpointLabel = opts.endpoint ? redactUrl(opts.endpoint) : `AWS S3 (${opts.region})`;
    this.policy = {
      budgetMs: opts.retryBudgetMs ?? DEFAULT_RETRY_POLICY.budgetMs,
      maxAttempts: opts.maxAttempts ?? DEFAULT_RETRY_POLICY.maxAttempts,
      baseDelayMs: opts.retryBaseDelayMs ?? DEFAULT_RETRY_POLICY.baseDelayMs,
      maxDelayMs: opts.maxRetryDelayMs ?? DEFAULT_RETRY_POLICY.maxDelayMs,
    };
    this.logger = opts.logger;
    this.listPageSize = Math.max(1, Math.min(1000, opts.listPageSize ?? 1000));
    this.defaultPartSize = opts.partSize ?? DEFAULT_PART_SIZE;
    this.defaultConcurrency = Math.max(1, opts.concurrency ?? DEFAULT_CONCURRENCY);
    this.#secrets = [opts.credentials.secretAccessKey, opts.credentials.accessKeyId].filter((s) => s && s.length >= 4);
    const { endpoint, endpointRoute } = opts;
    this.client = new S3Client({
      endpoint: endpoint && endpointRoute ? async () => ({ url: new URL(endpointRoute() ?? endpoint) }) : endpoint,
      region: opts.region,
      forcePathStyle: opts.forcePathStyle ?? Boolean(opts.endpoint),
      credentials: { accessKeyId: opts.credentials.accessKeyId, secretAccessKey: opts.credentials.secretAccessKey },
      // Retries are ours (budget, logging, classification).
      maxAttempts: 1,
      // We send SHA-256 checksums ourselves; don't let the SDK add CRC32 elsewhere.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_SUPPORTED',
      requestHandler: {
        connectionTimeout: opts.connectTimeoutMs ?? 10_000,
        requestTimeout: opts.requestTimeoutMs ?? 120_000,
      },
    });
  }

  /**
   * Create the bucket unless it exists (optionally with Object Lock, which
   * MinIO can enable only at creation). Transient errors are retried.
   */
  static async ensureBucket(opts: S3StoreOptions & { objectLock?: boolean }): Promise<void> {
    const store = new S3ObjectStore({ ...opts, prefix: '' });
    try {
      await store.ensureBucketExists(opts.objectLock ?? false, opts.region, !opts.endpoint);
    } finally {
      store.client.destroy();
    }
  }

  private async ensureBucketExists(objectLock: boolean, region: string, isAws: boolean): Promise<void> {
    let exists = true;
    try {
      await this.call({ op: 'check bucket' }, (signal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: signal }));
    } catch (err) {
      if (err instanceof S3StorageError && err.status === 404) exists = false;
      else throw err;
    }
    if (!exists) {
      const input: CreateBucketCommandInput = { Bucket: this.bucket, ObjectLockEnabledForBucket: objectLock || undefined };
      if (isAws && region !== 'us-east-1') input.CreateBucketConfiguration = { LocationConstraint: region as never };
      try {
        await this.call({ op: 'create bucket' }, (signal) => this.client.send(new CreateBucketCommand(input), { abortSignal: signal }));
        this.bucketExists = true;
        return;
      } catch (err) {
        if (!(err instanceof S3StorageError && err.code === 'BucketAlreadyOwnedByYou')) throw err;
      }
    }
    this.bucketExists = true;
    if (objectLock) {
      if (!(await this.objectLockEnabled())) {
        throw new S3StorageError(
          `bucket s3://${this.bucket} exists without Object Lock; Object Lock must be enabled when the bucket is created (MinIO cannot add it later): use a new bucket`,
          undefined,
          true,
          'ObjectLockConfigurationNotFoundError',
          404,
        );
      }
    }
  }

  /** Loggable form (the client holds credentials and is circular). */
  toJSON(): { type: 'S3ObjectStore'; location: string; endpoint: string } {
    return { type: 'S3ObjectStore', location: this.location, endpoint: this.endpointLabel };
  }

  [inspect.custom](): string {
    return `S3ObjectStore { ${this.location} at ${this.endpointLabel} }`;
  }

  /** Full object key in the bucket. */
  objectKey(key: string): string {
    if (typeof key !== 'string' || key.length === 0 || key.startsWith('/')) {
      throw new StorageError(`invalid object key ${JSON.stringify(key)} for ${this.location}: keys are relative and non-empty`, key, true);
    }
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  /** `s3://bucket/prefix/key` for messages. */
  url(key?: string): string {
    return key === undefined ? this.location : `s3://${this.bucket}/${this.objectKey(key)}`;
  }

  // ---- ObjectStore ---------------------------------------------------------------

  async put(key: string, body: Uint8Array, opts: PutOptions = {}): Promise<{ sha256: string }> {
    const Key = this.objectKey(key);
    const digest = opts.sha256 ? Buffer.from(opts.sha256) : sha256(body);
    const checksum = digest.toString('base64');
    const ctx: CallContext = { op: 'write', key, signal: opts.signal };
    try {
      await this.call(ctx, (signal) =>
        this.client.send(
          withPayloadHash(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key,
              Body: body,
              ContentLength: body.length,
              ContentType: opts.contentType,
              ChecksumAlgorithm: 'SHA256',
              ChecksumSHA256: checksum,
              IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
              ...objectLockParams(opts),
            }),
            digest,
          ),
          { abortSignal: signal },
        ),
      );
    } catch (err) {
      if (opts.ifNoneMatch && err instanceof S3StorageError && err.status === 412) {
        if (await this.sameContent(key, body.length, checksum, opts.signal)) return { sha256: checksum };
        throw new ObjectExistsError(this.location, key);
      }
      throw err;
    }
    return { sha256: checksum };
  }

  /** Does the stored object have this size and SHA-256? (Objects without a full-object checksum are read and hashed.) */
  private async sameContent(key: string, size: number, checksum: string, signal?: AbortSignal): Promise<boolean> {
    const info = await this.head(key, signal);
    if (!info || info.size !== size) return false;
    if (info.sha256) return info.sha256 === checksum;
    const data = await this.get(key, undefined, signal);
    return sha256(data).toString('base64') === checksum;
  }

  async get(key: string, range?: ByteRange, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    const Key = this.objectKey(key);
    let Range: string | undefined;
    if (range) {
      if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.end) || range.start < 0 || range.end < range.start) {
        throw new StorageError(`invalid byte range ${range.start}-${range.end} for ${this.url(key)}`, key, true);
      }
      Range = `bytes=${range.start}-${range.end}`;
    }
    return this.call({ op: 'read', key, signal }, async (sig) => {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key, Range, ChecksumMode: 'ENABLED' }),
        { abortSignal: sig },
      );
      if (!res.Body) throw new Error('empty response body');
      // The SDK checks a whole-object checksum while the body is read ("Checksum mismatch" otherwise).
      let buf: Buffer;
      if (into && res.ContentLength !== undefined && res.ContentLength <= into.length) {
        // Copy straight into the caller's reused buffer instead of concatenating fresh memory.
        let n = 0;
        for await (const chunk of res.Body as AsyncIterable<Uint8Array>) {
          if (n + chunk.length > into.length) throw new Error(`response longer than announced (${res.ContentLength} bytes)`);
          into.set(chunk, n);
          n += chunk.length;
        }
        buf = into.subarray(0, n);
      } else {
        const bytes = await res.Body.transformToByteArray();
        buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      }
      if (res.ContentLength !== undefined && res.ContentLength !== buf.length) {
        const e = new Error(`short read: ${buf.length} of ${res.ContentLength} bytes`);
        (e as { code?: string }).code = 'ECONNRESET';
        throw e;
      }
      return buf;
    });
  }

  async getStream(key: string, signal?: AbortSignal): Promise<Readable> {
    const Key = this.objectKey(key);
    const res = await this.call({ op: 'read', key, signal }, (sig) =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, ChecksumMode: 'ENABLED' }), { abortSignal: sig }),
    );
    const body = res.Body as Readable | undefined;
    if (!body) throw new S3StorageError(`empty response reading ${this.url(key)}`, key, false, undefined, undefined);
    // Errors while streaming (connection lost, checksum mismatch at the end) become StorageErrors.
    const out = new PassThrough({ highWaterMark: 1024 * 1024 });
    body.on('error', (err) => out.destroy(signal?.aborted ? signal.reason : this.toStorageError(err, { op: 'read', key })));
    out.on('close', () => {
      if (!body.destroyed && !out.readableEnded) body.destroy();
    });
    body.pipe(out);
    return out;
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    const res = await this.headRaw(key, signal);
    if (!res) return null;
    const checksum = res.ChecksumSHA256;
    return {
      key,
      size: res.ContentLength ?? 0,
      lastModified: res.LastModified ?? new Date(0),
      ...(checksum && !isCompositeChecksum(checksum) ? { sha256: checksum } : {}),
    };
  }

  /** HEAD with the stored checksum (full-object or composite), or null if absent. */
  private async headRaw(key: string, signal?: AbortSignal): Promise<HeadObjectCommandOutput | null> {
    const Key = this.objectKey(key);
    try {
      return await this.call({ op: 'check', key, signal }, (sig) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key, ChecksumMode: 'ENABLED' }), { abortSignal: sig }),
      );
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return null;
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const root = this.prefix ? `${this.prefix}/` : '';
    const Prefix = root + prefix;
    let ContinuationToken: string | undefined;
    do {
      const token = ContinuationToken;
      const page = await this.call({ op: 'list', key: prefix || undefined }, (signal) =>
        this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix, ContinuationToken: token, MaxKeys: this.listPageSize }),
          { abortSignal: signal },
        ),
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key || !o.Key.startsWith(root)) continue;
        yield { key: o.Key.slice(root.length), size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      await this.call({ op: 'delete', key }, (signal) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: signal }),
      );
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return;
      throw err;
    }
  }

  // ---- versions (Object Lock buckets) --------------------------------------------

  /** Is Object Lock enabled on this bucket? (false when the store has no lock configuration) */
  async objectLockEnabled(signal?: AbortSignal): Promise<boolean> {
    try {
      const res = await this.call({ op: 'check object lock', signal }, (sig) =>
        this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }), { abortSignal: sig }),
      );
      return res.ObjectLockConfiguration?.ObjectLockEnabled === 'Enabled';
    } catch (err) {
      if (err instanceof S3StorageError && (err.status === 404 || err.code === 'ObjectLockConfigurationNotFoundError')) return false;
      throw err;
    }
  }

  async listVersions(key: string, signal?: AbortSignal): Promise<ObjectVersion[]> {
    const Key = this.objectKey(key);
    const out: ObjectVersion[] = [];
    let KeyMarker: string | undefined;
    let VersionIdMarker: string | undefined;
    do {
      const [km, vm] = [KeyMarker, VersionIdMarker];
      const res = await this.call({ op: 'list versions of', key, signal }, (sig) =>
        this.client.send(new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: Key, KeyMarker: km, VersionIdMarker: vm }), { abortSignal: sig }),
      );
      for (const v of res.Versions ?? []) {
        if (v.Key === Key && v.VersionId) out.push({ versionId: v.VersionId, latest: !!v.IsLatest, deleteMarker: false, lastModified: v.LastModified ?? new Date(0), size: v.Size ?? 0 });
      }
      for (const d of res.DeleteMarkers ?? []) {
        if (d.Key === Key && d.VersionId) out.push({ versionId: d.VersionId, latest: !!d.IsLatest, deleteMarker: true, lastModified: d.LastModified ?? new Date(0), size: 0 });
      }
      [KeyMarker, VersionIdMarker] = res.IsTruncated ? [res.NextKeyMarker, res.NextVersionIdMarker] : [undefined, undefined];
    } while (KeyMarker);
    // Newest first; the latest one leads when two share a timestamp.
    return out.sort((a, b) => b.lastModified.getTime() - a.lastModified.getTime() || Number(b.latest) - Number(a.latest));
  }

  /**
   * Delete one version for good. Under governance-mode Object Lock only with
   * `bypassGovernance` and a principal allowed to bypass it (an admin; no
   * Lifeline role is); under compliance mode never before its retention ends.
   */
  async deleteVersion(key: string, versionId: string, opts: { bypassGovernance?: boolean } = {}): Promise<void> {
    const Key = this.objectKey(key);
    await this.call({ op: `delete version ${versionId} of`, key }, (signal) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, VersionId: versionId, BypassGovernanceRetention: opts.bypassGovernance || undefined }), {
        abortSignal: signal,
      }),
    );
  }

  async getVersion(key: string, versionId: string, range?: ByteRange, signal?: AbortSignal): Promise<Buffer> {
    const Key = this.objectKey(key);
    const Range = range ? `bytes=${range.start}-${range.end}` : undefined;
    return this.call({ op: `read version ${versionId} of`, key, signal }, async (sig) => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, VersionId: versionId, Range, ChecksumMode: 'ENABLED' }), { abortSignal: sig });
      if (!res.Body) throw new Error('empty response body');
      const bytes = await res.Body.transformToByteArray();
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
  }

  // ---- multipart upload -----------------------------------------------------------

  async putFile(key: string, path: string, opts: PutLargeOptions = {}): Promise<{ size: number }> {
    const Key = this.objectKey(key);
    const signal = opts.signal;
    signal?.throwIfAborted();
    if (opts.resume && opts.resume.key !== key) {
      throw new StorageError(`resume state is for ${this.url(opts.resume.key)}, not ${this.url(key)}`, key, true);
    }
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new StorageError(`cannot read ${path} to upload it to ${this.url(key)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, key, true, {
        cause: err,
      });
    }
    try {
      const size = (await fh.stat()).size;
      let partSize = Math.floor(opts.partSize ?? this.defaultPartSize);
      if (partSize < MIN_PART_SIZE) throw new StorageError(`part size ${partSize} is below the S3 minimum of 5 MiB`, key, true);
      if (Math.ceil(size / partSize) > MAX_PARTS) partSize = Math.ceil(size / MAX_PARTS / MiB) * MiB;
      if (partSize > MAX_PART_SIZE) throw new StorageError(`${path} is too large for one S3 object`, key, true);
      const partCount = Math.max(1, Math.ceil(size / partSize));
      const concurrency = Math.max(1, Math.min(opts.concurrency ?? this.defaultConcurrency, partCount));
      const partLen = (n: number) => Math.min(partSize, size - (n - 1) * partSize);

      // An existing object under ifNoneMatch: done if it is this file, an error otherwise.
      if (opts.ifNoneMatch && !opts.resume) {
        const existing = await this.headRaw(key, signal);
        if (existing) {
          if (await this.fileMatches(fh, size, partSize, { size: existing.ContentLength ?? -1, checksum: existing.ChecksumSHA256 }, signal)) {
            opts.onProgress?.({ bytesDone: size, bytesTotal: size });
            return { size };
          }
          throw new ObjectExistsError(this.location, key);
        }
      }

      // Upload id: resumed, or new.
      let uploadId: string | undefined;
      const stored = new Map<number, { size: number; checksum?: string; etag?: string }>();
      if (opts.resume) {
        uploadId = opts.resume.uploadId;
        try {
          for (const p of await this.listParts(Key, key, uploadId, signal)) stored.set(p.PartNumber!, p as never);
        } catch (err) {
          if (!(err instanceof S3StorageError && err.code === 'NoSuchUpload')) throw err;
          this.logger?.warn({ location: this.url(key), uploadId }, 'multipart upload to resume no longer exists, starting again');
          uploadId = undefined;
          stored.clear();
        }
      }
      if (!uploadId) {
        const created = await this.call({ op: 'start upload of', key, signal }, (sig) =>
          this.client.send(
            new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, ChecksumAlgorithm: 'SHA256', ContentType: opts.contentType, ...objectLockParams(opts) }),
            { abortSignal: sig },
          ),
        );
        if (!created.UploadId) throw new S3StorageError(`no upload id returned for ${this.url(key)}`, key, false, undefined, undefined);
        uploadId = created.UploadId;
        opts.onStarted?.({ key, uploadId });
      }
      const state: MultipartResumeState = { key, uploadId };

      // Parts: read sequentially (one pass, hashing each part), upload in parallel.
      const inner = new AbortController();
      const partSignal = anySignal([signal, inner.signal])!;
      const completed: CompletedPart[] = new Array(partCount);
      const digests: Buffer[] = new Array(partCount);
      let bytesDone = 0;
      let failure: unknown;
      const free: Buffer[] = [];
      const waiters: Array<() => void> = [];
      const bufLen = Math.min(partSize, Math.max(size, 1));
      const held: Buffer[] = [];
      for (let i = 0; i < concurrency; i++) {
        const b = this.takePartBuffer(bufLen);
        held.push(b);
        free.push(b);
      }
      const acquire = async (): Promise<Buffer> => {
        while (free.length === 0) await new Promise<void>((r) => waiters.push(r));
        return free.pop()!;
      };
      const release = (b: Buffer) => {
        free.push(b);
        waiters.shift()?.();
      };
      const progress = (len: number) => {
        bytesDone += len;
        opts.onProgress?.({ bytesDone, bytesTotal: size });
      };
      const inflight = new Set<Promise<void>>();

      try {
        for (let n = 1; n <= partCount && failure === undefined; n++) {
          const buf = await acquire();
          if (failure !== undefined || partSignal.aborted) {
            release(buf);
            break;
          }
          const len = partLen(n);
          const got = await readFully(fh, buf, len, (n - 1) * partSize);
          if (got !== len) {
            release(buf);
            throw new StorageError(`${path} shrank while it was being uploaded to ${this.url(key)}`, key, true);
          }
          const body = buf.subarray(0, len);
          const digest = sha256(body);
          digests[n - 1] = digest;
          const checksum = digest.toString('base64');
          const have = stored.get(n);
          if (have && have.size === len && this.partMatches(have, checksum, body)) {
            completed[n - 1] = { PartNumber: n, ETag: have.etag, ChecksumSHA256: checksum };
            release(buf);
            progress(len);
            continue;
          }
          const task = this.call({ op: `upload part ${n} of`, key, signal: partSignal }, (sig) =>
            this.client.send(
              withPayloadHash(
                new UploadPartCommand({
                  Bucket: this.bucket,
                  Key,
                  UploadId: uploadId,
                  PartNumber: n,
                  Body: body,
                  ContentLength: len,
                  ChecksumAlgorithm: 'SHA256',
                  ChecksumSHA256: checksum,
                }),
                digest,
              ),
              { abortSignal: sig },
            ),
          ).then(
            (res) => {
              completed[n - 1] = { PartNumber: n, ETag: res.ETag, ChecksumSHA256: res.ChecksumSHA256 ?? checksum };
              progress(len);
            },
            (err: unknown) => {
              if (failure === undefined) failure = err;
              inner.abort(err);
            },
          ).finally(() => {
            release(buf);
            inflight.delete(task);
          });
          inflight.add(task);
        }
        await Promise.all([...inflight]);
      } finally {
        // Let in-flight parts finish or fail before the buffers are reused.
        await Promise.allSettled([...inflight]);
        for (const b of held) this.returnPartBuffer(b);
      }
      if (signal?.aborted) throw signal.reason;
      if (failure !== undefined) throw failure;

      // Complete (nothing is aborted on failure, so a later call can resume).
      const expected = compositeChecksum(digests);
      try {
        const res = await this.call({ op: 'complete upload of', key, signal }, (sig) =>
          this.client.send(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key,
              UploadId: uploadId,
              MultipartUpload: { Parts: completed },
              IfNoneMatch: opts.ifNoneMatch ? '*' : undefined,
            }),
            { abortSignal: sig },
          ),
        );
        if (res.ChecksumSHA256 && isCompositeChecksum(res.ChecksumSHA256) && res.ChecksumSHA256 !== expected) {
          throw new S3StorageError(
            `the storage service assembled ${this.url(key)} with checksum ${res.ChecksumSHA256}, expected ${expected}; upload it again`,
            key,
            true,
            'ChecksumMismatch',
            undefined,
          );
        }
      } catch (err) {
        const code = err instanceof S3StorageError ? err.code : undefined;
        const status = err instanceof S3StorageError ? err.status : undefined;
        if (status === 412 || code === 'NoSuchUpload') {
          // 412: the key exists (ifNoneMatch). NoSuchUpload: maybe our own earlier completion went through.
          const existing = await this.headRaw(key, signal);
          const info = { size: existing?.ContentLength ?? -1, checksum: existing?.ChecksumSHA256 };
          if (existing && (await this.fileMatches(fh, size, partSize, info, signal, digests))) {
            if (status === 412) await this.abortUpload(state).catch(() => {});
            return { size };
          }
          if (status === 412) {
            await this.abortUpload(state).catch(() => {});
            throw new ObjectExistsError(this.location, key);
          }
        }
        throw err;
      }
      return { size };
    } finally {
      await fh.close();
    }
  }

  /** Abort a multipart upload (frees its parts). */
  async abortUpload(state: MultipartResumeState, signal?: AbortSignal): Promise<void> {
    const Key = this.objectKey(state.key);
    try {
      await this.call({ op: 'abort upload of', key: state.key, signal }, (sig) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: state.uploadId }), { abortSignal: sig }),
      );
    } catch (err) {
      if (err instanceof S3StorageError && err.code === 'NoSuchUpload') return;
      throw err;
    }
  }

  private async listParts(Key: string, key: string, uploadId: string, signal?: AbortSignal) {
    const parts: Array<{ PartNumber?: number; size: number; checksum?: string; etag?: string }> = [];
    let marker: string | undefined;
    for (;;) {
      const m = marker;
      const res = await this.call({ op: 'list parts of', key, signal }, (sig) =>
        this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key, UploadId: uploadId, PartNumberMarker: m, MaxParts: 1000 }), {
          abortSignal: sig,
        }),
      );
      for (const p of res.Parts ?? []) {
        if (p.PartNumber === undefined) continue;
        parts.push({ PartNumber: p.PartNumber, size: p.Size ?? -1, checksum: p.ChecksumSHA256, etag: p.ETag });
      }
      if (!res.IsTruncated || !res.NextPartNumberMarker) break;
      marker = res.NextPartNumberMarker;
    }
    return parts;
  }

  /** A stored part is reused when its SHA-256 matches (or, lacking one, its ETag is the MD5 of our bytes). */
  private partMatches(have: { checksum?: string; etag?: string }, checksum: string, body: Uint8Array): boolean {
    if (have.checksum) return have.checksum === checksum;
    const etag = stripQuotes(have.etag);
    if (etag && /^[0-9a-f]{32}$/i.test(etag)) return createHash('md5').update(body).digest('hex') === etag.toLowerCase();
    return false;
  }

  /**
   * Is the stored object (`size`, `checksum` from HEAD) this file? Compares the
   * full-object SHA-256 when the store has one, else the composite checksum for
   * our part size (an object uploaded with other part sizes does not match).
   */
  private async fileMatches(
    fh: FileHandle,
    size: number,
    partSize: number,
    existing: { size: number; checksum?: string },
    signal?: AbortSignal,
    partDigests?: Buffer[],
  ): Promise<boolean> {
    const checksum = existing.checksum;
    if (existing.size !== size || !checksum) return false;
    const composite = isCompositeChecksum(checksum);
    if (composite && partDigests) return compositeChecksum(partDigests) === checksum;
    // Hash the file: whole (for a full-object checksum) and per part (for a composite one).
    const whole = createHash('sha256');
    const digests: Buffer[] = [];
    const buf = this.takePartBuffer(Math.min(partSize, Math.max(size, 1)));
    try {
      let pos = 0;
      do {
        signal?.throwIfAborted();
        const len = Math.min(partSize, size - pos);
        const got = await readFully(fh, buf, len, pos);
        const view = buf.subarray(0, got);
        whole.update(view);
        digests.push(sha256(view));
        pos += partSize;
      } while (pos < size);
    } finally {
      this.returnPartBuffer(buf);
    }
    return composite ? compositeChecksum(digests) === checksum : whole.digest('base64') === checksum;
  }

  private takePartBuffer(len: number): Buffer {
    const i = this.partPool.findIndex((b) => b.length === len);
    if (i >= 0) return this.partPool.splice(i, 1)[0]!;
    return Buffer.allocUnsafeSlow(len);
  }

  private returnPartBuffer(b: Buffer): void {
    if (this.partPool.length < MAX_POOLED_PART_BUFFERS && !this.partPool.includes(b)) this.partPool.push(b);
  }

  // ---- requests, retries, errors ----------------------------------------------------

  /**
   * One logical request: retried on transient failures within the budget, then
   * mapped to a `StorageError`. 404s become `ObjectNotFoundError` for
   * key operations (after checking once that the bucket exists, since HEAD
   * responses carry no error code).
   */
  private async call<T>(ctx: CallContext, fn: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    try {
      return await withRetry(() => fn(ctx.signal), {
        policy: this.policy,
        classify,
        signal: ctx.signal,
        onRetry: ({ attempt, delayMs, elapsedMs, error }) => {
          const f = errorFacts(error);
          this.logger?.warn(
            {
              location: ctx.key !== undefined ? this.url(ctx.key) : this.location,
              endpoint: this.endpointLabel,
              op: ctx.op,
              attempt,
              elapsedMs,
              delayMs,
              error: this.scrub(`${f.code ?? 'error'}${f.status ? ` (HTTP ${f.status})` : ''}: ${f.message}`),
            },
            `storage unavailable, retrying in ${(delayMs / 1000).toFixed(1)}s`,
          );
        },
      });
    } catch (err) {
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      if (err instanceof StorageError) throw err;
      const inner = err instanceof RetryExhaustedError ? err.lastError : err;
      const f = errorFacts(inner);
      if (f.status === 404 && ctx.key !== undefined && (f.code === 'NoSuchKey' || f.code === 'NotFound' || f.code === undefined)) {
        if (f.code !== 'NoSuchKey') await this.assertBucketExists(ctx);
        throw new ObjectNotFoundError(this.location, ctx.key);
      }
      if (f.status !== undefined && f.code === undefined && (f.status === 403 || f.status === 400)) {
        // HEAD responses have no body: ask again with a GET to learn the error code.
        const better = await this.diagnose(ctx);
        if (better) throw better;
      }
      throw this.toStorageError(err, ctx);
    }
  }

  private async assertBucketExists(ctx: CallContext): Promise<void> {
    if (this.bucketExists) return;
    try {
      await withRetry((_) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: ctx.signal }), {
        policy: this.policy,
        classify,
        signal: ctx.signal,
      });
      this.bucketExists = true;
    } catch (err) {
      const f = errorFacts(err instanceof RetryExhaustedError ? err.lastError : err);
      if (f.status === 404) {
        throw this.toStorageError(Object.assign(new Error('The specified bucket does not exist'), { name: 'NoSuchBucket', $metadata: { httpStatusCode: 404 } }), ctx);
      }
      // Anything else: let the caller report the original 404.
    }
  }

  /** For body-less error responses: repeat as a 1-byte GET (same auth, same key) to get the service's error code. */
  private async diagnose(ctx: CallContext): Promise<StorageError | undefined> {
    try {
      await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: ctx.key !== undefined ? this.objectKey(ctx.key) : '.lifeline-probe', Range: 'bytes=0-0' }),
        { abortSignal: ctx.signal },
      );
      return undefined;
    } catch (err) {
      const f = errorFacts(err);
      if (f.code === undefined || f.status === undefined || f.status === 404 || f.status === 416) return undefined;
      return this.toStorageError(err, ctx);
    }
  }

  private scrub(s: string): string {
    let out = s;
    for (const secret of this.#secrets) out = out.split(secret).join('***');
    return out;
  }

  /** A clean, actionable StorageError for any failure (the SDK error is kept only as a sanitized cause). */
  private toStorageError(err: unknown, ctx: CallContext): StorageError {
    if (err instanceof StorageError) return err;
    const exhausted = err instanceof RetryExhaustedError ? err : undefined;
    const inner = exhausted ? exhausted.lastError : err;
    const f = errorFacts(inner);
    const where = ctx.key !== undefined ? this.url(ctx.key) : this.location;
    const what = `${ctx.op} ${where}`;
    const cause = sanitizeCause(inner, (s) => this.scrub(s));
    const make = (message: string, permanent: boolean) =>
      new S3StorageError(this.scrub(message), ctx.key, permanent, f.code, f.status, { cause });
    const tag = `${f.code ?? 'error'}${f.status !== undefined ? `, HTTP ${f.status}` : ''}`;

    if (exhausted) {
      const tries = `after ${exhausted.attempts} attempt${exhausted.attempts === 1 ? '' : 's'} over ${(exhausted.elapsedMs / 1000).toFixed(1)} s`;
      if (isChecksumReadMismatch(inner)) {
        return make(`checksum mismatch reading ${where} ${tries}: the stored object may be corrupt (${f.message})`, true);
      }
      if (f.network) {
        return make(
          `storage unreachable: could not ${what} ${tries} (${f.code ?? f.message}); check that the storage service at ${this.endpointLabel} is running and reachable`,
          false,
        );
      }
      return make(
        `storage unavailable: could not ${what} ${tries} (${tag}: ${f.message}); the storage service at ${this.endpointLabel} kept failing, try again later`,
        false,
      );
    }
    if (isChecksumReadMismatch(inner)) {
      return make(`checksum mismatch reading ${where}: the stored object may be corrupt (${f.message})`, true);
    }
    if (f.network) {
      // Retry budget of 0 or a stream error after the response started.
      return make(`storage unreachable: could not ${what} (${f.code ?? f.message}); check that the storage service at ${this.endpointLabel} is running and reachable`, false);
    }
    const transient = classify(inner).retry;
    switch (f.code) {
      case 'AccessDenied':
      case 'AllAccessDisabled':
      case 'AccountProblem':
        return make(`access denied: could not ${what} (${tag}); check the credentials for this role and that its policy allows this on bucket ${this.bucket}`, true);
      case 'InvalidAccessKeyId':
        return make(`unknown access key: could not ${what} (${tag}); the storage service does not know this access key id, check the credentials for this role`, true);
      case 'SignatureDoesNotMatch':
        return make(`request signature rejected: could not ${what} (${tag}); the secret key is probably wrong, check the credentials for this role`, true);
      case 'ExpiredToken':
      case 'TokenRefreshRequired':
      case 'InvalidToken':
        return make(`expired or invalid session token: could not ${what} (${tag}); refresh the credentials for this role`, true);
      case 'NoSuchBucket':
        return make(`bucket does not exist: could not ${what} (${tag}); create bucket ${this.bucket} or fix the bucket name in the configuration`, true);
      case 'InvalidBucketName':
        return make(`invalid bucket name ${JSON.stringify(this.bucket)}: could not ${what} (${tag}); fix the bucket name in the configuration`, true);
      case 'RequestTimeTooSkewed':
        return make(`clock skew: could not ${what} (${tag}); this machine's clock differs too much from the storage service's, fix the system clock (NTP)`, true);
      case 'InvalidRange':
        return make(`byte range outside the object: could not ${what} (${tag})`, true);
      case 'NoSuchUpload':
        return make(`multipart upload not found: could not ${what} (${tag}); it expired or was aborted, upload again`, true);
      case 'XMinioStorageFull':
      case 'QuotaExceeded':
        return make(`storage full: could not ${what} (${tag}); free space or raise the quota`, true);
    }
    if (f.code && CHECKSUM_UPLOAD_CODES.has(f.code)) {
      return make(`checksum mismatch: could not ${what} (${tag}); the storage service received bytes that do not match the SHA-256 sent with them`, true);
    }
    if (f.status === 412) return make(`precondition failed: could not ${what} (${tag})`, true);
    if (f.status === 403) {
      return make(`access denied: could not ${what} (${tag}); check the credentials for this role and that its policy allows this on bucket ${this.bucket}`, true);
    }
    if (f.status === 404 && ctx.key === undefined) {
      return make(`not found: could not ${what} (${tag}); check the bucket name and endpoint in the configuration`, true);
    }
    if (transient) return make(`storage unavailable: could not ${what} (${tag}: ${f.message})`, false);
    return make(`storage request failed: could not ${what} (${tag}: ${f.message})`, true);
  }
}

/** An endpoint URL for messages: without user info, query or fragment. */
function redactUrl(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return '(invalid endpoint URL)';
  }
}
