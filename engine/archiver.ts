/**
 * Backup: walk → chunk → encrypt → pack → store, then commit a signed manifest.
 *
 * The manifest is written last, only after every pack and index it depends on
 * is durable, so a crash at any point leaves either no new snapshot or a
 * complete one. Index objects are written every few packs, so the next backup
 * finds (and reuses) whatever a crashed one had already uploaded.
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { Chunker, chunkFile, gearTable } from './chunker';
import { FileChangedError, InputError } from './errors';
import type { BlobType } from './index';
import type { AssetKind, ManifestBody, SnapshotStats } from './manifest';
import { PackUploader, PackWriter } from './packer';
import type { Repository } from './repository';
import { Lease } from './leases';
import { compareTreePaths, encodeTreeBlob, TREE_BLOB_ENTRIES, type FileEntry, type TreeEntry } from './tree';

export interface AssetRef {
  name: string;
  kind: AssetKind;
  tenant: string;
  node?: string;
}

export interface BackupProgress {
  phase: 'scanning' | 'reading' | 'uploading' | 'committing';
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
  bytesUploaded: number;
  newBytes: number;
}

export interface BackupOptions {
  /** Folder (or single file) to back up. */
  root: string;
  asset: AssetRef;
  labels?: Record<string, string>;
  /** Snapshot to compare with to skip unchanged files; `undefined` = the asset's newest snapshot, `null` = none. */
  parent?: string | null;
  /** Packs uploaded in parallel. */
  uploadConcurrency?: number;
  /** Write an index object every this many packs (crash recovery granularity). */
  packsPerIndex?: number;
  /** How often a file that changes while being read is re-read before the backup fails. */
  changedFileRetries?: number;
  onProgress?: (p: BackupProgress) => void;
  signal?: AbortSignal;
  /** For crash tests: called at named points of the backup. */
  hooks?: {
    afterPack?: (n: number) => Promise<void> | void;
    /** after every file is read and its blobs queued, before condemned blobs are re-stored */
    afterRead?: () => Promise<void> | void;
    beforeCommit?: () => Promise<void> | void;
  };
}

export interface BackupResult {
  snapshotId: string;
  stats: SnapshotStats;
  parent: string | null;
  /** entries that were not backed up (sockets, devices …) and why */
  skipped: Array<{ path: string; reason: string }>;
}

interface WalkItem {
  rel: string;
  abs: string;
  kind: 'file' | 'dir' | 'symlink';
  size: number;
}

/** Lists an asset's entries, sorted like trees; never follows symlinks. */
export async function walkAsset(root: string, skipped: Array<{ path: string; reason: string }>): Promise<WalkItem[]> {
  let st;
  try {
    st = await lstat(root);
  } catch (err) {
    throw new InputError(`asset path ${root} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  if (st.isFile()) return [{ rel: basename(root), abs: root, kind: 'file', size: st.size }];
  if (!st.isDirectory()) throw new InputError(`asset path ${root} is neither a folder nor a regular file`);
  const out: WalkItem[] = [];
  const visit = async (absDir: string, relDir: string): Promise<void> => {
    let dirents: Dirent[];
    try {
      dirents = await readdir(absDir, { withFileTypes: true });
    } catch (err) {
      throw new InputError(`cannot list folder ${absDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of dirents) {
      const rel = relDir === '' ? d.name : `${relDir}/${d.name}`;
      const abs = join(absDir, d.name);
      if (d.isDirectory()) {
        out.push({ rel, abs, kind: 'dir', size: 0 });
        await visit(abs, rel);
      } else if (d.isSymbolicLink()) {
        out.push({ rel, abs, kind: 'symlink', size: 0 });
      } else if (d.isFile()) {
        out.push({ rel, abs, kind: 'file', size: 0 });
      } else {
        skipped.push({ path: rel, reason: 'not a regular file, folder or symlink' });
      }
    }
  };
  await visit(root, '');
  out.sort((a, b) => compareTreePaths(a.rel, b.rel));
  return out;
}

/**
 * One backup in progress: holds the pack being filled, the uploader and the
 * set of blobs this session already stored.
 */
export class BackupSession {
  private pack: PackWriter | undefined;
  private nextPack: Promise<PackWriter> | undefined;
  private readonly sessionBlobs = new Set<string>();
  /** blobs this backup reuses from earlier packs; checked against tombstones before commit */
  private readonly reusedBlobs = new Set<string>();
  private readonly uploader: PackUploader;
  private readonly chunker: Chunker;
  private packsDone = 0;
  newBytes = 0;
  newBlobs = 0;

  constructor(
    private readonly repo: Repository,
    private readonly opts: { uploadConcurrency: number; packsPerIndex: number; onUploaded?: (bytes: number) => void; afterPack?: (n: number) => Promise<void> | void },
  ) {
    this.uploader = new PackUploader(
      { putPack: (id, body) => repo.putPack(id, body), putIndex: (packs) => repo.writeIndex(packs) },
      { concurrency: opts.uploadConcurrency, packsPerIndex: opts.packsPerIndex, onUploaded: opts.onUploaded },
    );
    this.chunker = new Chunker(repo.config.chunker, gearTable(repo.chunkerSeed));
  }

  get uploadedBytes(): number {
    return this.uploader.uploadedBytes;
  }

  /** Records blobs an unchanged file reuses without reading them. */
  markReused(ids: string[]): void {
    for (const id of ids) if (!this.sessionBlobs.has(id)) this.reusedBlobs.add(id);
  }

  /** Stores a blob unless the repository or this session already has it; returns its id. */
  async addBlob(type: BlobType, data: Uint8Array): Promise<string> {
    const id = this.repo.blobId(data);
    await this.addBlobWithId(id, type, data);
    return id;
  }

  private async addBlobWithId(id: string, type: BlobType, data: Uint8Array): Promise<void> {
    if (this.sessionBlobs.has(id)) return;
    if (this.repo.index.has(id)) {
      this.reusedBlobs.add(id);
      return;
    }
    if (this.pack && this.pack.plaintextBytes > 0 && this.pack.plaintextBytes + data.length > this.repo.config.packSize) {
      await this.flushPack();
    }
    if (!this.pack) this.pack = await this.takePackWriter();
    this.pack.add(id, type, data);
    this.sessionBlobs.add(id);
    this.newBytes += data.length;
    this.newBlobs++;
  }

  private takePackWriter(): Promise<PackWriter> {
    const p = this.nextPack ?? PackWriter.create(this.repo.recipients);
    // Header creation (public-key wrapping) is slow in JS: prepare the next one meanwhile.
    this.nextPack = PackWriter.create(this.repo.recipients);
    this.nextPack.catch(() => undefined);
    return p;
  }

  private async flushPack(): Promise<void> {
    const pack = this.pack;
    this.pack = undefined;
    if (!pack || pack.blobCount === 0) return;
    await this.uploader.upload(pack.finish());
    this.packsDone++;
    await this.opts.afterPack?.(this.packsDone);
  }

  /**
   * Reads, chunks and stores one file. Throws FileChangedError if the file's
   * size or mtime moved while it was read (a torn read must never be committed).
   */
  async storeFile(abs: string, rel: string, onBytes: (n: number) => void, signal?: AbortSignal): Promise<FileEntry> {
    let fh;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      throw new InputError(`cannot read ${abs}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
    }
    try {
      const before = await fh.stat({ bigint: true });
      const hash = createHash('sha256');
      const chunks: string[] = [];
      let read = 0;
      for await (const chunk of chunkFile(fh, this.chunker, { signal })) {
        hash.update(chunk);
        chunks.push(await this.addBlob('data', chunk));
        read += chunk.length;
        onBytes(chunk.length);
      }
      const after = await fh.stat({ bigint: true });
      if (BigInt(read) !== before.size || after.size !== before.size || after.mtimeNs !== before.mtimeNs || after.ctimeNs !== before.ctimeNs) {
        throw new FileChangedError(rel);
      }
      return {
        type: 'file',
        path: rel,
        mode: Number(before.mode) & 0o7777,
        mtimeNs: before.mtimeNs.toString(),
        size: read,
        sha256: hash.digest('hex'),
        chunks,
        ctimeNs: before.ctimeNs.toString(),
        inode: before.ino.toString(),
      };
    } finally {
      await fh.close();
    }
  }

  /**
   * A reused blob whose pack garbage collection condemned after this backup
   * loaded the index must be stored again, or the snapshot would reference
   * data that is about to be deleted. The pack still exists (the sweep waits
   * for this backup's lease), so its blobs are copied into a new pack.
   */
  async resurrectCondemned(): Promise<number> {
    const before = new Set(this.repo.condemnedPacks);
    await this.repo.loadIndex();
    const newlyCondemned = [...this.repo.condemnedPacks].filter((p) => !before.has(p));
    if (newlyCondemned.length === 0) return 0;
    const condemned = new Set(newlyCondemned);
    let n = 0;
    for (const id of this.reusedBlobs) {
      const loc = this.repo.index.lookup(id);
      if (loc && !condemned.has(loc.packId)) continue;
      // Not in the index any more: it was in a condemned pack. Read it from that pack.
      const { type, data } = await this.repo.readCondemnedBlob(id);
      this.reusedBlobs.delete(id);
      await this.addBlobWithId(id, type, data);
      n++;
    }
    return n;
  }

  async finish(): Promise<void> {
    await this.flushPack();
    await this.uploader.close();
  }

  get packsUploaded(): number {
    return this.uploader.packsUploaded;
  }
}

export async function backup(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
  const startedAt = new Date();
  const t0 = performance.now();
  const skipped: BackupResult['skipped'] = [];
  const progress: BackupProgress = { phase: 'scanning', filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0, bytesUploaded: 0, newBytes: 0 };
  let lastEmit = 0;
  const emit = (force = false) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!force && now - lastEmit < 250) return;
    lastEmit = now;
    opts.onProgress({ ...progress });
  };

  const items = await walkAsset(opts.root, skipped);
  // Sizes come from lstat so progress can show an ETA before reading starts.
  for (const it of items) {
    if (it.kind === 'file') {
      it.size = (await lstat(it.abs)).size;
      progress.bytesTotal += it.size;
      progress.filesTotal++;
    }
  }
  emit(true);

  const parentId = opts.parent === undefined ? await latestSnapshotOf(repo, opts.asset.name) : opts.parent;
  const parentFiles = new Map<string, FileEntry>();
  if (parentId) {
    const parent = await repo.loadSnapshot(parentId);
    for (const e of await repo.loadTree(parent)) if (e.type === 'file') parentFiles.set(e.path, e);
  }

  const lease = await Lease.acquire(repo.store, `backup of ${opts.asset.name}`);
  try {
    const session = new BackupSession(repo, {
      uploadConcurrency: opts.uploadConcurrency ?? 4,
      packsPerIndex: opts.packsPerIndex ?? 8,
      onUploaded: (n) => {
        progress.bytesUploaded += n;
        emit();
      },
      afterPack: opts.hooks?.afterPack,
    });
    progress.phase = 'reading';
    const entries: TreeEntry[] = [];
    const stats = { files: 0, dirs: 0, symlinks: 0, totalBytes: 0, readBytes: 0 };
    for (const it of items) {
      opts.signal?.throwIfAborted();
      const st = await lstat(it.abs, { bigint: true });
      if (it.kind === 'dir') {
        entries.push({ type: 'dir', path: it.rel, mode: Number(st.mode) & 0o7777, mtimeNs: st.mtimeNs.toString() });
        stats.dirs++;
      } else if (it.kind === 'symlink') {
        entries.push({ type: 'symlink', path: it.rel, target: await readlink(it.abs), mtimeNs: st.mtimeNs.toString() });
        stats.symlinks++;
      } else {
        const prev = parentFiles.get(it.rel);
        let entry: FileEntry | undefined;
        if (
          prev &&
          prev.size === Number(st.size) &&
          prev.mtimeNs === st.mtimeNs.toString() &&
          prev.ctimeNs === st.ctimeNs.toString() &&
          prev.inode === st.ino.toString() &&
          prev.chunks.every((c) => repo.index.has(c))
        ) {
          entry = { ...prev, mode: Number(st.mode) & 0o7777 };
          session.markReused(prev.chunks);
          progress.bytesDone += prev.size;
        } else {
          entry = await storeFileWithRetries(session, it, opts, (n) => {
            progress.bytesDone += n;
            stats.readBytes += n;
            progress.newBytes = session.newBytes;
            emit();
          });
        }
        entries.push(entry);
        stats.files++;
        stats.totalBytes += entry.size;
        progress.filesDone++;
        emit();
      }
    }

    // An empty asset still gets one (empty) tree blob, so every snapshot has a tree.
    const tree: string[] = [];
    let i = 0;
    do {
      tree.push(await session.addBlob('tree', encodeTreeBlob(entries.slice(i, i + TREE_BLOB_ENTRIES))));
      i += TREE_BLOB_ENTRIES;
    } while (i < entries.length);

    progress.phase = 'uploading';
    emit(true);
    await opts.hooks?.afterRead?.();
    await session.resurrectCondemned();
    await session.finish();

    progress.phase = 'committing';
    emit(true);
    await opts.hooks?.beforeCommit?.();
    lease.assertHeld();
    const body: ManifestBody = {
      format: 'lifeline-snapshot',
      version: 1,
      repositoryId: repo.id,
      asset: { ...opts.asset },
      labels: opts.labels ?? {},
      startedAt: startedAt.toISOString(),
      time: new Date().toISOString(),
      hostname: hostname(),
      parent: parentId ?? null,
      tree,
      stats: {
        ...stats,
        newBytes: session.newBytes,
        newBlobs: session.newBlobs,
        uploadedBytes: session.uploadedBytes,
        durationMs: Math.round(performance.now() - t0),
      },
    };
    const snapshotId = await repo.commitSnapshot(body);
    emit(true);
    return { snapshotId, stats: body.stats, parent: body.parent, skipped };
  } finally {
    await lease.release();
  }
}

async function storeFileWithRetries(
  session: BackupSession,
  it: WalkItem,
  opts: BackupOptions,
  onBytes: (n: number) => void,
): Promise<FileEntry> {
  const retries = opts.changedFileRetries ?? 2;
  for (let attempt = 0; ; attempt++) {
    let counted = 0;
    try {
      return await session.storeFile(it.abs, it.rel, (n) => {
        counted += n;
        onBytes(n);
      }, opts.signal);
    } catch (err) {
      if (!(err instanceof FileChangedError) || attempt >= retries) throw err;
      onBytes(-counted);
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
    }
  }
}

/** Newest snapshot of an asset, or null. */
export async function latestSnapshotOf(repo: Repository, asset: string): Promise<string | null> {
  const snaps = await repo.listSnapshots({ asset });
  return snaps.length > 0 ? snaps[snaps.length - 1]!.id : null;
}

