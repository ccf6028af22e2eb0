/**
 * Reading trees: a warm-up read (so every contender reads from page cache),
 * SHA-256 of every file, and comparing a restored tree with the source.
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { listFiles } from './dataset';

export interface FileDigest {
  size: number;
  sha256: string;
}

const buf = Buffer.allocUnsafe(4 * 1024 * 1024);

function readFile(path: string, hash: ReturnType<typeof createHash> | null, onBytes: (n: number) => void): number {
  const fd = openSync(path, 'r');
  let total = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash?.update(buf.subarray(0, n));
      total += n;
      onBytes(n);
    }
  } finally {
    closeSync(fd);
  }
  return total;
}

/** Reads every file of a tree (or one file) once; returns bytes read. */
export function readTree(root: string, onBytes: (n: number) => void = () => {}): number {
  if (statSync(root).isFile()) return readFile(root, null, onBytes);
  let total = 0;
  for (const rel of listFiles(root)) total += readFile(join(root, rel), null, onBytes);
  return total;
}

/** SHA-256 and size of every file under root, by relative path. */
export function hashTree(root: string, onBytes: (n: number) => void = () => {}): Map<string, FileDigest> {
  const out = new Map<string, FileDigest>();
  for (const rel of listFiles(root)) {
    const h = createHash('sha256');
    const size = readFile(join(root, rel), h, onBytes);
    out.set(rel, { size, sha256: h.digest('hex') });
  }
  return out;
}

export function hashFile(path: string, onBytes: (n: number) => void = () => {}): FileDigest {
  const h = createHash('sha256');
  const size = readFile(path, h, onBytes);
  return { size, sha256: h.digest('hex') };
}

/** Differences between the expected and the actual tree (empty when identical). */
export function compareTrees(expected: Map<string, FileDigest>, actual: Map<string, FileDigest>): string[] {
  const problems: string[] = [];
  for (const [rel, e] of expected) {
    const a = actual.get(rel);
    if (!a) problems.push(`missing: ${rel}`);
    else if (a.size !== e.size) problems.push(`size differs: ${rel} (${a.size} instead of ${e.size})`);
    else if (a.sha256 !== e.sha256) problems.push(`content differs: ${rel}`);
  }
  for (const rel of actual.keys()) if (!expected.has(rel)) problems.push(`unexpected: ${rel}`);
  return problems;
}
