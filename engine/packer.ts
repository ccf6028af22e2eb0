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
    this.ensureRoom(this.enc.maxOutputFor(data.length));
    const start = this.pos;
    this.pos = this.enc.writeTo(data, this.buf, this.pos);
    this.sealed(start);
  }

  /** Seals the pack; the pack id is the SHA-256 of its ciphertext, so anyone can check it without keys. */
  finish(): FinishedPack {
    this.ensureRoom(this.enc.maxOutputFor(0));
    const start = this.pos;
    this.pos = this.enc.finishTo(this.buf, this.pos);
    this.sealed(start);
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

  /** Hashes what was just sealed into the buffer; the header's length is needed for random access. */
  private sealed(start: number): void {
    if (start === this.pos) return;
    if (this.headerBytes === 0) this.headerBytes = parseAgeHeaderLength(this.buf.subarray(0, this.pos));
    this.hash.update(this.buf.subarray(start, this.pos));
  }

  private ensureRoom(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    // Larger than a pooled buffer (an unusually large header): grow, outside the pool.
    const bigger = Buffer.allocUnsafeSlow(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.pool.release(this.buf);
    this.buf = bigger;
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
      if (this.opts.packsPerIndex <= 1) {
        // Index each pack in its own upload slot, in parallel: through one serial chain the
        // index fell several packs behind the uploads, and a crash orphaned those packs (their
        // chunks were then uploaded again). Now at most the packs in flight are unindexed.
        this.indexIds.push(await this.sink.putIndex([pack.record]));
      } else {
        this.unindexed.push(pack.record);
        if (this.unindexed.length >= this.opts.packsPerIndex) this.scheduleIndex();
      }
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
