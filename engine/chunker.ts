/**
 * FastCDC content-defined chunking (Xia et al., "The Design of Fast
 * Content-Defined Chunking for Data Deduplication Based Storage Systems",
 * IEEE TPDS 2020): gear rolling hash, cut-point skipping (the first `minSize`
 * bytes of every chunk are not hashed) and normalized chunking with two masks
 * (a harder mask before `avgSize`, an easier one after it).
 *
 * The gear table is derived from a per-repository secret seed, so the same
 * content is cut at different places in different repositories and chunk
 * lengths do not fingerprint content across repositories.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

export interface ChunkerParams {
  /** Smallest chunk (except the last one of a file). */
  minSize: number;
  /** Target average; a power of two. */
  avgSize: number;
  /** Largest chunk. */
  maxSize: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** restic-like sizes: min 512 KiB, avg 1 MiB, max 8 MiB. */
export const DEFAULT_CHUNKER_PARAMS: ChunkerParams = Object.freeze({
  minSize: 512 * KiB,
  avgSize: 1 * MiB,
  maxSize: 8 * MiB,
});

/** Normalization level (paper's NC level 2: masks of log2(avg) ± 2 bits). */
const NORMALIZATION_LEVEL = 2;

const GEAR_DOMAIN = Buffer.from('lifeline/fastcdc-gear/v1\0', 'utf8');

/**
 * 256 pseudo-random 32-bit gear values from a secret seed: SHA-256 in counter
 * mode, `SHA-256(domain ‖ seed ‖ u32be(counter))`, 8 values per block.
 */
export function gearTable(seed: Uint8Array): Uint32Array {
  const table = new Uint32Array(256);
  const ctr = Buffer.alloc(4);
  for (let block = 0; block < 32; block++) {
    ctr.writeUInt32BE(block, 0);
    const digest = createHash('sha256').update(GEAR_DOMAIN).update(seed).update(ctr).digest();
    for (let j = 0; j < 8; j++) table[block * 8 + j] = digest.readUInt32BE(j * 4);
  }
  return table;
}

/** A mask of the `bits` most significant bits of a 32-bit word, as an int32. */
function topBitsMask(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return -1;
  return (~0 << (32 - bits)) | 0;
}

function validateParams(p: ChunkerParams): void {
  const { minSize, avgSize, maxSize } = p;
  for (const [name, v] of Object.entries({ minSize, avgSize, maxSize })) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`chunker ${name} must be a positive integer, got ${v}`);
  }
  if ((avgSize & (avgSize - 1)) !== 0 || avgSize > 2 ** 30) {
    throw new RangeError(`chunker avgSize must be a power of two ≤ 1 GiB, got ${avgSize}`);
  }
  if (!(minSize < avgSize && avgSize < maxSize)) {
    throw new RangeError(`chunker sizes must satisfy minSize < avgSize < maxSize, got ${minSize}/${avgSize}/${maxSize}`);
  }
  if (Math.log2(avgSize) - NORMALIZATION_LEVEL < 1) throw new RangeError(`chunker avgSize too small: ${avgSize}`);
}

export class Chunker {
  readonly params: Readonly<ChunkerParams>;
  private readonly gear: Int32Array;
  private readonly maskS: number;
  private readonly maskL: number;
  private readonly minSize: number;
  private readonly avgSize: number;
  private readonly maxSize: number;
  /** Read buffers of `chunkFile`, kept for the next file (see `takeBuffer`). */
  private readonly pool: Uint8Array[] = [];

  constructor(params: ChunkerParams, gear: Uint32Array) {
    validateParams(params);
    if (gear.length !== 256) throw new RangeError(`gear table must have 256 entries, got ${gear.length}`);
    this.params = Object.freeze({ minSize: params.minSize, avgSize: params.avgSize, maxSize: params.maxSize });
    // An int32 copy keeps the hot loop in small-integer arithmetic
    // (a Uint32Array element above 2^31 would be a heap number).
    this.gear = new Int32Array(gear.length);
    this.gear.set(new Int32Array(gear.buffer, gear.byteOffset, gear.length));
    const bits = Math.log2(params.avgSize);
    this.maskS = topBitsMask(bits + NORMALIZATION_LEVEL);
    this.maskL = topBitsMask(bits - NORMALIZATION_LEVEL);
    this.minSize = params.minSize;
    this.avgSize = params.avgSize;
    this.maxSize = params.maxSize;
  }

  /**
   * Length of the next chunk starting at `data[start]`, given that
   * `data[start..end)` is available and `eof` says whether more input follows
   * (`eof = true`: nothing follows `end`). Returns -1 when more input is needed
   * to decide, and 0 only at eof with nothing left.
   *
   * The answer never depends on how the input was split: a boundary found in a
   * prefix is the one the full input gives, since the scan is left to right.
   */
  nextBoundary(data: Uint8Array, start: number, end: number, eof: boolean): number {
    const avail = end - start;
    if (avail <= this.minSize) {
      // A chunk is longer than minSize unless it is the last one.
      return eof ? Math.max(avail, 0) : -1;
    }
    const n = avail < this.maxSize ? avail : this.maxSize;
    const normal = this.avgSize < n ? this.avgSize : n;
    const len = cutPoint(data, start + this.minSize, start + normal, start + n, this.gear, this.maskS, this.maskL);
    if (len >= 0) return len - start;
    return eof || avail >= this.maxSize ? n : -1;
  }

  /** @internal A read buffer of exactly `size` bytes for `chunkFile`, from the pool when possible. */
  takeBuffer(size: number): Uint8Array {
    const i = this.pool.findIndex((b) => b.length === size);
    if (i >= 0) return this.pool.splice(i, 1)[0]!;
    return new Uint8Array(size);
  }

  /** @internal Give a buffer back to the pool (a few are kept; memory already mapped is ~70× faster to fill). */
  returnBuffer(buf: Uint8Array): void {
    if (this.pool.length < MAX_POOLED_BUFFERS && !this.pool.includes(buf)) this.pool.push(buf);
  }
}

/** Buffers kept per chunker: two concurrent `chunkFile` calls. */
const MAX_POOLED_BUFFERS = 4;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * The hot loop, kept monomorphic and free of `this` loads. Returns the end
 * offset (exclusive, in `data` coordinates) of the first cut point in
 * [from, to), or -1. Bytes in [from, normalEnd) are tested against `maskS`,
 * the rest against `maskL`.
 */
function cutPoint(
  data: Uint8Array,
  from: number,
  normalEnd: number,
  to: number,
  gear: Int32Array,
  maskS: number,
  maskL: number,
): number {
  if (!LITTLE_ENDIAN) return cutPointBytes(data, from, normalEnd, to, gear, maskS, maskL);
  // Load four bytes per memory access through an aligned Int32 view of the
  // underlying buffer (≈2× faster than byte loads in V8).
  const base = data.byteOffset;
  const words = new Int32Array(data.buffer, 0, data.buffer.byteLength >>> 2);
  scanHash = 0;
  let r = scanWords(data, words, base, from, normalEnd, gear, maskS);
  if (r >= 0) return r;
  r = scanWords(data, words, base, normalEnd, to, gear, maskL);
  return r;
}

/** Rolling hash carried from one `scanWords` call to the next. */
let scanHash = 0;

function scanWords(
  data: Uint8Array,
  words: Int32Array,
  base: number,
  from: number,
  to: number,
  g: Int32Array,
  m: number,
): number {
  let h = scanHash;
  let i = from;
  // Bytes up to the first word boundary.
  while (((base + i) & 3) !== 0 && i < to) {
    h = ((h << 1) + g[data[i]!]!) | 0;
    if ((h & m) === 0) return i + 1;
    i++;
  }
  // Whole words: w indexes `words`, p = byte offset in `data` of word w.
  let w = (base + i) >>> 2;
  const wEnd = (base + to) >>> 2;
  let p = i;
  for (; w < wEnd; w++, p += 4) {
    const x = words[w]!;
    h = ((h << 1) + g[x & 255]!) | 0;
    if ((h & m) === 0) return p + 1;
    h = ((h << 1) + g[(x >>> 8) & 255]!) | 0;
    if ((h & m) === 0) return p + 2;
    h = ((h << 1) + g[(x >>> 16) & 255]!) | 0;
    if ((h & m) === 0) return p + 3;
    h = ((h << 1) + g[x >>> 24]!) | 0;
    if ((h & m) === 0) return p + 4;
  }
  // Trailing bytes.
  for (i = p; i < to; i++) {
    h = ((h << 1) + g[data[i]!]!) | 0;
    if ((h & m) === 0) return i + 1;
  }
  scanHash = h;
  return -1;
}

/** Reference byte-at-a-time loop (big-endian hosts; also the specification the word loop must match). */
export function cutPointBytes(
  data: Uint8Array,
  from: number,
  normalEnd: number,
  to: number,
  gear: Int32Array,
  maskS: number,
  maskL: number,
): number {
  let h = 0;
  let i = from;
  for (; i < normalEnd; i++) {
    h = ((h << 1) + gear[data[i]!]!) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (; i < to; i++) {
    h = ((h << 1) + gear[data[i]!]!) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  return -1;
}

export interface ChunkFileOptions {
  /** Bytes per read (default 8 MiB). Buffers of `maxSize + readSize` bytes are pooled by the chunker. */
  readSize?: number;
  signal?: AbortSignal;
}

export const DEFAULT_READ_SIZE = 8 * MiB;

/** Read up to `len` bytes at file position `pos` into `buf[off..)`; short only at end of file. */
async function readBlock(file: FileHandle, buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await file.read(buf, off + done, len - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/**
 * Stream the chunks of an open file (from position 0) with bounded memory.
 *
 * Yields views into internal buffers that are reused: a chunk is valid only
 * until the generator is resumed, so the consumer must copy, hash or encrypt
 * it before asking for the next one. The next block of the file is read ahead
 * while the consumer works on the current one. The file is never copied as a
 * whole; only the undecided tail of a block (< maxSize) is moved.
 *
 * Buffers (`maxSize + readSize` bytes each, one for a file that fits in one
 * read, two otherwise) come from a small pool owned by the `Chunker`, so
 * chunking many files one after another allocates (and page-faults) them once.
 * Concurrent calls with the same chunker take distinct buffers.
 */
export async function* chunkFile(
  file: FileHandle,
  chunker: Chunker,
  opts: ChunkFileOptions = {},
): AsyncGenerator<Uint8Array> {
  const readSize = Math.max(64 * KiB, Math.floor(opts.readSize ?? DEFAULT_READ_SIZE));
  const signal = opts.signal;
  const head = chunker.params.maxSize; // room in front of each block for the carried-over tail
  const bufSize = head + readSize;
  const held: Uint8Array[] = [];
  const take = (): Uint8Array => {
    const b = chunker.takeBuffer(bufSize);
    held.push(b);
    return b;
  };

  let pending: Promise<number> | undefined;
  const startRead = (buf: Uint8Array, pos: number): void => {
    pending = readBlock(file, buf, head, readSize, pos);
    pending.catch(() => {}); // surfaced when awaited; avoid an unhandled rejection meanwhile
  };

  try {
    signal?.throwIfAborted();
    let buf = take();
    let other: Uint8Array | undefined;
    let position = 0;
    startRead(buf, position);
    let n = await pending!;
    pending = undefined;
    position += n;
    let eof = n < readSize;
    let s = head;
    let e = head + n;
    if (!eof) startRead((other = take()), position);

    for (;;) {
      for (;;) {
        const len = chunker.nextBoundary(buf, s, e, eof);
        if (len < 0) break;
        if (len === 0) return;
        signal?.throwIfAborted();
        yield buf.subarray(s, s + len);
        s += len;
      }
      signal?.throwIfAborted();
      // The undecided tail [s, e) is shorter than maxSize: move it in front of the next block.
      const next = other!;
      n = await pending!;
      pending = undefined;
      position += n;
      eof = n < readSize;
      const rem = e - s;
      next.set(buf.subarray(s, e), head - rem);
      other = buf;
      buf = next;
      s = head - rem;
      e = head + n;
      // Every chunk of the previous buffer has been consumed: read ahead into it.
      if (!eof) startRead(other, position);
    }
  } finally {
    // Never leave a read in flight into our buffers after the generator ends
    // (the caller may close the file right away, and the buffers go back to the pool).
    if (pending) await pending.catch(() => 0);
    for (const b of held) chunker.returnBuffer(b);
  }
}
