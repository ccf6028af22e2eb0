/**
 * Packs: many blobs in one stored object, so a dataset of 100k small files is a
 * few hundred objects, not 100k. A pack is one age file whose plaintext is the
 * blobs laid end to end; the index records each blob's offset and length.
 *
 * PackUploader keeps a bounded number of packs in flight and writes an index
 * object for every few durable packs, so a crashed backup's uploads are found
 * and reused by the next one.
 */
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { AgeEncryptor, parseAgeHeaderLength } from './crypto/age';
import type { BlobType, PackRecord } from './index';

/**
 * Reusable pack-sized buffers. Freshly allocated memory costs page faults on
 * first write (≈300 MB/s on these VMs), far slower than the cipher, so packs
 * are assembled in buffers that are recycled once their upload finishes.
 */
export class PackBufferPool {
  private readonly free: Buffer[] = [];
  constructor(
    readonly capacity: number,
    private readonly maxFree = 8,
  ) {}

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.capacity);
  }

  release(buf: Buffer): void {
    if (buf.length === this.capacity && this.free.length < this.maxFree) this.free.push(buf);
  }
}

export interface FinishedPack {
  id: string;
  body: Buffer;
  sha256: Buffer;
  record: PackRecord;
  /** returns the pack's buffer to its pool; call once the body is no longer needed */
  release: () => void;
}

export class PackWriter {
  private buf: Buffer;
  private pos = 0;
  private readonly hash = createHash('sha256');
  private readonly blobs: PackRecord['blobs'] = [];
  private headerBytes = 0;
  private plaintext = 0;

  private constructor(
    private readonly enc: AgeEncryptor,
    private readonly pool: PackBufferPool,
  ) {
    this.buf = pool.acquire();
  }

  static async create(recipients: string[], pool: PackBufferPool): Promise<PackWriter> {
    return new PackWriter(await AgeEncryptor.create(recipients), pool);
  }

  get plaintextBytes(): number {
    return this.plaintext;
  }

  get blobCount(): number {
    return this.blobs.length;
  }

  add(id: string, type: BlobType, data: Uint8Array): void {
    this.blobs.push({ id, type, offset: this.plaintext, length: data.length });
    this.plaintext += data.length;
    this.push(this.enc.write(data));
  }

  /** Seals the pack; the pack id is the SHA-256 of its ciphertext, so anyone can check it without keys. */
  finish(): FinishedPack {
    this.push(this.enc.finish());
    const digest = this.hash.digest();
    const id = digest.toString('hex');
    const buf = this.buf;
    const body = buf.subarray(0, this.pos);
    let released = false;
    return {
      id,
      body,
      sha256: digest,
      record: { id, ciphertextBytes: body.length, plaintextBytes: this.plaintext, headerBytes: this.headerBytes, blobs: this.blobs },
      release: () => {
        if (released) return;
        released = true;
        this.pool.release(buf);
      },
    };
  }

  private push(out: Buffer[]): void {
    for (const b of out) {
      if (this.pos === 0 && this.headerBytes === 0) {
        // The encryptor's first output is the header; its length is needed for random access.
        this.headerBytes = parseAgeHeaderLength(b);
      }
      this.hash.update(b);
      if (this.pos + b.length > this.buf.length) {
        // Larger than a pooled buffer (an unusually large header): grow once, outside the pool.
        const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + b.length));
        this.buf.copy(bigger, 0, 0, this.pos);
        this.pool.release(this.buf);
        this.buf = bigger;
      }
      b.copy(this.buf, this.pos);
      this.pos += b.length;
    }
  }
}

export interface PackSink {
  /** Stores one finished pack durably. */
  putPack(id: string, body: Buffer, sha256: Buffer): Promise<void>;
  /** Stores an index object listing packs that are already durable. */
  putIndex(packs: PackRecord[]): Promise<string>;
}

export class PackUploader {
  private readonly limit;
  private readonly inFlight = new Set<Promise<void>>();
  private unindexed: PackRecord[] = [];
  private failure: unknown;
  private indexing: Promise<void> = Promise.resolve();
  uploadedBytes = 0;
  packsUploaded = 0;
  readonly indexIds: string[] = [];

  constructor(
    private readonly sink: PackSink,
    private readonly opts: { concurrency: number; packsPerIndex: number; onUploaded?: (bytes: number) => void },
  ) {
    this.limit = pLimit(opts.concurrency);
  }

  /** Queues a pack; waits while too many are already queued so memory stays bounded. */
  async upload(pack: FinishedPack): Promise<void> {
    this.throwIfFailed();
    while (this.inFlight.size >= this.opts.concurrency + 1) {
      await Promise.race(this.inFlight);
      this.throwIfFailed();
    }
    const p = this.limit(async () => {
      try {
        await this.sink.putPack(pack.id, pack.body, pack.sha256);
      } finally {
        pack.release();
      }
      this.uploadedBytes += pack.body.length;
      this.packsUploaded++;
      this.opts.onUploaded?.(pack.body.length);
      this.unindexed.push(pack.record);
      if (this.unindexed.length >= this.opts.packsPerIndex) this.scheduleIndex();
    }).catch((err: unknown) => {
      this.failure ??= err;
    });
    const tracked = p.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  /** Waits for every pack, then writes the index for whatever is not yet indexed. */
  async close(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
    this.throwIfFailed();
    this.scheduleIndex();
    await this.indexing;
    this.throwIfFailed();
  }

  private scheduleIndex(): void {
    if (this.unindexed.length === 0) return;
    const batch = this.unindexed;
    this.unindexed = [];
    this.indexing = this.indexing.then(async () => {
      try {
        const id = await this.sink.putIndex(batch);
        this.indexIds.push(id);
      } catch (err) {
        this.failure ??= err;
      }
    });
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
