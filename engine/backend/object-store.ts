/**
 * The storage backend seen by the repository: a flat key space of immutable
 * objects under one root (bucket + prefix). Keys are relative to that root and
 * use '/' separators, e.g. `data/ab/ab12…`.
 *
 * Implementations: `S3ObjectStore` (any S3-compatible store) and
 * `MemoryObjectStore` (pure unit tests only).
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
  /** base64 SHA-256 of the whole object, when the store knows it. */
  sha256?: string;
}

export interface ByteRange {
  /** first byte, inclusive */
  start: number;
  /** last byte, inclusive (HTTP Range semantics) */
  end: number;
}

export interface PutOptions {
  /**
   * Refuse to replace an existing object (`If-None-Match: *`). When the object
   * already exists with the same SHA-256 the put is treated as done (idempotent
   * retries); with different content it fails with `ObjectExistsError`.
   */
  ifNoneMatch?: boolean;
  contentType?: string;
  signal?: AbortSignal;
  /**
   * SHA-256 of the body (raw 32 bytes) when the caller already computed it, so
   * the body is not hashed twice. The store still sends it and the server checks it.
   */
  sha256?: Uint8Array;
  /**
   * S3 Object Lock retention of the stored version (the bucket must have been
   * created with Object Lock): it cannot be deleted or overwritten before `until`
   * (GOVERNANCE: except by a principal allowed to bypass governance retention;
   * COMPLIANCE: by nobody). A later put of the same key adds a new version on
   * top; the locked one stays.
   */
  retention?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; until: Date };
  /** S3 Object Lock legal hold on the stored version (no expiry, until removed). */
  legalHold?: boolean;
}

export interface ProgressUpdate {
  bytesDone: number;
  bytesTotal?: number;
}

/** State of a multipart upload, small enough to heartbeat and resume from. */
export interface MultipartResumeState {
  key: string;
  uploadId: string;
}

export interface PutLargeOptions extends PutOptions {
  /** Part size in bytes (≥ 5 MiB except the last part). */
  partSize?: number;
  /** Parts uploaded in parallel. */
  concurrency?: number;
  /** Resume an interrupted upload: parts already stored are skipped. */
  resume?: MultipartResumeState;
  /** Called once the upload id is known, so a caller can persist it. */
  onStarted?: (state: MultipartResumeState) => void;
  onProgress?: (p: ProgressUpdate) => void;
}

/** One stored version of a key in a versioned (Object Lock) bucket. */
export interface ObjectVersion {
  versionId: string;
  /** the current version (what a plain GET returns, or a delete marker hiding the key) */
  latest: boolean;
  deleteMarker: boolean;
  lastModified: Date;
  size: number;
}

export interface ObjectStore {
  /** Human-readable location for messages, e.g. `s3://bucket/prefix`. Never contains credentials. */
  readonly location: string;

  /** Store a whole object, sending its SHA-256 checksum; returns the base64 SHA-256. */
  put(key: string, body: Uint8Array, opts?: PutOptions): Promise<{ sha256: string }>;

  /**
   * Store a large object from a file as a parallel multipart upload with per-part
   * checksums; resumable after interruption through `opts.resume`.
   */
  putFile(key: string, path: string, opts?: PutLargeOptions): Promise<{ size: number }>;

  /**
   * Read an object (or an inclusive byte range of it). Throws `ObjectNotFoundError` if absent.
   * With `into`, a store may read the bytes into that (reused) buffer and return a view of it.
   */
  get(key: string, range?: ByteRange, signal?: AbortSignal, into?: Buffer): Promise<Buffer>;

  /** Stream an object. Throws `ObjectNotFoundError` if absent. */
  getStream(key: string, signal?: AbortSignal): Promise<Readable>;

  /** Size and checksum of an object, or `null` if it does not exist. */
  head(key: string): Promise<ObjectInfo | null>;

  /** Every object whose key starts with `prefix`, in lexicographic order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;

  /** Delete an object; deleting a missing object is not an error. */
  delete(key: string): Promise<void>;

  /**
   * Every version of exactly this key, newest first (versioned stores only).
   * Lets a reader fall back to the original of a write-once object that was
   * overwritten or hidden by a delete marker (FORMAT.md, "Object Lock").
   */
  listVersions?(key: string, signal?: AbortSignal): Promise<ObjectVersion[]>;

  /** Read one version of an object (or a byte range of it). */
  getVersion?(key: string, versionId: string, range?: ByteRange, signal?: AbortSignal): Promise<Buffer>;
}

/** Base of every storage error: names the location and key, never credentials. */
export class StorageError extends Error {
  constructor(
    message: string,
    readonly key: string | undefined,
    /** true when retrying cannot help (access denied, no such bucket, bad request). */
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StorageError';
  }
}

export class ObjectNotFoundError extends StorageError {
  constructor(location: string, key: string) {
    super(`object not found: ${location}/${key}`, key, true);
    this.name = 'ObjectNotFoundError';
  }
}

export class ObjectExistsError extends StorageError {
  constructor(location: string, key: string) {
    super(`object already exists with different content: ${location}/${key}`, key, true);
    this.name = 'ObjectExistsError';
  }
}
