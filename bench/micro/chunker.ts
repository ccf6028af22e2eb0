/**
 * Micro-benchmark of the FastCDC chunker.
 *
 *   npx tsx bench/micro/chunker.ts [--size-mib 1024] [--runs 3] [--read-mib 8] [--file PATH] [--json]
 *
 * Writes SIZE MiB of random data to a file once (kept for later runs, so it is
 * page-cached), then measures `chunkFile` end to end (reads + chunking, the
 * consumer does nothing) and `Chunker.nextBoundary` alone on an in-memory
 * block, and prints the chunk size distribution.
 */
import { createCipheriv } from 'node:crypto';
import { open, stat, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Chunker, DEFAULT_CHUNKER_PARAMS, chunkFile, gearTable } from '../../engine/chunker';

const MiB = 1024 * 1024;

export interface ChunkerBenchResult {
  sizeBytes: number;
  readSize: number;
  runs: number[];
  bestMBps: number;
  medianMBps: number;
  inMemoryMBps: number;
  chunks: number;
  chunkSize: { min: number; max: number; mean: number; p10: number; p50: number; p90: number; p99: number };
  histogram: Array<{ fromMiB: number; toMiB: number; count: number }>;
}

/** Deterministic pseudo-random bytes (AES-256-CTR keystream) written through one reused buffer. */
async function ensureRandomFile(path: string, size: number): Promise<void> {
  const st = await stat(path).catch(() => null);
  if (st && st.size === size) return;
  const fh = await open(path, 'w');
  try {
    const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 7), Buffer.alloc(16, 0));
    const zeros = Buffer.alloc(16 * MiB);
    let written = 0;
    while (written < size) {
      const n = Math.min(zeros.length, size - written);
      const block = cipher.update(zeros.subarray(0, n));
      await fh.write(block, 0, n, written);
      written += n;
    }
  } finally {
    await fh.close();
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export async function runChunkerBench(opts: {
  sizeMiB?: number;
  runs?: number;
  readMiB?: number;
  file?: string;
} = {}): Promise<ChunkerBenchResult> {
  const size = Math.floor((opts.sizeMiB ?? 1024) * MiB);
  const runs = opts.runs ?? 3;
  const readSize = Math.floor((opts.readMiB ?? 8) * MiB);
  const dir = join(tmpdir(), 'lifeline-bench');
  await mkdir(dir, { recursive: true });
  const file = opts.file ?? join(dir, `random-${size}.bin`);
  await ensureRandomFile(file, size);

  const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(new TextEncoder().encode('bench-seed')));
  const speeds: number[] = [];
  let sizes: number[] = [];
  // One warm-up pass pulls the file into the page cache (and warms up the JIT).
  for (let r = -1; r < runs; r++) {
    const fh = await open(file, 'r');
    const lens: number[] = [];
    const t0 = process.hrtime.bigint();
    let total = 0;
    try {
      for await (const chunk of chunkFile(fh, chunker, { readSize })) {
        total += chunk.length;
        lens.push(chunk.length);
      }
    } finally {
      await fh.close();
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    if (total !== size) throw new Error(`chunked ${total} bytes of ${size}`);
    if (r >= 0) speeds.push(size / 1e6 / secs);
    sizes = lens;
  }

  // nextBoundary alone on a block already in memory (no I/O).
  const memSize = Math.min(size, 256 * MiB);
  const mem = new Uint8Array(memSize);
  {
    const fh = await open(file, 'r');
    try {
      await fh.read(mem, 0, memSize, 0);
    } finally {
      await fh.close();
    }
  }
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const t0 = process.hrtime.bigint();
    let s = 0;
    while (s < memSize) {
      const len = chunker.nextBoundary(mem, s, memSize, true);
      if (len <= 0) break;
      s += len;
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.max(best, memSize / 1e6 / secs);
  }

  const sorted = [...sizes].sort((a, b) => a - b);
  const histogram: ChunkerBenchResult['histogram'] = [];
  const edges = [0, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 8, 8.0001];
  for (let i = 0; i + 1 < edges.length; i++) {
    const lo = edges[i]! * MiB;
    const hi = edges[i + 1]! * MiB;
    histogram.push({ fromMiB: edges[i]!, toMiB: edges[i + 1]!, count: sorted.filter((x) => x >= lo && x < hi).length });
  }
  const sortedSpeeds = [...speeds].sort((a, b) => a - b);
  return {
    sizeBytes: size,
    readSize,
    runs: speeds.map((x) => Math.round(x)),
    bestMBps: Math.round(Math.max(...speeds)),
    medianMBps: Math.round(percentile(sortedSpeeds, 50)),
    inMemoryMBps: Math.round(best),
    chunks: sizes.length,
    chunkSize: {
      min: sorted[0] ?? 0,
      max: sorted[sorted.length - 1] ?? 0,
      mean: Math.round(size / Math.max(1, sizes.length)),
      p10: percentile(sorted, 10),
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
    },
    histogram,
  };
}

const isMain = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('bench/micro/chunker.ts');
if (isMain) {
  const { values } = parseArgs({
    options: {
      'size-mib': { type: 'string' },
      runs: { type: 'string' },
      'read-mib': { type: 'string' },
      file: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const res = await runChunkerBench({
    sizeMiB: values['size-mib'] ? Number(values['size-mib']) : undefined,
    runs: values.runs ? Number(values.runs) : undefined,
    readMiB: values['read-mib'] ? Number(values['read-mib']) : undefined,
    file: values.file,
  });
  if (values.json) {
    console.log(JSON.stringify(res));
  } else {
    const m = (x: number) => (x / MiB).toFixed(2);
    console.log(`chunkFile: ${res.sizeBytes / MiB} MiB, read ${res.readSize / MiB} MiB: runs ${res.runs.join(', ')} MB/s (best ${res.bestMBps}, median ${res.medianMBps})`);
    console.log(`nextBoundary in memory: ${res.inMemoryMBps} MB/s`);
    const c = res.chunkSize;
    console.log(`chunks: ${res.chunks}; size MiB min ${m(c.min)} p10 ${m(c.p10)} p50 ${m(c.p50)} mean ${m(c.mean)} p90 ${m(c.p90)} p99 ${m(c.p99)} max ${m(c.max)}`);
    for (const h of res.histogram) console.log(`  [${h.fromMiB}, ${h.toMiB}) MiB  ${h.count}`);
  }
}
