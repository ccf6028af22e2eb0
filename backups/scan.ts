/**
 * The node-side plan of a backup: which entries of an asset are backed up
 * (checkpoint rules applied), how they are cut into bounded batches, and a
 * record of each entry's identity (size, mtime, ctime, inode) so that the
 * backup can prove, before it commits, that nothing changed while it ran.
 *
 * The list stays on the node, in a work file keyed by the backup id: it holds
 * plaintext file names and can be millions of entries long, so it never goes
 * into a workflow payload. Workflows carry only the backup id and counts.
 */
import { constants } from 'node:fs';
import { access, lstat, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { walkAsset, type WalkItem } from '../engine/archiver';
import type { ResolvedAsset } from './asset';

export interface Identity {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

export interface ScanItem extends Identity {
  rel: string;
  kind: WalkItem['kind'];
}

export interface Scan {
  asset: string;
  backupId: string;
  root: string;
  /** the asset is a single file: its only item is the root itself */
  rootIsFile: boolean;
  createdAt: string;
  /** identity of the completion marker when the asset uses completion: marker */
  marker: Identity | null;
  items: ScanItem[];
  /** [start, end) item ranges, in order */
  batches: Array<[number, number]>;
}

export interface ScanProblems {
  /** entries that are neither file, folder nor symlink (sockets, devices …) */
  skipped: Array<{ path: string; reason: string }>;
  /** files the node agent may not read */
  unreadable: Array<{ path: string; code: string }>;
  /** entries left out by the checkpoint's temporaryPattern (and everything below them) */
  excluded: number;
}

export interface BatchLimits {
  /** entries per batch activity */
  maxEntries: number;
  /** bytes of file content per batch activity (a larger single file gets a batch of its own) */
  maxBytes: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = { maxEntries: 5000, maxBytes: 4 * 1024 ** 3 };

/** Within a batch, content is processed in slices of at most this many bytes, each ending in durable tree blobs (resume points). */
export const SLICE_BYTES = 512 * 1024 ** 2;

export function identityOf(st: { size: bigint; mtimeNs: bigint; ctimeNs: bigint; ino: bigint }): Identity {
  return { size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString(), ino: st.ino.toString() };
}

export function sameIdentity(a: Identity, b: Identity): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino;
}

/** True when any segment of the relative path is a temporary name (so a temporary folder hides everything below it). */
export function isTemporary(rel: string, pattern: RegExp | undefined): boolean {
  if (!pattern) return false;
  return rel.split('/').some((seg) => pattern.test(seg));
}

export type CheckpointReadiness = { ready: true; marker: Identity | null } | { ready: false; reason: string; firstPath?: string };

/** Marker mode: the marker must exist. Other modes are always ready (rename mode relies on the exclusions). */
export async function markerState(asset: ResolvedAsset): Promise<CheckpointReadiness> {
  const cp = asset.checkpoint;
  if (!cp || cp.completion !== 'marker') return { ready: true, marker: null };
  try {
    const st = await lstat(join(asset.root, cp.marker), { bigint: true });
    if (!st.isFile()) return { ready: false, reason: `the completion marker ${cp.marker} is not a regular file` };
    return { ready: true, marker: identityOf(st) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      // The asset folder itself may be missing: let the scan report that clearly.
      const rootThere = await stat(asset.root).then(
        () => true,
        () => false,
      );
      if (!rootThere) return { ready: true, marker: null };
      return { ready: false, reason: `the completion marker ${cp.marker} does not exist yet` };
    }
    throw err;
  }
}

/**
 * Walks the asset and records every entry's identity. Entries matching the
 * checkpoint's temporary pattern are left out, as is everything below them.
 */
export async function scanEntries(asset: ResolvedAsset, signal?: AbortSignal, onEntry?: (n: number) => void): Promise<{ items: ScanItem[]; rootIsFile: boolean; problems: ScanProblems }> {
  let skipped: ScanProblems['skipped'] = [];
  let walked: WalkItem[] = [];
  for (let attempt = 1; ; attempt++) {
    skipped = [];
    try {
      walked = await walkAsset(asset.root, skipped);
      break;
    } catch (err) {
      // A folder renamed or removed while we listed it (rename-mode checkpoints do exactly
      // that): list again. A missing root is not a race and is reported as it is.
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      const rootThere = await stat(asset.root).then(() => true, () => false);
      if (code !== 'ENOENT' || !rootThere || attempt >= 5) throw err;
      signal?.throwIfAborted();
    }
  }
  const rootIsFile = walked.length === 1 && walked[0]!.abs === asset.root;
  const temporary = asset.checkpoint?.temporary;
  const items: ScanItem[] = [];
  const unreadable: ScanProblems['unreadable'] = [];
  let excluded = 0;
  let n = 0;
  for (const w of walked) {
    if (++n % 1000 === 0) {
      signal?.throwIfAborted();
      onEntry?.(n);
    }
    if (!rootIsFile && isTemporary(w.rel, temporary)) {
      excluded++;
      continue;
    }
    let st;
    try {
      st = await lstat(w.abs, { bigint: true });
    } catch (err) {
      // Removed between listing and lstat: a temporary file that was renamed or deleted.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    if (w.kind === 'file') {
      try {
        await access(w.abs, constants.R_OK);
      } catch (err) {
        unreadable.push({ path: w.rel, code: (err as NodeJS.ErrnoException).code ?? 'EACCES' });
      }
    }
    items.push({ rel: w.rel, kind: w.kind, ...identityOf(st) });
  }
  return { items, rootIsFile, problems: { skipped, unreadable, excluded } };
}

/** Marker mode: files written after the marker belong to a checkpoint still being written. */
export function newerThanMarker(items: ScanItem[], marker: Identity, markerRel: string): ScanItem[] {
  const m = BigInt(marker.mtimeNs);
  return items.filter((it) => it.kind === 'file' && it.rel !== markerRel && BigInt(it.mtimeNs) > m);
}

/** Cuts the entries, in tree order, into contiguous batches bounded by entry count and bytes. */
export function planBatches(items: Array<{ kind: string; size: number }>, limits: BatchLimits): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    const size = items[i]!.kind === 'file' ? items[i]!.size : 0;
    if (i > start && (i - start >= limits.maxEntries || bytes + size > limits.maxBytes)) {
      out.push([start, i]);
      start = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (items.length > start) out.push([start, items.length]);
  return out;
}

/** Batches of a backup: never none, so that even an empty asset gets its (empty) tree blob from a batch. */
export function planBackupBatches(items: Array<{ kind: string; size: number }>, limits: BatchLimits): Array<[number, number]> {
  const batches = planBatches(items, limits);
  return batches.length > 0 ? batches : [[0, 0]];
}

/** Slices of a batch for resumable processing: by bytes only (a batch's entry count is already bounded). */
export function planSlices(items: Array<{ kind: string; size: number }>, sliceBytes = SLICE_BYTES): Array<[number, number]> {
  return planBatches(items, { maxEntries: Number.MAX_SAFE_INTEGER, maxBytes: sliceBytes });
}

export function walkItemOf(scan: Pick<Scan, 'root' | 'rootIsFile'>, it: ScanItem): WalkItem {
  return { rel: it.rel, abs: scan.rootIsFile ? scan.root : join(scan.root, it.rel), kind: it.kind, size: it.size };
}

/** Entries whose identity differs from the scan (or that are gone): the asset changed while it was backed up. */
export async function changedSince(scan: Scan, signal?: AbortSignal): Promise<Array<{ path: string; what: string }>> {
  const changed: Array<{ path: string; what: string }> = [];
  let n = 0;
  for (const it of scan.items) {
    // A folder's mtime moves whenever a temporary file appears in it; its content is checked entry by entry.
    if (it.kind === 'dir') continue;
    if (++n % 1000 === 0) signal?.throwIfAborted();
    const abs = walkItemOf(scan, it).abs;
    try {
      const now = identityOf(await lstat(abs, { bigint: true }));
      if (!sameIdentity(now, it)) changed.push({ path: it.rel, what: now.size !== it.size ? 'size changed' : now.ino !== it.ino ? 'replaced' : 'modified' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') changed.push({ path: it.rel, what: 'removed' });
      else throw err;
    }
  }
  return changed;
}

// ---- work files ---------------------------------------------------------------

type PackedItem = [string, 'f' | 'd' | 'l', number, string, string, string];
const KIND_CODE = { file: 'f', dir: 'd', symlink: 'l' } as const;
const CODE_KIND = { f: 'file', d: 'dir', l: 'symlink' } as const;

/**
 * Scan lists on the node's disk, one file per backup id (`scan-<backupId>.json`,
 * owner-only). Survives a node agent restart; a later scan prunes old ones.
 */
export class ScanStore {
  private cached: { backupId: string; scan: Scan } | undefined;

  constructor(readonly dir: string) {}

  path(backupId: string): string {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(backupId)) throw new TypeError(`invalid backup id ${JSON.stringify(backupId)}`);
    return join(this.dir, `scan-${backupId}.json`);
  }

  async write(scan: Scan): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const packed = {
      format: 'lifeline-scan',
      version: 1,
      asset: scan.asset,
      backupId: scan.backupId,
      root: scan.root,
      rootIsFile: scan.rootIsFile,
      createdAt: scan.createdAt,
      marker: scan.marker,
      batches: scan.batches,
      items: scan.items.map((it): PackedItem => [it.rel, KIND_CODE[it.kind], it.size, it.mtimeNs, it.ctimeNs, it.ino]),
    };
    const file = this.path(scan.backupId);
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(packed), { mode: 0o600 });
    await rename(tmp, file);
    this.cached = { backupId: scan.backupId, scan };
  }

  /** The scan of a backup, or null when this node has no such work file (lost disk, other node). */
  async read(backupId: string): Promise<Scan | null> {
    if (this.cached?.backupId === backupId) return this.cached.scan;
    let text: string;
    try {
      text = await readFile(this.path(backupId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const p = JSON.parse(text) as Omit<Scan, 'items'> & { format: string; version: number; items: PackedItem[] };
    if (p.format !== 'lifeline-scan' || p.version !== 1) return null;
    const scan: Scan = {
      asset: p.asset,
      backupId: p.backupId,
      root: p.root,
      rootIsFile: p.rootIsFile,
      createdAt: p.createdAt,
      marker: p.marker,
      batches: p.batches,
      items: p.items.map(([rel, k, size, mtimeNs, ctimeNs, ino]) => ({ rel, kind: CODE_KIND[k], size, mtimeNs, ctimeNs, ino })),
    };
    this.cached = { backupId, scan };
    return scan;
  }

  async remove(backupId: string): Promise<void> {
    if (this.cached?.backupId === backupId) this.cached = undefined;
    await rm(this.path(backupId), { force: true });
  }

  /** Deletes work files older than `maxAgeMs` (backups abandoned without cleanup). */
  async prune(maxAgeMs: number): Promise<number> {
    let removed = 0;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return 0;
    }
    for (const name of names) {
      if (!/^(scan-|report-)/.test(name)) continue;
      const st = await stat(join(this.dir, name)).catch(() => null);
      if (st && Date.now() - st.mtimeMs > maxAgeMs) {
        await rm(join(this.dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Writes a node-local report (e.g. the full list of failed paths) and returns its path. */
  async writeReport(name: string, content: unknown): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = join(this.dir, `report-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);
    await writeFile(file, JSON.stringify(content, null, 2), { mode: 0o600 });
    return file;
  }
}
