/**
 * The file tree of a snapshot: one entry per file, folder or symlink, with
 * paths relative to the asset root. Trees are stored as "tree" blobs in JSON
 * Lines (one entry per line, sorted by path) so a person can read them with
 * standard tools during a break-glass recovery (FORMAT.md).
 */
import { posix } from 'node:path';
import { IntegrityError } from './errors';

export interface FileEntry {
  type: 'file';
  path: string;
  mode: number;
  /** modification time, nanoseconds since the epoch, as a decimal string */
  mtimeNs: string;
  size: number;
  /** plaintext SHA-256 of the whole file, hex */
  sha256: string;
  /** blob ids of the file's content chunks, in order */
  chunks: string[];
  /** change-detection fields: a later backup skips reading the file when size, mtime, ctime and inode match */
  ctimeNs?: string;
  inode?: string;
}

export interface DirEntry {
  type: 'dir';
  path: string;
  mode: number;
  mtimeNs: string;
}

export interface SymlinkEntry {
  type: 'symlink';
  path: string;
  target: string;
  mtimeNs: string;
}

export type TreeEntry = FileEntry | DirEntry | SymlinkEntry;

/** Entries per tree blob: bounds the size of one blob (≈ 2–3 MB) and of one backup batch. */
export const TREE_BLOB_ENTRIES = 10_000;

export function encodeTreeBlob(entries: TreeEntry[]): Buffer {
  return Buffer.from(entries.map((e) => JSON.stringify(e)).join('\n') + '\n', 'utf8');
}

export function decodeTreeBlob(data: Buffer, where: string): TreeEntry[] {
  const text = data.toString('utf8');
  const lines = text.split('\n');
  const out: TreeEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new IntegrityError(`${where}: line ${i + 1} is not valid JSON`);
    }
    out.push(parseTreeEntry(raw, `${where}: line ${i + 1}`));
  }
  return out;
}

const isNs = (v: unknown): v is string => typeof v === 'string' && /^-?\d{1,25}$/.test(v);
const isHex = (v: unknown, len: number): v is string => typeof v === 'string' && v.length === len && /^[0-9a-f]+$/.test(v);

function parseTreeEntry(raw: unknown, where: string): TreeEntry {
  if (typeof raw !== 'object' || raw === null) throw new IntegrityError(`${where}: expected an object`);
  const e = raw as Record<string, unknown>;
  const path = e.path;
  if (typeof path !== 'string') throw new IntegrityError(`${where}: missing "path"`);
  assertSafeRelativePath(path, where);
  if (!isNs(e.mtimeNs)) throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad "mtimeNs"`);
  switch (e.type) {
    case 'file': {
      if (!Number.isSafeInteger(e.size) || (e.size as number) < 0) throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad "size"`);
      if (!Number.isInteger(e.mode)) throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad "mode"`);
      if (!isHex(e.sha256, 64)) throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad "sha256"`);
      if (!Array.isArray(e.chunks) || !e.chunks.every((c) => isHex(c, 64))) {
        throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad "chunks" list`);
      }
      if ((e.size as number) === 0 && e.chunks.length !== 0) throw new IntegrityError(`${where}: ${JSON.stringify(path)} is empty but lists chunks`);
      const entry: FileEntry = {
        type: 'file',
        path,
        mode: e.mode as number,
        mtimeNs: e.mtimeNs,
        size: e.size as number,
        sha256: e.sha256,
        chunks: e.chunks as string[],
      };
      if (isNs(e.ctimeNs)) entry.ctimeNs = e.ctimeNs;
      if (typeof e.inode === 'string') entry.inode = e.inode;
      return entry;
    }
    case 'dir':
      if (!Number.isInteger(e.mode)) throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad "mode"`);
      return { type: 'dir', path, mode: e.mode as number, mtimeNs: e.mtimeNs };
    case 'symlink':
      if (typeof e.target !== 'string' || e.target === '' || e.target.includes('\0')) {
        throw new IntegrityError(`${where}: ${JSON.stringify(path)} has a bad symlink "target"`);
      }
      return { type: 'symlink', path, target: e.target, mtimeNs: e.mtimeNs };
    default:
      throw new IntegrityError(`${where}: ${JSON.stringify(path)} has unknown type ${JSON.stringify(e.type)}`);
  }
}

/**
 * A path from a manifest may only name something inside the restore root:
 * relative, normalised, no `..` or `.` segments, no empty segments, no NUL.
 */
export function assertSafeRelativePath(path: string, where: string): void {
  const bad = (why: string) => new IntegrityError(`${where}: unsafe path ${JSON.stringify(path)}: ${why}`);
  if (path === '' || path.includes('\0')) throw bad('empty or contains NUL');
  if (path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path) || path.startsWith('\\')) throw bad('absolute path');
  if (path.includes('\\')) throw bad('backslash in path');
  for (const seg of path.split('/')) {
    if (seg === '..') throw bad('escapes the restore root with ".."');
    if (seg === '' || seg === '.') throw bad('not normalised');
  }
  if (posix.normalize(path) !== path) throw bad('not normalised');
}

/**
 * Checks a whole tree before anything is restored: sorted, unique paths, every
 * parent present as a folder, and no entry placed below a symlink (which would
 * make the restorer write through the link to wherever it points).
 */
export function validateTree(entries: TreeEntry[], where: string): void {
  const kinds = new Map<string, TreeEntry['type']>();
  let prev = '';
  for (const e of entries) {
    if (prev !== '' && compareTreePaths(prev, e.path) >= 0) {
      throw new IntegrityError(`${where}: entries are not sorted or repeat ${JSON.stringify(e.path)}`);
    }
    prev = e.path;
    const parent = posix.dirname(e.path);
    if (parent !== '.') {
      // Walk up: any ancestor that is a symlink is an attack; a missing parent folder is damage.
      let p = parent;
      while (p !== '.') {
        const k = kinds.get(p);
        if (k === 'symlink') throw new IntegrityError(`${where}: ${JSON.stringify(e.path)} lies below the symlink ${JSON.stringify(p)}; restoring it would write through the link`);
        if (k === undefined || k === 'file') throw new IntegrityError(`${where}: ${JSON.stringify(e.path)} has no parent folder ${JSON.stringify(p)} in the tree`);
        p = posix.dirname(p);
      }
    }
    kinds.set(e.path, e.type);
  }
}

/** Order used for trees: by path segments, so a folder's contents follow it directly. */
export function compareTreePaths(a: string, b: string): number {
  const as = a.split('/');
  const bs = b.split('/');
  const n = Math.min(as.length, bs.length);
  for (let i = 0; i < n; i++) {
    const x = as[i]!;
    const y = bs[i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  return as.length - bs.length;
}
