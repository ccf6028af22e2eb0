/**
 * S3ObjectStore against a real MinIO (the shared test services): no mocks.
 * Some tests tamper with requests/responses in flight by wrapping the client's
 * HTTP handler, to prove that checksums are sent and checked.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import {
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type MultipartResumeState,
  ObjectExistsError,
  ObjectNotFoundError,
  StorageError,
} from '../../engine/backend/object-store';
import { S3ObjectStore, S3StorageError, type S3StoreOptions } from '../../engine/backend/s3';
import { createTestBucket, testS3Client, testServices } from '../support/services';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('base64');

let dir: string;
let bucket: string;
let base: S3StoreOptions;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeline-s3store-'));
  bucket = await createTestBucket('s3-store');
  const { s3 } = testServices();
  base = {
    endpoint: s3.endpoint,
    region: s3.region,
    bucket,
    prefix: 'tenants/acme/',
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    retryBudgetMs: 10_000,
  };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

interface SeenRequest {
  method: string;
  path: string;
  query: Record<string, unknown>;
  headers: Record<string, string>;
  bodyBytes: number;
}

type HttpHandlerLike = {
  handle(req: { method: string; path: string; query?: Record<string, unknown>; headers: Record<string, string>; body?: unknown }, opts?: unknown): Promise<{
    response: { statusCode: number; headers: Record<string, string> };
  }>;
};

/**
 * Wrap the store's HTTP handler (the innermost layer, below signing and the
 * SDK's checksum middleware) to record requests and optionally rewrite them
 * or their responses.
 */
function instrument(store: S3ObjectStore) {
  const handler = store.client.config.requestHandler as unknown as HttpHandlerLike;
  const original = handler.handle.bind(handler);
  const seen: SeenRequest[] = [];
  const hooks: {
    request?: (req: Parameters<HttpHandlerLike['handle']>[0]) => void;
    response?: (req: SeenRequest, res: { statusCode: number; headers: Record<string, string> }) => void;
  } = {};
  handler.handle = async (req, opts) => {
    hooks.request?.(req);
    const body = req.body;
    const bodyBytes = body instanceof Uint8Array ? body.length : typeof body === 'string' ? body.length : 0;
    const rec: SeenRequest = { method: req.method, path: req.path, query: { ...(req.query ?? {}) }, headers: { ...req.headers }, bodyBytes };
    seen.push(rec);
    const out = await original(req, opts);
    hooks.response?.(rec, out.response);
    return out;
  };
  const uploadParts = () => seen.filter((r) => r.method === 'PUT' && r.query.partNumber !== undefined);
  return { seen, hooks, uploadParts };
}

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('S3ObjectStore on MinIO', () => {
  it('put / get / ranged get / getStream / head (sha256) / delete under a prefix', async () => {
    const store = new S3ObjectStore(base);
    expect(store.location).toBe(`s3://${bucket}/tenants/acme`);
    const body = randomBytes(100_000);
    const { sha256 } = await store.put('data/ab/abcdef', body, { contentType: 'application/octet-stream' });
    expect(sha256).toBe(sha(body));

    // Stored at `${prefix}/${key}`, no double slashes.
    const raw = await testS3Client().send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(raw.Contents?.map((o) => o.Key)).toContain('tenants/acme/data/ab/abcdef');

    expect((await store.get('data/ab/abcdef')).equals(body)).toBe(true);
    expect((await store.get('data/ab/abcdef', { start: 10, end: 19 })).equals(body.subarray(10, 20))).toBe(true);
    expect((await store.get('data/ab/abcdef', { start: 99_990, end: 200_000 })).equals(body.subarray(99_990))).toBe(true);
    const streamed = await collect<Buffer>(await store.getStream('data/ab/abcdef'));
    expect(Buffer.concat(streamed).equals(body)).toBe(true);

    const info = await store.head('data/ab/abcdef');
    expect(info).toMatchObject({ key: 'data/ab/abcdef', size: body.length, sha256 });
    expect(info!.lastModified.getTime()).toBeGreaterThan(Date.now() - 600_000);

    expect(await store.head('data/ab/missing')).toBeNull();
    await expect(store.get('data/ab/missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(store.getStream('data/ab/missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(store.get('data/ab/abcdef', { start: 200_000, end: 200_010 })).rejects.toMatchObject({ permanent: true, code: 'InvalidRange' });

    await store.delete('data/ab/abcdef');
    await store.delete('data/ab/abcdef'); // missing: not an error
    expect(await store.head('data/ab/abcdef')).toBeNull();

    // Empty objects round-trip too.
    await store.put('empty', new Uint8Array(0));
    expect((await store.get('empty')).length).toBe(0);
    expect(await store.head('empty')).toMatchObject({ size: 0, sha256: sha(new Uint8Array(0)) });
  });

  it('getStream stops with the abort reason when its signal fires mid-stream', async () => {
    const store = new S3ObjectStore({ ...base, prefix: 'stream-abort' });
    await store.put('big', randomBytes(24 * MiB));
    const ac = new AbortController();
    const stream = await store.getStream('big', ac.signal);
    let got = 0;
    const err = await (async () => {
      for await (const c of stream) {
        got += (c as Buffer).length;
        if (got > MiB) ac.abort(new Error('user cancelled'));
      }
    })().catch((e: unknown) => e);
    expect((err as Error).message).toBe('user cancelled');
    expect(got).toBeLessThan(24 * MiB);
  });

  it('sends our SHA-256 with every upload and asks for checksums on reads', async () => {
    const store = new S3ObjectStore({ ...base, prefix: 'checksum-headers' });
    const { seen } = instrument(store);
    const body = randomBytes(5000);
    await store.put('k', body);
    await store.get('k');
    await store.head('k');
    const put = seen.find((r) => r.method === 'PUT')!;
    expect(put.headers['x-amz-checksum-sha256']).toBe(sha(body));
    // The signed payload hash is the same digest (the signer does not hash again).
    expect(put.headers['x-amz-content-sha256']).toBe(createHash('sha256').update(body).digest('hex'));
    expect(seen.filter((r) => r.method === 'GET' || r.method === 'HEAD').every((r) => r.headers['x-amz-checksum-mode'] === 'ENABLED')).toBe(true);
  });

  it('a store with an empty prefix uses keys at the bucket root', async () => {
    const rootBucket = await createTestBucket('s3-store-root');
    const store = new S3ObjectStore({ ...base, bucket: rootBucket, prefix: '' });
    expect(store.location).toBe(`s3://${rootBucket}`);
    await store.put('config', Buffer.from('{}'));
    await store.put('keys/a', Buffer.from('a'));
    expect((await collect(store.list(''))).map((o) => o.key)).toEqual(['config', 'keys/a']);
    const raw = await testS3Client().send(new ListObjectsV2Command({ Bucket: rootBucket }));
    expect(raw.Contents?.map((o) => o.Key)).toEqual(['config', 'keys/a']);
  });

  it('lists with pagination, in lexicographic order, only under the prefix', async () => {
    const store = new S3ObjectStore({ ...base, prefix: 'listing/repo', listPageSize: 3 });
    const sibling = new S3ObjectStore({ ...base, prefix: 'listing/repo-other' });
    const { seen } = instrument(store);
    const keys = Array.from({ length: 11 }, (_, i) => `snapshots/${String(i).padStart(3, '0')}`).reverse();
    await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
    await store.put('index/x', Buffer.from('x'));
    await sibling.put('snapshots/zzz', Buffer.from('not mine'));
    seen.length = 0;
    const listed = await collect(store.list('snapshots/'));
    expect(listed.map((o) => o.key)).toEqual([...keys].sort());
    expect(listed[0]).toMatchObject({ key: 'snapshots/000', size: 'snapshots/000'.length });
    expect(seen.filter((r) => r.method === 'GET').length).toBe(4); // 11 keys, 3 per page
    expect((await collect(store.list(''))).map((o) => o.key)).toEqual(['index/x', ...[...keys].sort()]);
    expect(await collect(store.list('nothing-here/'))).toEqual([]);
  });

  it('ifNoneMatch: MinIO honours If-None-Match: *; same content → success, different → ObjectExistsError', async () => {
    const store = new S3ObjectStore({ ...base, prefix: 'conditional' });
    const { seen } = instrument(store);
    const a = Buffer.from('lease A');
    await store.put('locks/l1', a, { ifNoneMatch: true });
    expect(seen.at(-1)!.headers['if-none-match']).toBe('*');

    // The server itself refuses the overwrite (not just our client).
    const direct = await testS3Client()
      .send(new PutObjectCommand({ Bucket: bucket, Key: 'conditional/locks/l1', Body: Buffer.from('x'), IfNoneMatch: '*' }))
      .catch((e: unknown) => e);
    expect((direct as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBe(412);

    // Same bytes again (an idempotent retry): success.
    await expect(store.put('locks/l1', Buffer.from(a), { ifNoneMatch: true })).resolves.toEqual({ sha256: sha(a) });
    // Different bytes: refused, original kept.
    const err = await store.put('locks/l1', Buffer.from('lease B'), { ifNoneMatch: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectExistsError);
    expect((err as StorageError).permanent).toBe(true);
    expect((err as Error).message).toContain(`s3://${bucket}/conditional/locks/l1`);
    expect((await store.get('locks/l1')).toString()).toBe('lease A');
    // Without ifNoneMatch, a put replaces.
    await store.put('locks/l1', Buffer.from('lease C'));
    expect((await store.get('locks/l1')).toString()).toBe('lease C');
  });

  it('a checksum that does not match the body is rejected by the server as a permanent error', async () => {
    const store = new S3ObjectStore({ ...base, prefix: 'bad-checksum' });
    // Replace the checksum header before signing (the body stays as it was), as a bug or corruption would.
    let tamper = true;
    store.client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { method?: string; headers?: Record<string, string> };
        if (tamper && req.method === 'PUT' && req.headers) req.headers['x-amz-checksum-sha256'] = sha(Buffer.from('something else'));
        return next(args);
      },
      { step: 'build', priority: 'low', name: 'testTamperChecksum' },
    );
    const { seen } = instrument(store);
    const err = await store.put('k', randomBytes(1000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3StorageError);
    expect(err).toMatchObject({ permanent: true, code: 'XAmzContentChecksumMismatch', status: 400 });
    expect((err as Error).message).toMatch(/^checksum mismatch: could not write s3:\/\/.*\/bad-checksum\/k/);
    expect(seen.filter((r) => r.method === 'PUT')).toHaveLength(1); // not retried
    tamper = false;
    expect(await store.head('k')).toBeNull();
  });

  it('a checksum mismatch on download is detected (get retries, then fails; getStream errors)', async () => {
    const store = new S3ObjectStore({ ...base, prefix: 'bad-download', retryBaseDelayMs: 20 });
    const body = randomBytes(50_000);
    await store.put('k', body);
    const { hooks, seen } = instrument(store);
    hooks.response = (req, res) => {
      if (req.method === 'GET') res.headers['x-amz-checksum-sha256'] = sha(Buffer.from('not the body'));
    };
    const err = await store.get('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect(err).toMatchObject({ permanent: true });
    expect((err as Error).message).toMatch(/checksum mismatch reading s3:\/\/.*\/bad-download\/k/);
    expect(seen.filter((r) => r.method === 'GET').length).toBe(3);

    const stream = await store.getStream('k');
    await expect(collect(stream)).rejects.toThrow(/checksum mismatch reading/);
    hooks.response = undefined;
    expect((await store.get('k')).equals(body)).toBe(true);
  });

  describe('putFile (multipart)', () => {
    const size = 40 * MiB + 12_345;
    const partSize = 5 * MiB;
    const partCount = Math.ceil(size / partSize); // 9
    let file: string;
    let data: Buffer;
    beforeAll(async () => {
      data = randomBytes(size);
      file = join(dir, 'big.bin');
      await writeFile(file, data);
    });

    it('interrupted by an AbortSignal after some parts, then resumed without re-sending stored parts', async () => {
      const store = new S3ObjectStore({ ...base, prefix: 'multipart' });
      const { uploadParts } = instrument(store);
      const ac = new AbortController();
      const started: MultipartResumeState[] = [];
      const progress: number[] = [];
      const err = await store
        .putFile('blobs/big', file, {
          partSize,
          concurrency: 2,
          signal: ac.signal,
          onStarted: (s) => started.push(s),
          onProgress: (p) => {
            progress.push(p.bytesDone);
            expect(p.bytesTotal).toBe(size);
            if (p.bytesDone >= 3 * partSize) ac.abort();
          },
        })
        .catch((e: unknown) => e);
      expect((err as Error).name).toBe('AbortError');
      expect(started).toHaveLength(1);
      const state = started[0]!;
      expect(state.key).toBe('blobs/big');
      expect(await store.head('blobs/big')).toBeNull();

      // What the server holds now.
      const listed = await testS3Client().send(
        new ListPartsCommand({ Bucket: bucket, Key: 'multipart/blobs/big', UploadId: state.uploadId }),
      );
      const storedParts = listed.Parts ?? [];
      expect(storedParts.length).toBeGreaterThanOrEqual(3);
      expect(storedParts.length).toBeLessThan(partCount);
      expect(storedParts.every((p) => p.ChecksumSHA256)).toBe(true);
      const storedBytes = storedParts.reduce((n, p) => n + (p.Size ?? 0), 0);
      const firstRunParts = uploadParts().length;

      // Resume: only the missing parts go over the wire.
      const resumedProgress: number[] = [];
      const res = await store.putFile('blobs/big', file, {
        partSize,
        concurrency: 2,
        resume: state,
        onStarted: (s) => started.push(s),
        onProgress: (p) => resumedProgress.push(p.bytesDone),
      });
      expect(res).toEqual({ size });
      expect(started).toHaveLength(1); // same upload, no new one
      const resumed = uploadParts().slice(firstRunParts);
      expect(resumed.length).toBe(partCount - storedParts.length);
      const storedNumbers = new Set(storedParts.map((p) => String(p.PartNumber)));
      expect(resumed.every((r) => !storedNumbers.has(String(r.query.partNumber)))).toBe(true);
      expect(resumed.reduce((n, r) => n + r.bodyBytes, 0)).toBe(size - storedBytes);
      expect(resumed.every((r) => r.headers['x-amz-checksum-sha256'])).toBe(true);
      expect(resumedProgress.at(-1)).toBe(size);

      // Byte-identical object with a composite (per-part) SHA-256.
      expect((await store.get('blobs/big')).equals(data)).toBe(true);
      const head = await store.head('blobs/big');
      expect(head).toMatchObject({ size });
      expect(head!.sha256).toBeUndefined(); // composite checksums are not the object's SHA-256
      const rawHead = await testS3Client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'multipart/blobs/big', ChecksumMode: 'ENABLED' }));
      const digests = Array.from({ length: partCount }, (_, i) => createHash('sha256').update(data.subarray(i * partSize, (i + 1) * partSize)).digest());
      expect(rawHead.ChecksumSHA256).toBe(`${createHash('sha256').update(Buffer.concat(digests)).digest('base64')}-${partCount}`);
      const uploads = await testS3Client().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'multipart/' }));
      expect(uploads.Uploads ?? []).toEqual([]);
    });

    it('ifNoneMatch: the same file again uploads nothing; a different file is refused', async () => {
      const store = new S3ObjectStore({ ...base, prefix: 'multipart-inm' });
      const { uploadParts } = instrument(store);
      await store.putFile('f', file, { partSize, ifNoneMatch: true });
      expect(uploadParts().length).toBe(partCount);
      await expect(store.putFile('f', file, { partSize, ifNoneMatch: true })).resolves.toEqual({ size });
      expect(uploadParts().length).toBe(partCount);
      const other = join(dir, 'other.bin');
      await writeFile(other, randomBytes(11 * MiB));
      await expect(store.putFile('f', other, { partSize, ifNoneMatch: true })).rejects.toBeInstanceOf(ObjectExistsError);
      expect(uploadParts().length).toBe(partCount);
      expect((await store.get('f', { start: 0, end: 999 })).equals(data.subarray(0, 1000))).toBe(true);
    });

    it('resuming an upload that no longer exists starts a new one', async () => {
      const store = new S3ObjectStore({ ...base, prefix: 'multipart-stale' });
      const small = join(dir, 'small.bin');
      const bytes = randomBytes(12 * MiB);
      await writeFile(small, bytes);
      const started: MultipartResumeState[] = [];
      await store.putFile('g', small, {
        partSize,
        resume: { key: 'g', uploadId: 'bm90LWFuLXVwbG9hZA' },
        onStarted: (s) => started.push(s),
      });
      expect(started).toHaveLength(1);
      expect(started[0]!.uploadId).not.toBe('bm90LWFuLXVwbG9hZA');
      expect((await store.get('g')).equals(bytes)).toBe(true);
    });
  });

  describe('permanent errors fail at once with a clear message and no credentials', () => {
    it('wrong secret key', async () => {
      const { s3 } = testServices();
      const wrongSecret = 'wrong-secret-' + randomBytes(12).toString('hex');
      const store = new S3ObjectStore({ ...base, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: wrongSecret } });
      const { seen } = instrument(store);
      for (const op of [() => store.put('x', Buffer.from('x')), () => store.get('x'), () => store.head('x'), () => collect(store.list(''))]) {
        const t0 = Date.now();
        const err = await op().catch((e: unknown) => e);
        expect(Date.now() - t0).toBeLessThan(2000); // no retries
        expect(err).toBeInstanceOf(StorageError);
        const e = err as S3StorageError;
        expect(e.permanent).toBe(true);
        expect(e.code).toBe('SignatureDoesNotMatch');
        expect(e.message).toContain(`s3://${bucket}/tenants/acme`);
        expect(e.message).toContain('check the credentials for this role');
        const printed = inspect(e, { depth: 20, showHidden: true }) + JSON.stringify(e) + String(e.stack);
        expect(printed).not.toContain(wrongSecret);
        expect(printed).not.toContain(s3.accessKeyId);
        expect(e.cause).toBeInstanceOf(Error);
      }
      expect(seen.length).toBeLessThanOrEqual(6); // one request each (+ one diagnosing GET for the body-less HEAD)
      // The store itself prints and serializes without credentials.
      const shown = inspect(store, { depth: 20 }) + JSON.stringify(store);
      expect(shown).toContain(`s3://${bucket}/tenants/acme`);
      expect(shown).not.toContain(wrongSecret);
    });

    it('unknown access key', async () => {
      const store = new S3ObjectStore({ ...base, credentials: { accessKeyId: 'NOSUCHKEY1234567', secretAccessKey: 'whatever-secret-value' } });
      const err = (await store.get('x').catch((e: unknown) => e)) as S3StorageError;
      expect(err).toMatchObject({ permanent: true, code: 'InvalidAccessKeyId' });
      expect(err.message).toContain(`s3://${bucket}/tenants/acme/x`);
      expect(err.message).toContain('check the credentials for this role');
      expect(inspect(err, { depth: 20 })).not.toContain('whatever-secret-value');
    });

    it('missing bucket (NoSuchBucket) on every operation, including body-less HEAD', async () => {
      const store = new S3ObjectStore({ ...base, bucket: `missing-${Date.now().toString(36)}` });
      for (const op of [() => store.get('k'), () => store.head('k'), () => store.put('k', Buffer.from('k')), () => collect(store.list('')), () => store.delete('k')]) {
        const err = (await op().catch((e: unknown) => e)) as S3StorageError;
        expect(err).toBeInstanceOf(StorageError);
        expect(err.permanent).toBe(true);
        expect(err.code).toBe('NoSuchBucket');
        expect(err.message).toMatch(/^bucket does not exist: .*s3:\/\/missing-/);
        expect(err.message).toContain('create bucket');
      }
    });

    it('invalid bucket name', async () => {
      const store = new S3ObjectStore({ ...base, bucket: 'Invalid_Bucket_Name' });
      const err = (await store.put('k', Buffer.from('k')).catch((e: unknown) => e)) as S3StorageError;
      expect(err).toBeInstanceOf(StorageError);
      expect(err.permanent).toBe(true);
      expect(err.message).toContain('Invalid_Bucket_Name');
    });
  });

  describe('transient errors', () => {
    it('an unreachable endpoint is retried with warnings, then fails saying storage was unreachable', async () => {
      const port = await closedPort();
      const warnings: Array<{ msg: string; obj: Record<string, unknown> }> = [];
      const store = new S3ObjectStore({
        ...base,
        endpoint: `http://127.0.0.1:${port}`,
        retryBudgetMs: 2_000,
        retryBaseDelayMs: 100,
        logger: { warn: (obj, msg) => warnings.push({ obj: obj as Record<string, unknown>, msg }) },
      });
      const t0 = Date.now();
      const err = (await store.get('data/k').catch((e: unknown) => e)) as StorageError;
      const elapsed = Date.now() - t0;
      expect(err).toBeInstanceOf(StorageError);
      expect(err.permanent).toBe(false);
      expect(err.message).toMatch(/^storage unreachable: could not read s3:\/\/.*\/tenants\/acme\/data\/k after \d+ attempts/);
      expect(err.message).toContain(`127.0.0.1:${port}`);
      expect(err.message).toContain('running and reachable');
      expect(warnings.length).toBeGreaterThanOrEqual(3);
      expect(warnings.every((w) => /^storage unavailable, retrying in \d+\.\ds$/.test(w.msg))).toBe(true);
      expect(warnings[0]!.obj).toMatchObject({ location: `s3://${bucket}/tenants/acme/data/k`, attempt: 1 });
      expect(elapsed).toBeLessThan(4_000);
      expect(inspect(err, { depth: 20 }) + JSON.stringify(warnings)).not.toContain(base.credentials.secretAccessKey);
    });

    it("MinIO's 499 ClientDisconnected (a server going down mid-request) is retried, then the request succeeds", async () => {
      const store = new S3ObjectStore({ ...base, prefix: 'disconnected', retryBaseDelayMs: 50 });
      const handler = store.client.config.requestHandler as unknown as HttpHandlerLike;
      const original = handler.handle.bind(handler);
      let calls = 0;
      handler.handle = async (req, opts) => {
        calls++;
        if (calls === 1) {
          const xml = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ClientDisconnected</Code><Message>Client disconnected before response was ready</Message></Error>';
          return { response: { statusCode: 499, reason: 'Client Closed Request', headers: { 'content-type': 'application/xml' }, body: Readable.from([Buffer.from(xml)]) } } as never;
        }
        return original(req, opts);
      };
      const body = randomBytes(2000);
      await expect(store.put('k', body, { ifNoneMatch: true })).resolves.toEqual({ sha256: sha(body) });
      expect(calls).toBe(2);
    });

    it('a connection reset and a 503 SlowDown are retried with warnings, then the request succeeds', async () => {
      const warnings: string[] = [];
      const store = new S3ObjectStore({ ...base, prefix: 'flaky', retryBaseDelayMs: 50, logger: { warn: (_o, msg) => warnings.push(msg) } });
      const handler = store.client.config.requestHandler as unknown as HttpHandlerLike;
      const original = handler.handle.bind(handler);
      let calls = 0;
      handler.handle = async (req, opts) => {
        calls++;
        if (calls === 1) throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        if (calls === 2) {
          const xml = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';
          return { response: { statusCode: 503, reason: 'Service Unavailable', headers: { 'content-type': 'application/xml' }, body: Readable.from([Buffer.from(xml)]) } } as never;
        }
        return original(req, opts);
      };
      const body = randomBytes(2000);
      await expect(store.put('k', body)).resolves.toEqual({ sha256: sha(body) });
      expect(calls).toBe(3);
      expect(warnings).toHaveLength(2);
      expect(warnings[0]).toMatch(/^storage unavailable, retrying in \d+\.\ds$/);
      expect((await store.get('k')).equals(body)).toBe(true);
    });

    it('ifNoneMatch put whose response was lost: the retry sees 412, compares, and succeeds', async () => {
      const store = new S3ObjectStore({ ...base, prefix: 'lost-response', retryBaseDelayMs: 50 });
      const handler = store.client.config.requestHandler as unknown as HttpHandlerLike;
      const original = handler.handle.bind(handler);
      const statuses: number[] = [];
      let dropped = false;
      handler.handle = async (req, opts) => {
        const out = await original(req, opts);
        statuses.push(out.response.statusCode);
        if (req.method === 'PUT' && !dropped) {
          dropped = true; // the server stored it, but the client never hears back
          throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
        }
        return out;
      };
      const body = randomBytes(3000);
      await expect(store.put('once', body, { ifNoneMatch: true })).resolves.toEqual({ sha256: sha(body) });
      expect(statuses).toEqual([200, 412, 200]); // PUT ok (lost), PUT 412, HEAD
    });

    it('an AbortSignal stops the retries at once', async () => {
      const port = await closedPort();
      const store = new S3ObjectStore({ ...base, endpoint: `http://127.0.0.1:${port}`, retryBudgetMs: 60_000 });
      const t0 = Date.now();
      const err = await store.get('k', undefined, AbortSignal.timeout(300)).catch((e: unknown) => e);
      expect(Date.now() - t0).toBeLessThan(2_000);
      expect((err as Error).name).toBe('TimeoutError'); // the signal's reason
    });
  });

  describe('ensureBucket', () => {
    it('creates a bucket, is idempotent, and checks Object Lock', async () => {
      const name = `ensure-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      await S3ObjectStore.ensureBucket({ ...base, bucket: name });
      await S3ObjectStore.ensureBucket({ ...base, bucket: name });
      await expect(S3ObjectStore.ensureBucket({ ...base, bucket: name, objectLock: true })).rejects.toThrow(/without Object Lock/);

      const locked = `locked-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      await S3ObjectStore.ensureBucket({ ...base, bucket: locked, objectLock: true });
      await S3ObjectStore.ensureBucket({ ...base, bucket: locked, objectLock: true });
      const cfg = await testS3Client().send(new GetObjectLockConfigurationCommand({ Bucket: locked }));
      expect(cfg.ObjectLockConfiguration?.ObjectLockEnabled).toBe('Enabled');
      // Uploads to a locked bucket carry checksums (AWS requires them; MinIO does not check).
      const store = new S3ObjectStore({ ...base, bucket: locked });
      await store.put('k', Buffer.from('v'));
      expect((await store.get('k')).toString()).toBe('v');
    });
  });
});
