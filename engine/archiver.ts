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
import pLimit from 'p-limit';
import { FileChangedError, InputError, RepositoryStateError } from './errors';
import type { BlobType } from './index';
import type { AssetKind, ManifestBody, SnapshotStats } from './manifest';
import { PackUploader, PackWriter } from './packer';
import { keys, type Repository } from './repository';
import { Lease } from './leases';
import { compareTreePaths, decodeTreeBlob, encodeTreeBlob, TREE_BLOB_ENTRIES, type FileEntry, type TreeEntry } from './tree';

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

export interface WalkItem {
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
      { putPack: (id, body, sha256) => repo.putPack(id, body, sha256), putIndex: (packs) => repo.writeIndex(packs) },
      { concurrency: opts.uploadConcurrency, packsPerIndex: opts.packsPerIndex, onUploaded: opts.onUploaded },
    );
    this.chunker = new Chunker(repo.config.chunker, gearTable(repo.chunkerSeed));
  }

  get uploadedBytes(): number {
    return this.uploader.uploadedBytes;
  }

  /** Stores a blob unless the repository or this session already has it; returns its id. */
  async addBlob(type: BlobType, data: Uint8Array): Promise<string> {
    const id = this.repo.blobId(data);
    await this.addBlobWithId(id, type, data);
    return id;
  }

  has(id: string): boolean {
    return this.sessionBlobs.has(id);
  }

  async addBlobWithId(id: string, type: BlobType, data: Uint8Array): Promise<void> {
    if (this.sessionBlobs.has(id)) return;
    if (this.repo.index.has(id)) return;
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
    const p = this.nextPack ?? PackWriter.create(this.repo.recipients, this.repo.packBuffers);
    // Header creation (public-key wrapping) is slow in JS: prepare the next one meanwhile.
    this.nextPack = PackWriter.create(this.repo.recipients, this.repo.packBuffers);
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

  async finish(): Promise<void> {
    await this.flushPack();
    await this.uploader.close();
  }

  get packsUploaded(): number {
    return this.uploader.packsUploaded;
  }
}

/** What a backup needs to carry between processes: ids and times only. */
export interface BackupPlan {
  backupId: string;
  startedAt: string;
  parentId: string | null;
  asset: AssetRef;
  labels: Record<string, string>;
}

export interface BatchStats {
  files: number;
  dirs: number;
  symlinks: number;
  totalBytes: number;
  readBytes: number;
  newBytes: number;
  newBlobs: number;
  uploadedBytes: number;
}

export interface BatchResult {
  /** tree blob ids of this batch's entries, in order */
  tree: string[];
  stats: BatchStats;
}

export const emptyBatchStats = (): BatchStats => ({ files: 0, dirs: 0, symlinks: 0, totalBytes: 0, readBytes: 0, newBytes: 0, newBlobs: 0, uploadedBytes: 0 });

export function addBatchStats(a: BatchStats, b: BatchStats): BatchStats {
  const out = { ...a };
  for (const k of Object.keys(out) as Array<keyof BatchStats>) out[k] += b[k];
  return out;
}

/**
 * Starts a backup: picks the parent snapshot and takes the backup's lease,
 * which keeps garbage collection from deleting packs the backup may reuse.
 */
export async function beginBackup(
  repo: Repository,
  opts: { asset: AssetRef; labels?: Record<string, string>; parent?: string | null; backupId?: string },
): Promise<{ plan: BackupPlan; lease: Lease }> {
  // The lease first: collection that starts after it will not delete what this backup may reuse.
  const lease = await Lease.acquire(repo.store, `backup of ${opts.asset.name}`, { id: opts.backupId });
  // Then a fresh view of the index, so nothing collected before the lease is reused.
  await repo.loadIndex();
  const parentId = opts.parent === undefined ? await latestSnapshotOf(repo, opts.asset.name) : opts.parent;
  return {
    plan: { backupId: lease.record.id, startedAt: lease.record.startedAt, parentId, asset: { ...opts.asset }, labels: opts.labels ?? {} },
    lease,
  };
}

/** Files of the parent snapshot by path, to skip re-reading unchanged files. */
export async function loadParentFiles(repo: Repository, parentId: string | null): Promise<Map<string, FileEntry>> {
  const files = new Map<string, FileEntry>();
  if (!parentId) return files;
  for (const e of await repo.loadTree(await repo.loadSnapshot(parentId))) if (e.type === 'file') files.set(e.path, e);
  return files;
}

/** Sizes from lstat, so progress can show an ETA before reading starts. */
export async function sizeItems(items: WalkItem[]): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const it of items) {
    if (it.kind !== 'file') continue;
    it.size = (await lstat(it.abs)).size;
    files++;
    bytes += it.size;
  }
  return { files, bytes };
}

export interface BatchOptions {
  items: WalkItem[];
  parentFiles: Map<string, FileEntry>;
  uploadConcurrency?: number;
  packsPerIndex?: number;
  changedFileRetries?: number;
  signal?: AbortSignal;
  /** called with byte and file deltas as work is done */
  onWork?: (w: { bytes: number; files: number; uploaded: number }) => void;
  hooks?: BackupOptions['hooks'];
}

/**
 * Backs up a slice of an asset's entries: stores new chunks and the slice's
 * tree blob(s), and returns only ids and counts. Every pack and index it wrote
 * is durable when it returns, so a later process can commit.
 */
export async function backupBatch(repo: Repository, opts: BatchOptions): Promise<BatchResult> {
  // A long-lived process may hold an old index: refresh it before deciding what is already stored.
  await repo.loadIndex();
  const session = new BackupSession(repo, {
    uploadConcurrency: opts.uploadConcurrency ?? 3,
    packsPerIndex: opts.packsPerIndex ?? 1,
    onUploaded: (n) => opts.onWork?.({ bytes: 0, files: 0, uploaded: n }),
    afterPack: opts.hooks?.afterPack,
  });
  const entries: TreeEntry[] = [];
  const stats = emptyBatchStats();
  for (const it of opts.items) {
    opts.signal?.throwIfAborted();
    let st;
    try {
      st = await lstat(it.abs, { bigint: true });
    } catch (err) {
      throw new InputError(`cannot read ${it.abs}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (it was removed during the backup?)`, { cause: err });
    }
    if (it.kind === 'dir') {
      entries.push({ type: 'dir', path: it.rel, mode: Number(st.mode) & 0o7777, mtimeNs: st.mtimeNs.toString() });
      stats.dirs++;
      continue;
    }
    if (it.kind === 'symlink') {
      entries.push({ type: 'symlink', path: it.rel, target: await readlink(it.abs), mtimeNs: st.mtimeNs.toString() });
      stats.symlinks++;
      continue;
    }
    const prev = opts.parentFiles.get(it.rel);
    let entry: FileEntry;
    if (
      prev &&
      prev.size === Number(st.size) &&
      prev.mtimeNs === st.mtimeNs.toString() &&
      prev.ctimeNs === st.ctimeNs.toString() &&
      prev.inode === st.ino.toString() &&
      prev.chunks.every((c) => repo.index.has(c))
    ) {
      entry = { ...prev, mode: Number(st.mode) & 0o7777 };
      opts.onWork?.({ bytes: prev.size, files: 0, uploaded: 0 });
    } else {
      entry = await storeFileWithRetries(session, it, opts, (n) => {
        stats.readBytes += n;
        opts.onWork?.({ bytes: n, files: 0, uploaded: 0 });
      });
    }
    entries.push(entry);
    stats.files++;
    stats.totalBytes += entry.size;
    opts.onWork?.({ bytes: 0, files: 1, uploaded: 0 });
  }
  const tree: string[] = [];
  for (let i = 0; i < entries.length; i += TREE_BLOB_ENTRIES) {
    tree.push(await session.addBlob('tree', encodeTreeBlob(entries.slice(i, i + TREE_BLOB_ENTRIES))));
  }
  await opts.hooks?.afterRead?.();
  await session.finish();
  stats.newBytes = session.newBytes;
  stats.newBlobs = session.newBlobs;
  stats.uploadedBytes = session.uploadedBytes;
  return { tree, stats };
}

/**
 * Commits a backup: makes sure every blob the snapshot references is stored
 * in a live pack (copying blobs out of packs that garbage collection condemned
 * meanwhile), that those packs exist, that the lease is held, and then writes
 * the signed manifest — the commit point.
 */
export async function commitBackup(
  repo: Repository,
  plan: BackupPlan,
  lease: Lease,
  opts: { tree: string[]; stats: BatchStats; durationMs: number; hooks?: BackupOptions['hooks'] },
): Promise<BackupResult> {
  // Every snapshot has at least one tree blob, even an empty asset.
  const session = new BackupSession(repo, { uploadConcurrency: 2, packsPerIndex: 1 });
  let tree = opts.tree;
  if (tree.length === 0) {
    tree = [await session.addBlob('tree', encodeTreeBlob([]))];
    // Make it durable and indexed before the liveness check looks it up.
    await session.finish();
  }
  await ensureReferencedLive(repo, session, tree);
  await opts.hooks?.beforeCommit?.();
  lease.assertHeld();
  const body: ManifestBody = {
    format: 'lifeline-snapshot',
    version: 1,
    repositoryId: repo.id,
    asset: { ...plan.asset },
    labels: plan.labels,
    startedAt: plan.startedAt,
    time: new Date().toISOString(),
    hostname: hostname(),
    parent: plan.parentId,
    tree,
    stats: {
      files: opts.stats.files,
      dirs: opts.stats.dirs,
      symlinks: opts.stats.symlinks,
      totalBytes: opts.stats.totalBytes,
      readBytes: opts.stats.readBytes,
      newBytes: opts.stats.newBytes + session.newBytes,
      newBlobs: opts.stats.newBlobs + session.newBlobs,
      uploadedBytes: opts.stats.uploadedBytes + session.uploadedBytes,
      durationMs: Math.round(opts.durationMs),
    },
  };
  const snapshotId = await repo.commitSnapshot(body);
  await lease.release();
  return { snapshotId, stats: body.stats, parent: body.parent, skipped: [] };
}

/** See commitBackup. Reads the tree blobs to learn every referenced chunk. */
async function ensureReferencedLive(repo: Repository, session: BackupSession, tree: string[]): Promise<void> {
  await repo.loadIndex();
  const packs = new Set<string>();
  const resolve = async (blobId: string): Promise<Buffer | undefined> => {
    const loc = repo.index.lookup(blobId);
    if (loc) {
      packs.add(loc.packId);
      return undefined;
    }
    const { type, data } = await repo.readCondemnedBlob(blobId);
    await session.addBlobWithId(blobId, type, data);
    return data;
  };
  for (const treeId of tree) {
    const copied = await resolve(treeId);
    const data = copied ?? (await repo.readBlob(treeId));
    for (const e of decodeTreeBlob(data, `tree blob ${treeId}`)) {
      if (e.type === 'file') for (const c of e.chunks) if (!session.has(c)) await resolve(c);
    }
  }
  await session.finish();
  const missing = await missingPacks(repo, packs);
  if (missing.length > 0) {
    throw new RepositoryStateError(
      `${missing.length} pack(s) this backup reuses were deleted while it ran (e.g. ${missing[0]}; its lease lapsed?); not committing — run the backup again`,
      false,
    );
  }
}

/** Packs of `packs` that are not in storage: HEAD requests for a few, one listing for many. */
async function missingPacks(repo: Repository, packs: Set<string>): Promise<string[]> {
  if (packs.size > 64) {
    const present = new Set<string>();
    for await (const obj of repo.store.list('data/')) present.add(obj.key.slice(obj.key.lastIndexOf('/') + 1));
    return [...packs].filter((p) => !present.has(p));
  }
  const limit = pLimit(16);
  const missing: string[] = [];
  await Promise.all(
    [...packs].map((p) =>
      limit(async () => {
        if (!(await repo.store.head(keys.pack(p)))) missing.push(p);
      }),
    ),
  );
  return missing;
}

/** Backs up a whole asset in one process: scan, read, commit. */
export async function backup(repo: Repository, opts: BackupOptions): Promise<BackupResult> {
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
  const sized = await sizeItems(items);
  progress.filesTotal = sized.files;
  progress.bytesTotal = sized.bytes;
  emit(true);

  const { plan, lease } = await beginBackup(repo, opts);
  try {
    const parentFiles = await loadParentFiles(repo, plan.parentId);
    progress.phase = 'reading';
    const batch = await backupBatch(repo, {
      items,
      parentFiles,
      uploadConcurrency: opts.uploadConcurrency,
      packsPerIndex: opts.packsPerIndex,
      changedFileRetries: opts.changedFileRetries,
      signal: opts.signal,
      hooks: opts.hooks,
      onWork: (w) => {
        progress.bytesDone += w.bytes;
        progress.filesDone += w.files;
        progress.bytesUploaded += w.uploaded;
        emit();
      },
    });
    progress.phase = 'committing';
    emit(true);
    const result = await commitBackup(repo, plan, lease, { tree: batch.tree, stats: batch.stats, durationMs: performance.now() - t0, hooks: opts.hooks });
    emit(true);
    return { ...result, skipped };
  } finally {
    await lease.release();
  }
}

async function storeFileWithRetries(
  session: BackupSession,
  it: WalkItem,
  opts: { changedFileRetries?: number; signal?: AbortSignal },
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

