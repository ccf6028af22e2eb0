/**
 * A Lifeline repository: one tenant's encrypted, deduplicated snapshots under
 * one bucket prefix. This module knows the object layout (FORMAT.md) and how
 * to read and write each kind of object; backup, restore, checks and
 * retention are built on it in their own modules.
 *
 *     config                 repository settings and secrets (age file)
 *     data/<xx>/<packId>     packs of blobs (age files)
 *     index/<id>             where each blob lives (age files, text)
 *     snapshots/<id>         signed manifests (age files)
 *     locks/<id>             leases of running backups (plain JSON)
 *     tombstones/<id>        packs condemned by garbage collection (plain JSON)
 */
import { createHmac, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { ByteRange, ObjectStore, PutOptions } from './backend/object-store';
import { ObjectNotFoundError } from './backend/object-store';
import { AgeIdentities, AgePayloadReader, openBytes, sealBytes, unwrapFileKey } from './crypto/age';
import type { SigningKey } from './crypto/signing';
import { DEFAULT_CHUNKER_PARAMS, type ChunkerParams } from './chunker';
import { PackBufferPool } from './packer';
import { defaultCacheRoot, ObjectCache } from './cache';
import pLimit from 'p-limit';
import { InputError, IntegrityError, RepositoryStateError } from './errors';
import { decodeIndex, encodeIndex, MasterIndex, type BlobLocation, type BlobType, type PackRecord } from './index';
import { decodeManifest, encodeManifest, sha256Hex, type ManifestBody, type SignedManifest } from './manifest';
import { decodeTreeBlob, type TreeEntry, validateTree } from './tree';

export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;

/** Reused buffers for ranged pack reads: an 8 MiB read plus its age chunk overhead fits. */
const CIPHER_BUFFER_SIZE = 8 * 1024 * 1024 + 64 * 1024 + 4096;

const RepositoryConfigSchema = z
  .object({
    format: z.literal('lifeline-repository'),
    version: z.literal(1),
    id: z.string().regex(/^[0-9a-f]{32}$/),
    createdAt: z.string(),
    chunker: z.object({ minSize: z.number().int().positive(), avgSize: z.number().int().positive(), maxSize: z.number().int().positive() }).strict(),
    /** seeds the chunker's gear table so chunk boundaries don't fingerprint content */
    chunkerSeed: z.string(),
    /** HMAC-SHA-256 key for blob ids, so object names never reveal plaintext hashes */
    dedupKey: z.string(),
    packSize: z.number().int().positive(),
    signers: z.array(z.object({ keyId: z.string(), publicKey: z.string() }).strict()).min(1),
  })
  .strict();
export type RepositoryConfig = z.infer<typeof RepositoryConfigSchema>;

export const keys = {
  config: 'config',
  pack: (id: string) => `data/${id.slice(0, 2)}/${id}`,
  index: (id: string) => `index/${id}`,
  snapshot: (id: string) => `snapshots/${id}`,
  lock: (id: string) => `locks/${id}`,
  tombstone: (id: string) => `tombstones/${id}`,
  /** the signed Model BOM of a model snapshot (mbom/bom.ts) */
  bom: (snapshotId: string) => `bom/${snapshotId}`,
};

/**
 * S3 Object Lock retention given to every committed object (config, packs,
 * index objects, manifests, records) when it is written. Leases and
 * tombstones are working state and are not locked.
 */
export interface ObjectLockPolicy {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** how long each object stays locked after it is written */
  retentionMs: number;
}

export interface InitOptions {
  recipients: string[];
  signingKey: SigningKey;
  chunker?: ChunkerParams;
  packSize?: number;
  lock?: ObjectLockPolicy;
}

export interface OpenOptions {
  identities: AgeIdentities;
  /** Recipients new data is encrypted to; defaults to the first identity's (the current one; later ones only read). */
  recipients?: string[];
  /** Needed to write snapshots; its key must be one of the repository's signers. */
  signingKey?: SigningKey;
  /** Extra trusted signer public keys (keyId → base64 public key) besides those in the config. */
  trustedSigners?: ReadonlyMap<string, string>;
  /** Packs kept open for random access (each holds a file key). */
  readerCacheSize?: number;
  /** Local cache of decrypted index objects and manifests; `null` disables it. Default: defaultCacheRoot(). */
  cacheRoot?: string | null;
  /** Object Lock retention for committed objects written through this repository (the bucket must have Object Lock). */
  lock?: ObjectLockPolicy;
  /** Told when a read fell back to an older version of an object because the current one was overwritten or deleted. */
  onTampered?: (event: TamperedObject) => void;
}

/** A write-once object whose current version is not the original: the original was found and used. */
export interface TamperedObject {
  key: string;
  /** the version that verified and is used from now on */
  versionId: string;
  /** what was wrong with the current version */
  problem: string;
}

export interface SnapshotSummary {
  id: string;
  time: string;
  asset: ManifestBody['asset'];
  labels: Record<string, string>;
  parent: string | null;
  stats: ManifestBody['stats'];
}

export class Repository {
  readonly index = new MasterIndex();
  private readonly dedupKey: Buffer;
  private readonly trusted: Map<string, string>;
  private readonly readers = new Map<string, Promise<AgePayloadReader>>();
  private readonly readerCacheSize: number;
  /** packs named by tombstones: present in storage but not to be reused */
  readonly condemnedPacks = new Set<string>();
  private readonly condemnedPackInfo = new Map<string, PackRecord>();
  private readonly condemnedBlobs = new Map<string, BlobLocation>();

  private constructor(
    readonly store: ObjectStore,
    readonly config: RepositoryConfig,
    private readonly identities: AgeIdentities,
    readonly recipients: string[],
    readonly signingKey: SigningKey | undefined,
    opts: OpenOptions,
  ) {
    this.dedupKey = Buffer.from(config.dedupKey, 'base64');
    this.trusted = new Map(config.signers.map((s) => [s.keyId, s.publicKey]));
    for (const [k, v] of opts.trustedSigners ?? []) this.trusted.set(k, v);
    this.readerCacheSize = opts.readerCacheSize ?? 64;
    this.lock = opts.lock;
    this.onTampered = opts.onTampered;
    const cacheRoot = opts.cacheRoot === undefined ? defaultCacheRoot() : opts.cacheRoot;
    this.cache = cacheRoot === null ? undefined : ObjectCache.forRepository(cacheRoot, config.id);
  }

  private readonly cache: ObjectCache | undefined;
  private readonly lock: ObjectLockPolicy | undefined;
  private readonly onTampered: OpenOptions['onTampered'];
  /** write-once keys whose current version was tampered with → the version id of the verified original */
  private readonly pinned = new Map<string, string>();
  /** keys already searched for an original (one search per key and process) */
  private readonly searched = new Map<string, Promise<string | null>>();

  /** Put options that lock a committed object (nothing when the repository writes without Object Lock). */
  lockOptions(now = Date.now()): Pick<PutOptions, 'retention'> {
    return this.lock ? { retention: { mode: this.lock.mode, until: new Date(now + this.lock.retentionMs) } } : {};
  }

  /** Tampered keys found so far and the versions used instead (for verification reports). */
  tamperedObjects(): Array<{ key: string; versionId: string }> {
    return [...this.pinned].map(([key, versionId]) => ({ key, versionId }));
  }

  /**
   * Reads a write-once object: its pinned original if it was found tampered
   * with earlier, else its current version.
   */
  async getObject(key: string, range?: ByteRange, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    const v = this.pinned.get(key);
    if (v && this.store.getVersion) return this.store.getVersion(key, v, range, signal);
    return this.store.get(key, range, signal, into);
  }

  /**
   * The current version of a write-once object failed its check (or is gone):
   * look for the newest older version that passes `verify` (objects are
   * self-verifying: packs and index objects by their SHA-256 name, manifests
   * by their signed body's hash). Found → pinned, reported, returned; not
   * found, or a store without versions → null. Only Object Lock buckets keep
   * the versions this needs.
   */
  async recoverOriginal(key: string, problem: string, verify: (bytes: Buffer) => Promise<boolean> | boolean, signal?: AbortSignal): Promise<Buffer | null> {
    const store = this.store;
    if (!store.listVersions || !store.getVersion) return null;
    let search = this.searched.get(key);
    if (!search) {
      search = (async () => {
        // No permission to list versions (or no versioning): nothing to fall back to; the caller reports the original problem.
        const versions = await store.listVersions!(key, signal).catch(() => []);
        for (const v of versions) {
          if (v.deleteMarker || this.pinned.get(key) === v.versionId) continue;
          let bytes: Buffer;
          try {
            bytes = await store.getVersion!(key, v.versionId, undefined, signal);
            if (!(await verify(bytes))) continue;
          } catch {
            continue;
          }
          if (v.latest) return null; // the current version is fine after all (the failure was elsewhere)
          this.pinned.set(key, v.versionId);
          this.onTampered?.({ key, versionId: v.versionId, problem });
          return v.versionId;
        }
        return null;
      })();
      this.searched.set(key, search);
    }
    const found = await search;
    return found ? store.getVersion(key, found, undefined, signal) : null;
  }

  static async init(store: ObjectStore, opts: InitOptions & { identities?: AgeIdentities }): Promise<void> {
    if (opts.recipients.length === 0) throw new InputError('cannot initialise a repository without recipients');
    const config: RepositoryConfig = {
      format: 'lifeline-repository',
      version: 1,
      id: randomBytes(16).toString('hex'),
      createdAt: new Date().toISOString(),
      chunker: opts.chunker ?? DEFAULT_CHUNKER_PARAMS,
      chunkerSeed: randomBytes(32).toString('base64'),
      dedupKey: randomBytes(32).toString('base64'),
      packSize: opts.packSize ?? DEFAULT_PACK_SIZE,
      signers: [{ keyId: opts.signingKey.keyId, publicKey: opts.signingKey.publicKey }],
    };
    const body = await sealBytes(Buffer.from(JSON.stringify(config)), opts.recipients);
    if (await store.head(keys.config)) {
      throw new RepositoryStateError(`a repository already exists at ${store.location}`);
    }
    const lock = opts.lock ? { retention: { mode: opts.lock.mode, until: new Date(Date.now() + opts.lock.retentionMs) } } : {};
    await store.put(keys.config, body, { ifNoneMatch: true, ...lock });
  }

  /**
   * Rewrites `config` (FORMAT.md, "Key rotation"): the only time it changes.
   * The repository id, dedup key and chunker seed never change (blob ids and
   * chunk boundaries depend on them); only the signers and the recipients it
   * is sealed to do. Returns the config as stored.
   */
  static async rewriteConfig(
    store: ObjectStore,
    opts: { identities: AgeIdentities; recipients: string[]; update: (c: RepositoryConfig) => RepositoryConfig },
  ): Promise<RepositoryConfig> {
    const current = RepositoryConfigSchema.parse(JSON.parse((await openBytes(await store.get(keys.config), opts.identities)).toString('utf8')));
    const next = RepositoryConfigSchema.parse(opts.update(structuredClone(current)));
    if (next.id !== current.id || next.dedupKey !== current.dedupKey || next.chunkerSeed !== current.chunkerSeed) {
      throw new RepositoryStateError('a config rewrite must keep the repository id, dedup key and chunker seed');
    }
    if (opts.recipients.length === 0) throw new InputError('cannot seal the repository config to no recipients');
    await store.put(keys.config, await sealBytes(Buffer.from(JSON.stringify(next)), opts.recipients));
    return next;
  }

  static async exists(store: ObjectStore): Promise<boolean> {
    return (await store.head(keys.config)) !== null;
  }

  static async open(store: ObjectStore, opts: OpenOptions): Promise<Repository> {
    let sealed: Buffer;
    try {
      sealed = await store.get(keys.config);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw new RepositoryStateError(`no repository at ${store.location} (run init first)`);
      }
      throw err;
    }
    const parseConfig = async (bytes: Buffer): Promise<RepositoryConfig> => {
      const plain = await openBytes(bytes, opts.identities);
      let raw: unknown;
      try {
        raw = JSON.parse(plain.toString('utf8'));
      } catch {
        throw new IntegrityError(`${store.location}/config: not valid JSON`);
      }
      const parsed = RepositoryConfigSchema.safeParse(raw);
      if (!parsed.success) throw new IntegrityError(`${store.location}/config: ${parsed.error.issues[0]!.path.join('.')}: ${parsed.error.issues[0]!.message}`);
      return parsed.data;
    };
    // `config` names nothing it could be checked against, and key rotation rewrites it, so the
    // current version counts; only the admin may write it (storage policies). A current version
    // that does not open (overwritten with junk) falls back to the newest older one that does.
    let config: RepositoryConfig;
    let configVersion: { versionId: string; problem: string } | undefined;
    try {
      config = await parseConfig(sealed);
    } catch (err) {
      let found: RepositoryConfig | undefined;
      const versions = store.listVersions && store.getVersion ? await store.listVersions(keys.config).catch(() => []) : [];
      for (const v of versions) {
        if (v.deleteMarker || v.latest) continue;
        try {
          found = await parseConfig(await store.getVersion!(keys.config, v.versionId));
          configVersion = { versionId: v.versionId, problem: (err as Error).message };
          break;
        } catch {
          // not this one either
        }
      }
      if (!found) throw err;
      config = found;
    }
    const recipients = opts.recipients ?? (await opts.identities.currentRecipients());
    const repo = new Repository(store, config, opts.identities, recipients, opts.signingKey, opts);
    if (configVersion) {
      repo.pinned.set(keys.config, configVersion.versionId);
      opts.onTampered?.({ key: keys.config, versionId: configVersion.versionId, problem: configVersion.problem });
    }
    if (opts.signingKey && !repo.trusted.has(opts.signingKey.keyId)) {
      throw new RepositoryStateError(`signing key ${opts.signingKey.keyId} is not a trusted signer of ${store.location}`);
    }
    await repo.loadIndex();
    return repo;
  }

  get id(): string {
    return this.config.id;
  }

  /** keyId → public key of every signer whose manifests and records are believed. */
  get trustedSigners(): ReadonlyMap<string, string> {
    return this.trusted;
  }

  private packPool: PackBufferPool | undefined;

  /** Pack buffers shared by every backup of this repository object. */
  get packBuffers(): PackBufferPool {
    // Room for the largest pack (packSize, or one max-size chunk), its tags and a generous header.
    const plain = Math.max(this.config.packSize, this.config.chunker.maxSize);
    this.packPool ??= new PackBufferPool(plain + 16 * (Math.ceil(plain / 65536) + 1) + 64 * 1024);
    return this.packPool;
  }

  get chunkerSeed(): Buffer {
    return Buffer.from(this.config.chunkerSeed, 'base64');
  }

  /** Keyed blob id: HMAC-SHA-256 under the repository's dedup key, hex. */
  blobId(data: Uint8Array): string {
    return createHmac('sha256', this.dedupKey).update(data).digest('hex');
  }

  // ---- index -------------------------------------------------------------

  /** Reads every index object and tombstone; condemned packs are not reused. */
  async loadIndex(): Promise<void> {
    const seen = new Set(this.index.indexFiles().keys());
    const listed = new Set<string>();
    const fresh: string[] = [];
    for await (const obj of this.store.list('index/')) {
      const id = obj.key.slice('index/'.length);
      listed.add(id);
      if (!seen.has(id)) fresh.push(id);
    }
    // Index objects are immutable and named by their hash: read them in parallel, from the cache when possible.
    const limit = pLimit(8);
    const loaded = await Promise.all(
      fresh.map((id) =>
        limit(async () => {
          const key = keys.index(id);
          let plain = this.cache ? await this.cache.get('index', id) : null;
          if (!plain) {
            let sealed = await this.getObject(key);
            if (sha256Hex(sealed) !== id) {
              const original = await this.recoverOriginal(key, 'content does not match its name', (b) => sha256Hex(b) === id);
              if (!original) throw new IntegrityError(`${this.store.location}/${key}: content does not match its name (corrupt or replaced)`);
              sealed = original;
            }
            plain = await openBytes(sealed, this.identities);
            await this.cache?.put('index', id, plain);
          }
          return { id, packs: decodeIndex(plain, `${this.store.location}/${key}`) };
        }),
      ),
    );
    for (const { id, packs } of loaded) this.index.addIndexFile(id, packs);
    // Index objects replaced by garbage collection since the last load take their dropped packs with them.
    this.index.dropIndexFilesNotIn(listed);
    for await (const obj of this.store.list('tombstones/')) {
      const t = await this.readTombstone(obj.key);
      for (const p of t.packs) this.condemnedPacks.add(p);
    }
    const removed = this.index.removePacks(this.condemnedPacks);
    for (const p of removed.packs) this.condemnedPackInfo.set(p.id, p);
    for (const [id, loc] of removed.blobs) this.condemnedBlobs.set(id, loc);
  }

  async writeIndex(packs: PackRecord[]): Promise<string> {
    const plain = encodeIndex(packs);
    const sealed = await sealBytes(plain, this.recipients);
    const id = sha256Hex(sealed);
    await this.store.put(keys.index(id), sealed, { ifNoneMatch: true, ...this.lockOptions() });
    this.index.addIndexFile(id, packs);
    await this.cache?.put('index', id, plain);
    return id;
  }

  /**
   * Index objects listing any of `packs` are replaced by one without them: the
   * new object is stored first, then the old ones are deleted, so every other
   * pack is always in some index. Returns the ids of the replaced objects.
   */
  async rewriteIndexWithout(packs: ReadonlySet<string>): Promise<string[]> {
    const superseded: string[] = [];
    const keep: PackRecord[] = [];
    for (const [indexId, packIds] of this.index.indexFiles()) {
      if (!packIds.some((p) => packs.has(p))) continue;
      superseded.push(indexId);
      for (const p of packIds) {
        if (packs.has(p)) continue;
        const rec = this.packRecord(p);
        if (rec) keep.push(rec);
      }
    }
    if (keep.length > 0) await this.writeIndex(keep);
    for (const indexId of superseded) await this.store.delete(keys.index(indexId));
    this.index.forgetIndexFiles(superseded);
    return superseded;
  }

  async putPack(id: string, body: Buffer, sha256?: Uint8Array): Promise<void> {
    await this.store.put(keys.pack(id), body, { ifNoneMatch: true, sha256, ...this.lockOptions() });
  }

  // ---- blobs -------------------------------------------------------------

  private async reader(packId: string, headerBytes: number): Promise<AgePayloadReader> {
    let r = this.readers.get(packId);
    if (!r) {
      r = (async () => {
        const head = await this.getObject(keys.pack(packId), { start: 0, end: headerBytes + 16 - 1 });
        return AgePayloadReader.open(head, this.identities);
      })();
      this.readers.set(packId, r);
      r.catch(() => this.readers.delete(packId));
      if (this.readers.size > this.readerCacheSize) {
        const oldest = this.readers.keys().next().value;
        if (oldest !== undefined) this.readers.delete(oldest);
      }
    }
    return r;
  }

  /**
   * Reads a contiguous plaintext range of a pack, authenticating every age
   * chunk it touches. Used to read one blob or several adjacent ones at once.
   */
  async readPackRange(packId: string, offset: number, length: number, signal?: AbortSignal, into?: Buffer): Promise<Buffer> {
    const pack = this.index.pack(packId) ?? this.condemnedPackInfo.get(packId);
    if (!pack) throw new IntegrityError(`pack ${packId} is not in the index`);
    const reader = await this.reader(packId, pack.headerBytes);
    const range = reader.cipherRangeFor(offset, length, pack.plaintextBytes);
    const want = range.end - range.start;
    const pooled = want <= CIPHER_BUFFER_SIZE ? (this.cipherBuffers.pop() ?? Buffer.allocUnsafeSlow(CIPHER_BUFFER_SIZE)) : undefined;
    try {
      const cipher = await this.getObject(keys.pack(packId), { start: range.start, end: range.end - 1 }, signal, pooled);
      if (cipher.length !== want) {
        throw new IntegrityError(`pack ${packId} is truncated (expected ${want} bytes at ${range.start}, got ${cipher.length})`);
      }
      return reader.decryptRange(cipher, offset, length, pack.plaintextBytes, into);
    } finally {
      // Decryption copied the plaintext out, so the ciphertext buffer can be reused at once.
      if (pooled && this.cipherBuffers.length < 4) this.cipherBuffers.push(pooled);
    }
  }

  private readonly cipherBuffers: Buffer[] = [];

  /** Reads one blob and checks that its content matches its keyed id. */
  async readBlob(blobId: string, signal?: AbortSignal): Promise<Buffer> {
    const loc = this.index.lookup(blobId);
    if (!loc) throw new IntegrityError(`blob ${blobId} is not in the index (missing data)`);
    return this.withPackRecovery(loc.packId, signal, async () => {
      const data = await this.readPackRange(loc.packId, loc.offset, loc.length, signal);
      this.checkBlob(blobId, data, loc.packId);
      return data;
    });
  }

  /**
   * Runs a read of a pack; if it fails because the stored pack is not the one
   * that was written (overwritten, deleted, corrupt), switches to the pack's
   * original version — the one whose SHA-256 is its name — and reads again.
   */
  async withPackRecovery<T>(packId: string, signal: AbortSignal | undefined, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (err) {
      if (signal?.aborted || this.pinned.has(keys.pack(packId))) throw err;
      if (!(err instanceof ObjectNotFoundError || err instanceof IntegrityError || (err as Error)?.name?.startsWith('Age'))) throw err;
      const original = await this.recoverOriginal(keys.pack(packId), (err as Error).message, (b) => sha256Hex(b) === packId, signal).catch(() => null);
      if (!original) throw err;
      this.readers.delete(packId);
      return read();
    }
  }

  /** A whole pack, checked against its name; falls back to the original version when the current one was replaced. */
  async readPack(packId: string, signal?: AbortSignal): Promise<Buffer> {
    const key = keys.pack(packId);
    const body = await this.getObject(key, undefined, signal).catch((err: unknown) => {
      if (err instanceof ObjectNotFoundError) return null;
      throw err;
    });
    if (body && sha256Hex(body) === packId) return body;
    const original = await this.recoverOriginal(key, body ? 'content does not match its name' : 'missing', (b) => sha256Hex(b) === packId, signal);
    if (original) return original;
    if (!body) throw new ObjectNotFoundError(this.store.location, key);
    return body; // the caller reports the mismatch
  }

  condemnedBlobEntries(): IterableIterator<[string, BlobLocation]> {
    return this.condemnedBlobs.entries();
  }

  condemnedPack(packId: string): PackRecord | undefined {
    return this.condemnedPackInfo.get(packId);
  }

  /** The index record of a pack, live or condemned. */
  packRecord(packId: string): PackRecord | undefined {
    return this.index.pack(packId) ?? this.condemnedPackInfo.get(packId);
  }

  forgetIndexFiles(ids: string[]): void {
    this.index.forgetIndexFiles(ids);
  }

  /** Reads a blob that lives in a condemned pack (see BackupSession.resurrectCondemned). */
  async readCondemnedBlob(blobId: string): Promise<{ type: BlobType; data: Buffer }> {
    const loc = this.condemnedBlobs.get(blobId);
    if (!loc) {
      throw new RepositoryStateError(
        `blob ${blobId} was collected while this backup ran (it is in no index and no condemned pack); run the backup again`,
        false,
      );
    }
    const data = await this.withPackRecovery(loc.packId, undefined, async () => {
      const d = await this.readPackRange(loc.packId, loc.offset, loc.length);
      this.checkBlob(blobId, d, loc.packId);
      return d;
    });
    return { type: loc.type, data };
  }

  checkBlob(blobId: string, data: Uint8Array, packId: string): void {
    if (this.blobId(data) !== blobId) {
      throw new IntegrityError(`blob ${blobId} in pack ${packId} does not match its id (corrupt)`);
    }
  }

  // ---- snapshots ---------------------------------------------------------

  /** Signs, encrypts and stores a manifest. This is the commit point of a backup. */
  async commitSnapshot(body: ManifestBody): Promise<string> {
    if (!this.signingKey) throw new RepositoryStateError('a signing key is needed to write snapshots');
    const { id, bytes } = encodeManifest(body, this.signingKey);
    const sealed = await sealBytes(bytes, this.recipients);
    await this.store.put(keys.snapshot(id), sealed, { ifNoneMatch: true, ...this.lockOptions() });
    await this.cache?.put('snapshots', id, bytes);
    return id;
  }

  async loadSnapshot(id: string, opts: { useCache?: boolean } = {}): Promise<SignedManifest> {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new InputError(`not a snapshot id: ${JSON.stringify(id)}`);
    if (opts.useCache && this.cache) {
      // The cached plaintext is authenticated again (signature, id, repository); the object must still exist.
      const plain = await this.cache.get('snapshots', id);
      if (plain) {
        try {
          const m = decodeManifest(plain, id, this.trusted);
          if (m.body.repositoryId === this.config.id) return m;
        } catch {
          await this.cache.delete('snapshots', id);
        }
      }
    }
    let sealed: Buffer;
    try {
      sealed = await this.getObject(keys.snapshot(id));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw new SnapshotNotFoundError(`snapshot ${id} does not exist in ${this.store.location}`);
      throw err;
    }
    let plain: Buffer;
    let manifest: SignedManifest;
    try {
      plain = await openBytes(sealed, this.identities);
      manifest = decodeManifest(plain, id, this.trusted);
    } catch (err) {
      // A manifest is self-verifying (signed, and its body hashes to its id): an overwritten one falls back to the original.
      let recovered: { plain: Buffer; manifest: SignedManifest } | undefined;
      const original = await this.recoverOriginal(keys.snapshot(id), (err as Error).message, async (b) => {
        try {
          const p = await openBytes(b, this.identities);
          recovered = { plain: p, manifest: decodeManifest(p, id, this.trusted) };
          return true;
        } catch {
          return false;
        }
      });
      if (!original || !recovered) throw err;
      ({ plain, manifest } = recovered);
    }
    await this.cache?.put('snapshots', id, plain);
    if (manifest.body.repositoryId !== this.config.id) {
      throw new IntegrityError(`snapshot ${id} belongs to another repository (${manifest.body.repositoryId})`);
    }
    return manifest;
  }

  async snapshotIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const obj of this.store.list('snapshots/')) ids.push(obj.key.slice('snapshots/'.length));
    return ids;
  }

  /** Every snapshot, oldest first. A manifest that fails verification is an error, not skipped. */
  async listSnapshots(filter?: { asset?: string }): Promise<SnapshotSummary[]> {
    const out: SnapshotSummary[] = [];
    // Only snapshots listed right now count (a forgotten one drops out); their manifests may come from the cache.
    const limit = pLimit(8);
    const manifests = await Promise.all(
      (await this.snapshotIds()).map((id) =>
        limit(async () => {
          try {
            return await this.loadSnapshot(id, { useCache: true });
          } catch (err) {
            // Forgotten by retention between listing and reading: it no longer exists, so it is not listed.
            if (err instanceof SnapshotNotFoundError) return null;
            throw err;
          }
        }),
      ),
    );
    for (const m of manifests) {
      if (m === null) continue;
      if (filter?.asset && m.body.asset.name !== filter.asset) continue;
      out.push({ id: m.id, time: m.body.time, asset: m.body.asset, labels: m.body.labels, parent: m.body.parent, stats: m.body.stats });
    }
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  /** Accepts a full id or a unique prefix of at least 6 characters, like restic. */
  async resolveSnapshotId(ref: string): Promise<string> {
    if (!/^[0-9a-f]{6,64}$/.test(ref)) throw new InputError(`not a snapshot id: ${JSON.stringify(ref)} (expected 6–64 hex characters)`);
    const matches = (await this.snapshotIds()).filter((id) => id.startsWith(ref));
    if (matches.length === 0) throw new InputError(`no snapshot matches ${ref} in ${this.store.location}`);
    if (matches.length > 1) throw new InputError(`${ref} is ambiguous: ${matches.length} snapshots match; give more characters`);
    return matches[0]!;
  }

  /** The snapshot's complete tree, validated (paths safe, sorted, no entry below a symlink). */
  async loadTree(manifest: SignedManifest): Promise<TreeEntry[]> {
    const entries: TreeEntry[] = [];
    for (const blobId of manifest.body.tree) {
      const data = await this.readBlob(blobId);
      for (const e of decodeTreeBlob(data, `snapshot ${manifest.id} tree blob ${blobId}`)) entries.push(e);
    }
    validateTree(entries, `snapshot ${manifest.id}`);
    return entries;
  }

  // ---- tombstones --------------------------------------------------------

  async readTombstone(key: string): Promise<Tombstone> {
    const raw: unknown = JSON.parse((await this.store.get(key)).toString('utf8'));
    const parsed = TombstoneSchema.safeParse(raw);
    if (!parsed.success) throw new IntegrityError(`${this.store.location}/${key}: malformed tombstone`);
    return parsed.data;
  }

  /** Decrypts an age object already fetched, with every identity of the tenant (current and older ones). */
  async openSealed(sealed: Uint8Array): Promise<Buffer> {
    return openBytes(sealed, this.identities);
  }

  /** Decrypts an arbitrary age object of this repository (config, index, manifest) for tools and tests. */
  async openObject(key: string): Promise<Buffer> {
    return openBytes(await this.getObject(key), this.identities);
  }

  /** File key of a pack, for the deep checker that decrypts whole packs. */
  async packFileKey(header: Uint8Array): Promise<Buffer> {
    return unwrapFileKey(header, this.identities);
  }
}

export const TombstoneSchema = z
  .object({
    format: z.literal('lifeline-tombstone'),
    createdAt: z.string(),
    /** packs that no snapshot referenced when this tombstone was written */
    packs: z.array(z.string().regex(/^[0-9a-f]{64}$/)),
  })
  .strict();
export type Tombstone = z.infer<typeof TombstoneSchema>;

/** The snapshot does not exist (never did, or was forgotten). */
export class SnapshotNotFoundError extends InputError {}
