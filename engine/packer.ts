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

export class PackWriter {
  private readonly parts: Buffer[] = [];
  private readonly hash = createHash('sha256');
  private readonly blobs: PackRecord['blobs'] = [];
  private headerBytes = 0;
  private plaintext = 0;

  private constructor(private readonly enc: AgeEncryptor) {}

  static async create(recipients: string[]): Promise<PackWriter> {
    return new PackWriter(await AgeEncryptor.create(recipients));
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
  finish(): { id: string; body: Buffer; sha256: Buffer; record: PackRecord } {
    this.push(this.enc.finish());
    const digest = this.hash.digest();
    const id = digest.toString('hex');
    const body = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    return {
      id,
      body,
      sha256: digest,
      record: {
        id,
        ciphertextBytes: body.length,
        plaintextBytes: this.plaintext,
        headerBytes: this.headerBytes,
        blobs: this.blobs,
      },
    };
  }

  private push(out: Buffer[]): void {
    for (const b of out) {
      if (this.parts.length === 0 && this.headerBytes === 0) {
        // The encryptor's first output begins with the header; its length is needed for random access.
        this.headerBytes = parseAgeHeaderLength(b);
      }
      this.hash.update(b);
      this.parts.push(b);
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
  async upload(pack: { id: string; body: Buffer; sha256: Buffer; record: PackRecord }): Promise<void> {
    this.throwIfFailed();
    while (this.inFlight.size >= this.opts.concurrency * 2) {
      await Promise.race(this.inFlight);
      this.throwIfFailed();
    }
    const p = this.limit(async () => {
      await this.sink.putPack(pack.id, pack.body, pack.sha256);
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
