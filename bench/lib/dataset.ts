/**
 * The bench's source data: incompressible (random) bytes laid out like an AI
 * platform's assets — a checkpoint of a few large files plus thousands of
 * small dataset files in nested folders — and two single large files (for
 * the encryption and memory cases). Generated once and cached; a later run
 * reuses every file whose size is right and regenerates the rest.
 *
 *   <base>/<mode>/dataset/checkpoints/step-020000/model-0000N-of-0000M.safetensors
 *   <base>/<mode>/dataset/checkpoints/step-020000/optimizer.pt   (the incremental case rewrites 1 MiB of it)
 *   <base>/<mode>/dataset/datasets/train/shard-SS/group-G/sample-NNNNN.bin
 *   <base>/<mode>/encrypt/plain.bin
 *   <base>/<mode>/rss/blob.bin
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BenchMode } from './report';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

export interface DataFile {
  /** path relative to its root, '/'-separated */
  rel: string;
  bytes: number;
}

export interface DatasetSpec {
  mode: BenchMode;
  base: string;
  /** the data set backed up and restored by every contender */
  datasetDir: string;
  files: DataFile[];
  totalBytes: number;
  largeFiles: number;
  smallFiles: number;
  smallBytes: number;
  /** the file whose middle 1 MiB the incremental case rewrites */
  changeFile: DataFile;
  encryptFile: { path: string; bytes: number };
  rssDir: string;
  rssFile: { path: string; rel: string; bytes: number };
}

/** Deterministic PRNG (mulberry32): the same small-file sizes on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function datasetSpec(mode: BenchMode, baseDir: string): DatasetSpec {
  const base = join(baseDir, mode);
  const q = mode === 'quick';
  const shards = q ? 1 : 3;
  const shardBytes = q ? 64 * MiB : 512 * MiB;
  const changeBytes = q ? 128 * MiB : 1 * GiB;
  const smallCount = q ? 500 : 5000;
  const files: DataFile[] = [];
  const ckpt = 'checkpoints/step-020000';
  for (let i = 1; i <= shards; i++) {
    files.push({ rel: `${ckpt}/model-${String(i).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`, bytes: shardBytes });
  }
  const changeFile = { rel: `${ckpt}/optimizer.pt`, bytes: changeBytes };
  files.push(changeFile);
  const rand = prng(20_000);
  let smallBytes = 0;
  for (let i = 0; i < smallCount; i++) {
    const bytes = 20 * KiB + Math.floor(rand() * (180 * KiB + 1));
    const shard = String(Math.floor(i / 500)).padStart(2, '0');
    const group = Math.floor(i / 100) % 5;
    files.push({ rel: `datasets/train/shard-${shard}/group-${group}/sample-${String(i).padStart(5, '0')}.bin`, bytes });
    smallBytes += bytes;
  }
  const totalBytes = files.reduce((n, f) => n + f.bytes, 0);
  return {
    mode,
    base,
    datasetDir: join(base, 'dataset'),
    files,
    totalBytes,
    largeFiles: shards + 1,
    smallFiles: smallCount,
    smallBytes,
    changeFile,
    encryptFile: { path: join(base, 'encrypt', 'plain.bin'), bytes: q ? 256 * MiB : 1 * GiB },
    rssDir: join(base, 'rss'),
    rssFile: { path: join(base, 'rss', 'blob.bin'), rel: 'blob.bin', bytes: q ? 256 * MiB : 4 * GiB },
  };
}

/** Every regular file under root, relative '/'-paths, sorted. */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, rel: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && rel === '') return;
      throw err;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) visit(join(dir, e.name), r);
      else out.push(r);
    }
  };
  visit(root, '');
  return out.sort();
}

const sizeOf = (p: string): number | null => {
  try {
    const st = statSync(p);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
};

/** Writes `bytes` random bytes to `path` from one reused buffer. */
async function writeRandomFile(path: string, bytes: number, buf: Buffer, onBytes: (n: number) => void): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const fd = openSync(path, 'w', 0o644);
  try {
    let done = 0;
    while (done < bytes) {
      const n = Math.min(buf.length, bytes - done);
      randomFillSync(buf, 0, n);
      let off = 0;
      while (off < n) off += writeSync(fd, buf, off, n - off, done + off);
      done += n;
      onBytes(n);
      // Let signal handlers run during long generations (a torn file has the wrong size and is regenerated next time).
      if (done % (64 * MiB) === 0) await new Promise<void>((r) => setImmediate(r));
    }
  } finally {
    closeSync(fd);
  }
}

export interface EnsureResult {
  generatedBytes: number;
  generatedFiles: number;
  reusedBytes: number;
  removedFiles: number;
  seconds: number;
}

/**
 * Makes the cached data match the spec: keeps files of the right size,
 * (re)generates missing or wrong-sized ones, removes strays from the data set
 * folder (they would be backed up too).
 */
export async function ensureData(spec: DatasetSpec, onProgress: (done: number, total: number) => void): Promise<EnsureResult> {
  const t0 = performance.now();
  const wanted = new Map(spec.files.map((f) => [f.rel, f]));
  let removedFiles = 0;
  for (const rel of listFiles(spec.datasetDir)) {
    if (!wanted.has(rel)) {
      unlinkSync(join(spec.datasetDir, rel));
      removedFiles++;
    }
  }
  for (const rel of listFiles(spec.rssDir)) {
    if (rel !== spec.rssFile.rel) {
      rmSync(join(spec.rssDir, rel), { force: true });
      removedFiles++;
    }
  }
  const all = [
    ...spec.files.map((f) => ({ path: join(spec.datasetDir, f.rel), bytes: f.bytes })),
    { path: spec.encryptFile.path, bytes: spec.encryptFile.bytes },
    { path: spec.rssFile.path, bytes: spec.rssFile.bytes },
  ];
  const todo = all.filter((f) => sizeOf(f.path) !== f.bytes);
  const total = todo.reduce((n, f) => n + f.bytes, 0);
  const reusedBytes = all.reduce((n, f) => n + f.bytes, 0) - total;
  let done = 0;
  if (todo.length > 0) {
    const buf = Buffer.allocUnsafe(8 * MiB);
    for (const f of todo) {
      await writeRandomFile(f.path, f.bytes, buf, (n) => {
        done += n;
        onProgress(done, total);
      });
    }
  }
  return { generatedBytes: total, generatedFiles: todo.length, reusedBytes, removedFiles, seconds: (performance.now() - t0) / 1000 };
}

/** Rewrites `length` bytes in the middle of a file with fresh random bytes (size kept, mtime changes). */
export function rewriteMiddle(path: string, length: number): { offset: number; length: number } {
  const size = statSync(path).size;
  const offset = Math.max(0, Math.floor((size - length) / 2));
  const buf = randomFillSync(Buffer.allocUnsafe(Math.min(length, size)));
  const fd = openSync(path, 'r+');
  try {
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, offset + off);
  } finally {
    closeSync(fd);
  }
  return { offset, length: buf.length };
}
