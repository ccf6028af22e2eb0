/**
 * An in-memory `ObjectStore` for pure unit tests. It follows the S3 semantics
 * the repository relies on: `ifNoneMatch` (same content → success, different →
 * `ObjectExistsError`), inclusive byte ranges (end clamped to the object,
 * start past the end → permanent error), base64 SHA-256 in `head`, listing in
 * byte-wise lexicographic order, resumable multipart uploads for `putFile`.
 * It also offers test hooks: `keys()`, `corrupt()`, `rawPut()`, `objectLock()`
 * and a fault injector called before every operation. Object Lock options
 * (`retention`, `legalHold`) are accepted and recorded but not enforced.
 */
import { createHash, randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  type ByteRange,
  type MultipartResumeState,
  ObjectExistsError,
  type ObjectInfo,
  ObjectNotFoundError,
  type ObjectStore,
  type PutLargeOptions,
  type PutOptions,
  StorageError,
} from './object-store';

export type MemoryStoreOperation = 'put' | 'putFile' | 'uploadPart' | 'get' | 'getStream' | 'head' | 'list' | 'delete';

export interface MemoryStoreOptions {
  /** Shown in messages (default `memory://test`). */
  location?: string;
  /**
   * Called before every operation (and every multipart part); throw from it to
   * inject a failure, e.g. `new StorageError('boom', key, false)`.
   */
  fault?: (op: MemoryStoreOperation, key: string) => void | Promise<void>;
}

interface StoredObject {
  data: Buffer;
  sha256: string;
  lastModified: Date;
  contentType?: string;
  /** Object Lock settings asked for at put (recorded, not enforced). */
  lock?: Pick<PutOptions, 'retention' | 'legalHold'>;
}

interface Upload {
  key: string;
  parts: Map<number, { data: Buffer; sha256: string }>;
}

const MIN_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_PART_SIZE = 16 * 1024 * 1024;

function sha256b64(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('base64');
}

/** S3 orders keys by their UTF-8 bytes, which differs from JS string order for astral characters. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function checkKey(location: string, key: string): void {
  if (typeof key !== 'string' || key.length === 0 || key.startsWith('/')) {
    throw new StorageError(`invalid object key ${JSON.stringify(key)} for ${location}: keys are relative and non-empty`, key, true);
  }
}

export class MemoryObjectStore implements ObjectStore {
  readonly location: string;
  private readonly objects = new Map<string, StoredObject>();
  private readonly uploads = new Map<string, Upload>();
  private readonly fault?: MemoryStoreOptions['fault'];
  /** Counters, for tests that assert what was (not) transferred. */
  readonly stats = { puts: 0, bytesPut: 0, partsUploaded: 0, bytesUploaded: 0, gets: 0, bytesGot: 0, deletes: 0 };

  constructor(opts: MemoryStoreOptions = {}) {
    this.location = opts.location ?? 'memory://test';
    this.fault = opts.fault;
  }

  // ---- test hooks -------------------------------------------------------------

  /** All keys, sorted like `list`. */
  keys(): string[] {
    return [...this.objects.keys()].sort(compareKeys);
  }

  /** Flip the bits of one byte of a stored object (the stored SHA-256 is left as it was). */
  corrupt(key: string, offset = 0): void {
    const obj = this.objects.get(key);
    if (!obj) throw new ObjectNotFoundError(this.location, key);
    if (offset < 0 || offset >= obj.data.length) throw new RangeError(`offset ${offset} outside ${key} (${obj.data.length} bytes)`);
    obj.data[offset] = obj.data[offset]! ^ 0xff;
  }

  /** Store bytes without any checks (e.g. to plant a foreign object). */
  rawPut(key: string, data: Uint8Array, lastModified = new Date()): void {
    this.objects.set(key, { data: Buffer.from(data), sha256: sha256b64(data), lastModified });
  }

  /** Object Lock retention / legal hold the object was stored with (recorded, not enforced), or undefined. */
  objectLock(key: string): Pick<PutOptions, 'retention' | 'legalHold'> | undefined {
    return this.objects.get(key)?.lock;
  }

  /** Multipart uploads not completed yet (their ids). */
  pendingUploads(): MultipartResumeState[] {
    return [...this.uploads.entries()].map(([uploadId, u]) => ({ key: u.key, uploadId }));
  }

  // ---- ObjectStore ---------------------------------------------------------------

  async put(key: string, body: Uint8Array, opts: PutOptions = {}): Promise<{ sha256: string }> {
    checkKey(this.location, key);
    opts.signal?.throwIfAborted();
    await this.fault?.('put', key);
    const sha256 = opts.sha256 ? Buffer.from(opts.sha256).toString('base64') : sha256b64(body);
    this.commit(key, Buffer.from(body), sha256, opts);
    this.stats.puts++;
    this.stats.bytesPut += body.length;
    return { sha256 };
  }

  async putFile(key: string, path: string, opts: PutLargeOptions = {}): Promise<{ size: number }> {
    checkKey(this.location, key);
    const signal = opts.signal;
    signal?.throwIfAborted();
    await this.fault?.('putFile', key);
    const partSize = Math.max(opts.partSize ?? DEFAULT_PART_SIZE, 1);
    let uploadId: string;
    if (opts.resume) {
      if (opts.resume.key !== key) {
        throw new StorageError(`resume state is for ${opts.resume.key}, not ${key} (${this.location})`, key, true);
      }
      uploadId = opts.resume.uploadId;
      if (!this.uploads.has(uploadId)) {
        // Like S3 after the upload expired or was aborted: start again.
        uploadId = randomUUID();
        this.uploads.set(uploadId, { key, parts: new Map() });
        opts.onStarted?.({ key, uploadId });
      }
    } else {
      uploadId = randomUUID();
      this.uploads.set(uploadId, { key, parts: new Map() });
      opts.onStarted?.({ key, uploadId });
    }
    const upload = this.uploads.get(uploadId)!;

    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const count = Math.max(1, Math.ceil(size / partSize));
      let done = 0;
      const partHashes: Buffer[] = [];
      const whole = createHash('sha256');
      for (let n = 1; n <= count; n++) {
        signal?.throwIfAborted();
        const len = Math.min(partSize, size - (n - 1) * partSize);
        if (len < MIN_PART_SIZE && n < count) {
          throw new StorageError(`part size ${partSize} below the S3 minimum of 5 MiB (${this.location}/${key})`, key, true);
        }
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, (n - 1) * partSize);
        if (bytesRead !== len) throw new StorageError(`${path} changed size during upload`, key, true);
        const digest = createHash('sha256').update(buf).digest();
        partHashes.push(digest);
        whole.update(buf);
        const existing = upload.parts.get(n);
        if (!existing || existing.data.length !== len || existing.sha256 !== digest.toString('base64')) {
          await this.fault?.('uploadPart', key);
          signal?.throwIfAborted();
          upload.parts.set(n, { data: buf, sha256: digest.toString('base64') });
          this.stats.partsUploaded++;
          this.stats.bytesUploaded += len;
        }
        done += len;
        opts.onProgress?.({ bytesDone: done, bytesTotal: size });
      }
      const data = Buffer.concat([...upload.parts.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p.data));
      try {
        this.commit(key, data, whole.digest('base64'), opts);
      } catch (err) {
        if (err instanceof ObjectExistsError) this.uploads.delete(uploadId);
        throw err;
      }
      this.uploads.delete(uploadId);
      return { size };
    } finally {
      await fh.close();
    }
  }

  async get(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Buffer> {
    checkKey(this.location, key);
    signal?.throwIfAborted();
    await this.fault?.('get', key);
    const obj = this.objects.get(key);
    if (!obj) throw new ObjectNotFoundError(this.location, key);
    let out: Buffer;
    if (range) {
      if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0 || range.end < range.start) {
        throw new StorageError(`invalid byte range ${range.start}-${range.end} for ${this.location}/${key}`, key, true);
      }
      if (range.start >= obj.data.length) {
        throw new StorageError(
          `byte range ${range.start}-${range.end} starts past the end of ${this.location}/${key} (${obj.data.length} bytes)`,
          key,
          true,
        );
      }
      out = Buffer.from(obj.data.subarray(range.start, Math.min(range.end + 1, obj.data.length)));
    } else {
      out = Buffer.from(obj.data);
    }
    this.stats.gets++;
    this.stats.bytesGot += out.length;
    return out;
  }

  async getStream(key: string, signal?: AbortSignal): Promise<Readable> {
    checkKey(this.location, key);
    signal?.throwIfAborted();
    await this.fault?.('getStream', key);
    const obj = this.objects.get(key);
    if (!obj) throw new ObjectNotFoundError(this.location, key);
    const data = Buffer.from(obj.data);
    this.stats.gets++;
    this.stats.bytesGot += data.length;
    const step = 64 * 1024;
    function* pieces(): Generator<Buffer> {
      for (let i = 0; i < data.length; i += step) yield data.subarray(i, i + step);
    }
    return Readable.from(pieces(), { objectMode: false, signal });
  }

  async head(key: string): Promise<ObjectInfo | null> {
    checkKey(this.location, key);
    await this.fault?.('head', key);
    const obj = this.objects.get(key);
    if (!obj) return null;
    return { key, size: obj.data.length, lastModified: obj.lastModified, sha256: obj.sha256 };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    await this.fault?.('list', prefix);
    // Snapshot of the keys at the start, like a paginated listing that began before later writes.
    for (const key of this.keys()) {
      if (!key.startsWith(prefix)) continue;
      const obj = this.objects.get(key);
      if (!obj) continue; // deleted while listing
      yield { key, size: obj.data.length, lastModified: obj.lastModified };
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(this.location, key);
    await this.fault?.('delete', key);
    if (this.objects.delete(key)) this.stats.deletes++;
  }

  private commit(key: string, data: Buffer, sha256: string, opts: PutOptions): void {
    if (opts.ifNoneMatch) {
      const existing = this.objects.get(key);
      if (existing) {
        if (existing.sha256 === sha256 && existing.data.length === data.length) return; // idempotent retry
        throw new ObjectExistsError(this.location, key);
      }
    }
    const lock = opts.retention || opts.legalHold ? { retention: opts.retention, legalHold: opts.legalHold } : undefined;
    this.objects.set(key, { data, sha256, lastModified: new Date(), contentType: opts.contentType, lock });
  }
}
