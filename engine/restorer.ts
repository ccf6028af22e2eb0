/**
 * Restore: the mirror of backup. store → unpack → decrypt → check → write.
 *
 * Every age chunk is authenticated, every blob checked against its keyed id
 * and every file against its SHA-256 before it is renamed into place. Nothing
 * is ever written outside the target: paths were validated with the tree, the
 * restorer refuses to descend through symlinks or files already present in the
 * target, and symlinks from the snapshot are created last.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, open, realpath, rename, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EngineError, InputError } from './errors';
import type { Repository } from './repository';
import type { DirEntry, FileEntry, SymlinkEntry, TreeEntry } from './tree';

export interface RestoreProgress {
  filesDone: number;
  filesTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface RestoreOptions {
  target: string;
  /** Restore only these paths (files, or folders with everything below them). */
  include?: string[];
  /** Parallel ranged reads from storage. */
  concurrency?: number;
  onProgress?: (p: RestoreProgress) => void;
  signal?: AbortSignal;
}

export interface RestoreFailure {
  path: string;
  reason: string;
}

export interface RestoreResult {
  snapshotId: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  durationMs: number;
}

export class RestoreIncompleteError extends EngineError {
  constructor(
    readonly failures: RestoreFailure[],
    readonly result: RestoreResult,
  ) {
    const shown = failures.slice(0, 5).map((f) => `${f.path}: ${f.reason}`).join('; ');
    super(`${failures.length} of ${result.files + failures.length} files could not be restored: ${shown}${failures.length > 5 ? '; …' : ''}`, true);
  }
}

/** Writes of one file allowed in flight at once. */
const MAX_PENDING_WRITES = 8;

/** Largest ranged read: adjacent blobs of one pack are fetched together up to this size. */
const MAX_READ = 8 * 1024 * 1024;

interface BlobRef {
  id: string;
  packId: string;
  offset: number;
  length: number;
}

interface Read {
  packId: string;
  offset: number;
  length: number;
  blobs: BlobRef[];
}

export async function restore(repo: Repository, snapshotId: string, opts: RestoreOptions): Promise<RestoreResult> {
  const t0 = performance.now();
  const manifest = await repo.loadSnapshot(snapshotId);
  const all = await repo.loadTree(manifest);
  const entries = selectEntries(all, opts.include);

  const files = entries.filter((e): e is FileEntry => e.type === 'file');
  const dirs = entries.filter((e): e is DirEntry => e.type === 'dir');
  const links = entries.filter((e): e is SymlinkEntry => e.type === 'symlink');
  const progress: RestoreProgress = { filesDone: 0, filesTotal: files.length, bytesDone: 0, bytesTotal: files.reduce((n, f) => n + f.size, 0) };

  // Fail before writing anything if any chunk is missing from the index.
  const missing = new Set<string>();
  for (const f of files) for (const c of f.chunks) if (!repo.index.has(c)) missing.add(f.path);
  if (missing.size > 0) {
    throw new InputError(`snapshot ${snapshotId} references data missing from the repository (${missing.size} files, e.g. ${[...missing][0]}); run a check, and restore an earlier snapshot`);
  }

  await mkdir(opts.target, { recursive: true });
  const root = await realpath(opts.target);
  const safeDirs = new Set<string>(['']);
  const ensureDir = async (rel: string): Promise<void> => {
    if (safeDirs.has(rel)) return;
    await ensureDir(parentOf(rel));
    const abs = join(root, rel);
    const st = await lstat(abs).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (st === null) await mkdir(abs, { mode: 0o700 });
    else if (st.isSymbolicLink()) throw new InputError(`refusing to restore through the existing symlink ${abs}`);
    else if (!st.isDirectory()) throw new InputError(`cannot restore folder ${abs}: a file is in the way`);
    safeDirs.add(rel);
  };

  for (const d of dirs) await ensureDir(d.path);

  const failures: RestoreFailure[] = [];
  const reads = planReads(repo, files);
  const blobs = blobsInOrder(readInOrder(repo, reads, opts.concurrency ?? 3, opts.signal));
  const nextBlob = async (): Promise<{ data: Buffer; done: () => void } | { error: string }> => {
    const r = await blobs.next();
    if (r.done) throw new Error('restore plan ended before the files did');
    return r.value;
  };

  let bytes = 0;
  for (const f of files) {
    opts.signal?.throwIfAborted();
    await ensureDir(parentOf(f.path));
    const final = join(root, f.path);
    const tmp = join(dirname(final), `.lifeline-restore-${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    const hash = createHash('sha256');
    let written = 0;
    let failed: string | undefined;
    // Writes at known offsets overlap with decrypting and hashing the next blobs.
    const writes: Array<Promise<unknown>> = [];
    try {
      for (let i = 0; i < f.chunks.length; i++) {
        const next = await nextBlob();
        if ('error' in next) {
          failed ??= next.error;
          continue;
        }
        if (failed !== undefined) {
          next.done();
          continue;
        }
        const blob = next.data;
        hash.update(blob);
        writes.push(fh.write(blob, 0, blob.length, written).finally(next.done));
        if (writes.length >= MAX_PENDING_WRITES) await writes.shift();
        written += blob.length;
        progress.bytesDone += blob.length;
        opts.onProgress?.({ ...progress });
      }
      await Promise.all(writes);
    } finally {
      await Promise.allSettled(writes);
      await fh.close();
    }
    if (failed === undefined) {
      const digest = hash.digest('hex');
      if (written !== f.size) failed = `size ${written} does not match the recorded ${f.size}`;
      else if (digest !== f.sha256) failed = 'SHA-256 does not match the snapshot (corrupt data)';
    }
    if (failed !== undefined) {
      await rm(tmp, { force: true });
      failures.push({ path: f.path, reason: failed });
      continue;
    }
    await chmod(tmp, f.mode & 0o7777);
    const mtime = nsToSeconds(f.mtimeNs);
    await utimes(tmp, mtime, mtime);
    const existing = await lstat(final).catch(() => null);
    if (existing?.isDirectory()) {
      await rm(tmp, { force: true });
      failures.push({ path: f.path, reason: 'a folder is in the way in the target' });
      continue;
    }
    // rename() replaces a file or symlink at `final` itself and never follows it.
    await rename(tmp, final);
    bytes += f.size;
    progress.filesDone++;
    opts.onProgress?.({ ...progress });
  }

  for (const l of links) {
    await ensureDir(parentOf(l.path));
    const abs = join(root, l.path);
    const existing = await lstat(abs).catch(() => null);
    if (existing?.isDirectory()) {
      failures.push({ path: l.path, reason: 'a folder is in the way in the target' });
      continue;
    }
    if (existing) await unlink(abs);
    await symlink(l.target, abs);
  }

  // Folder modes and times last, deepest first, since writing inside a folder changes its mtime.
  for (const d of [...dirs].reverse()) {
    const abs = join(root, d.path);
    await chmod(abs, d.mode & 0o7777);
    const mtime = nsToSeconds(d.mtimeNs);
    await utimes(abs, mtime, mtime);
  }

  const result: RestoreResult = {
    snapshotId: manifest.id,
    files: progress.filesDone,
    dirs: dirs.length,
    symlinks: links.length,
    bytes,
    durationMs: Math.round(performance.now() - t0),
  };
  if (failures.length > 0) throw new RestoreIncompleteError(failures, result);
  return result;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function nsToSeconds(ns: string): number {
  return Number(BigInt(ns) / 1000n) / 1e6;
}

/** Entries to restore for `include` (paths or folders), with the folders above them. */
export function selectEntries(entries: TreeEntry[], include: string[] | undefined): TreeEntry[] {
  if (!include || include.length === 0) return entries;
  const wanted = include.map((p) => p.replace(/^\.?\/+/, '').replace(/\/+$/, ''));
  const keep = new Set<string>();
  for (const e of entries) {
    if (wanted.some((w) => e.path === w || e.path.startsWith(`${w}/`))) {
      keep.add(e.path);
      for (let p = parentOf(e.path); p !== ''; p = parentOf(p)) keep.add(p);
    }
  }
  const unmatched = wanted.filter((w) => !entries.some((e) => e.path === w || e.path.startsWith(`${w}/`)));
  if (unmatched.length > 0) throw new InputError(`not in the snapshot: ${unmatched.map((u) => JSON.stringify(u)).join(', ')}`);
  return entries.filter((e) => keep.has(e.path));
}

/** Groups the chunks of the files, in order, into ranged reads of adjacent blobs. */
function planReads(repo: Repository, files: FileEntry[]): Read[] {
  const reads: Read[] = [];
  let cur: Read | undefined;
  for (const f of files) {
    for (const id of f.chunks) {
      const loc = repo.index.lookup(id)!;
      const ref: BlobRef = { id, packId: loc.packId, offset: loc.offset, length: loc.length };
      if (cur && cur.packId === ref.packId && cur.offset + cur.length === ref.offset && cur.length + ref.length <= MAX_READ) {
        cur.length += ref.length;
        cur.blobs.push(ref);
      } else {
        cur = { packId: ref.packId, offset: ref.offset, length: ref.length, blobs: [ref] };
        reads.push(cur);
      }
    }
  }
  return reads;
}

/** One outcome per blob: its bytes (call `done` once they are written), or why the read that held it failed. */
async function* blobsInOrder(reads: AsyncGenerator<ReadOutcome>): AsyncGenerator<{ data: Buffer; done: () => void } | { error: string }> {
  for await (const r of reads) {
    if (r.error !== undefined) {
      for (let i = 0; i < r.count; i++) yield { error: r.error };
      continue;
    }
    // The read's buffer goes back to the pool when every blob in it has been written.
    let left = r.blobs.length;
    const done = () => {
      if (--left === 0) r.release();
    };
    for (const data of r.blobs) yield { data, done };
  }
}

type ReadOutcome =
  | { blobs: Buffer[]; count: number; release: () => void; error?: undefined }
  | { blobs?: undefined; count: number; error: string };

/** Runs reads with bounded parallelism and yields their outcomes in plan order. */
async function* readInOrder(repo: Repository, reads: Read[], concurrency: number, signal?: AbortSignal): AsyncGenerator<ReadOutcome> {
  // Plaintext buffers are reused across reads: fresh memory page-faults far slower than decryption.
  const free: Buffer[] = [];
  const window: Array<Promise<ReadOutcome>> = [];
  let next = 0;
  const start = (r: Read): Promise<ReadOutcome> =>
    (async (): Promise<ReadOutcome> => {
      const buf = free.pop() ?? Buffer.allocUnsafeSlow(MAX_READ);
      const release = () => {
        if (free.length < concurrency + 2) free.push(buf);
      };
      try {
        const data = await repo.readPackRange(r.packId, r.offset, r.length, signal, r.length <= buf.length ? buf : undefined);
        // Each age chunk was authenticated while decrypting, and every file's SHA-256 is
        // checked before it is renamed into place, so blob ids need not be re-hashed here.
        const blobs = r.blobs.map((b) => data.subarray(b.offset - r.offset, b.offset - r.offset + b.length));
        return { blobs, count: r.blobs.length, release };
      } catch (err) {
        release();
        if (signal?.aborted) throw err;
        return { error: err instanceof Error ? err.message : String(err), count: r.blobs.length };
      }
    })();
  while (next < reads.length && window.length < concurrency) window.push(start(reads[next++]!));
  while (window.length > 0) {
    const outcome = await window.shift()!;
    if (next < reads.length) window.push(start(reads[next++]!));
    yield outcome;
  }
}
