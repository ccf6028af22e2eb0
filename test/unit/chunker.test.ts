import { createCipheriv, createHash } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Chunker,
  type ChunkerParams,
  DEFAULT_CHUNKER_PARAMS,
  chunkFile,
  cutPointBytes,
  gearTable,
} from '../../engine/chunker';

const KiB = 1024;
const MiB = 1024 * KiB;
const SMALL: ChunkerParams = { minSize: 2 * KiB, avgSize: 8 * KiB, maxSize: 64 * KiB };

/** Deterministic pseudo-random bytes (AES-256-CTR keystream of `label`). */
function randomBytes(size: number, label: string): Buffer {
  const key = createHash('sha256').update(label).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const seedA = new TextEncoder().encode('repository A secret');
const seedB = new TextEncoder().encode('repository B secret');

/** Chunk lengths of a buffer that is available in one piece. */
function lengthsOnePiece(chunker: Chunker, data: Uint8Array): number[] {
  const out: number[] = [];
  let s = 0;
  for (;;) {
    const len = chunker.nextBoundary(data, s, data.length, true);
    if (len === 0) break;
    expect(len).toBeGreaterThan(0);
    out.push(len);
    s += len;
  }
  expect(s).toBe(data.length);
  return out;
}

/** Chunk lengths when the input arrives in small pieces (a growing buffer fed `step` bytes at a time). */
function lengthsPiecewise(chunker: Chunker, data: Uint8Array, steps: number[]): number[] {
  const out: number[] = [];
  let s = 0;
  let end = 0;
  let k = 0;
  for (;;) {
    const eof = end === data.length;
    const len = chunker.nextBoundary(data, s, end, eof);
    if (len === 0) break;
    if (len < 0) {
      expect(eof).toBe(false);
      end = Math.min(data.length, end + steps[k++ % steps.length]!);
      continue;
    }
    expect(s + len).toBeLessThanOrEqual(end);
    out.push(len);
    s += len;
  }
  return out;
}

function chunkDigests(data: Uint8Array, lengths: number[]): string[] {
  const out: string[] = [];
  let s = 0;
  for (const len of lengths) {
    out.push(createHash('sha256').update(data.subarray(s, s + len)).digest('hex'));
    s += len;
  }
  return out;
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeline-chunker-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function chunkPath(path: string, chunker: Chunker, readSize?: number, signal?: AbortSignal): Promise<Buffer[]> {
  const fh = await open(path, 'r');
  try {
    const out: Buffer[] = [];
    for await (const c of chunkFile(fh, chunker, { readSize, signal })) out.push(Buffer.from(c)); // copy: views are reused
    return out;
  } finally {
    await fh.close();
  }
}

describe('gearTable', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a1 = gearTable(seedA);
    const a2 = gearTable(seedA);
    const b = gearTable(seedB);
    expect(a1).toHaveLength(256);
    expect(Array.from(a1)).toEqual(Array.from(a2));
    expect(Array.from(a1)).not.toEqual(Array.from(b));
    expect(new Set(a1).size).toBeGreaterThan(250);
  });
});

describe('Chunker', () => {
  it('rejects invalid parameters', () => {
    const g = gearTable(seedA);
    expect(() => new Chunker({ minSize: 1000, avgSize: 3000, maxSize: 8000 }, g)).toThrow(/power of two/);
    expect(() => new Chunker({ minSize: 4096, avgSize: 4096, maxSize: 8192 }, g)).toThrow(/minSize < avgSize < maxSize/);
    expect(() => new Chunker({ minSize: 1024, avgSize: 4096, maxSize: 4096 }, g)).toThrow(/minSize < avgSize < maxSize/);
    expect(() => new Chunker(SMALL, new Uint32Array(10))).toThrow(/256/);
  });

  it('is deterministic and respects min/max bounds; average is near avgSize (small params)', () => {
    const data = randomBytes(32 * MiB, 'bounds');
    const c = new Chunker(SMALL, gearTable(seedA));
    const l1 = lengthsOnePiece(c, data);
    const l2 = lengthsOnePiece(new Chunker(SMALL, gearTable(seedA)), data);
    expect(l2).toEqual(l1);
    for (const len of l1.slice(0, -1)) {
      expect(len).toBeGreaterThan(SMALL.minSize);
      expect(len).toBeLessThanOrEqual(SMALL.maxSize);
    }
    const mean = data.length / l1.length;
    // Normalized chunking (NC2) with min = avg/4 gives a mean slightly above avg.
    expect(mean).toBeGreaterThan(0.9 * SMALL.avgSize);
    expect(mean).toBeLessThan(1.4 * SMALL.avgSize);
    // Normalization: most chunks fall in [avg/2, 2·avg].
    const central = l1.filter((x) => x >= SMALL.avgSize / 2 && x <= 2 * SMALL.avgSize).length;
    expect(central / l1.length).toBeGreaterThan(0.85);
  });

  it('default params: min 512 KiB, avg 1 MiB, max 8 MiB; mean near 1 MiB on 64 MiB random data', () => {
    expect(DEFAULT_CHUNKER_PARAMS).toEqual({ minSize: 512 * KiB, avgSize: 1 * MiB, maxSize: 8 * MiB });
    const data = randomBytes(64 * MiB, 'default-mean');
    const lens = lengthsOnePiece(new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA)), data);
    for (const len of lens.slice(0, -1)) {
      expect(len).toBeGreaterThan(512 * KiB);
      expect(len).toBeLessThanOrEqual(8 * MiB);
    }
    const mean = data.length / lens.length;
    expect(mean).toBeGreaterThan(0.9 * MiB);
    expect(mean).toBeLessThan(1.5 * MiB);
  });

  it('cuts at maxSize when the content never matches (constant bytes)', () => {
    const data = new Uint8Array(20 * MiB); // all zeros: the gear hash becomes constant
    const gear = gearTable(seedA);
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gear);
    const lens = lengthsOnePiece(c, data);
    for (const len of lens) expect(len).toBeLessThanOrEqual(8 * MiB);
    // With this seed the constant hash (−gear[0]) never clears the mask, so every cut is forced.
    expect((-gear[0]! | 0) & (~0 << 14)).not.toBe(0);
    expect(lens).toEqual([8 * MiB, 8 * MiB, 4 * MiB]);
  });

  it('word-at-a-time scan matches the byte reference at every alignment', () => {
    const gear = new Int32Array(gearTable(seedA).buffer);
    const data = randomBytes(4 * MiB + 7, 'align');
    const maskS = ~0 << (32 - 15);
    const maskL = ~0 << (32 - 11);
    const c = new Chunker({ minSize: 256, avgSize: 8 * KiB, maxSize: 64 * KiB }, gearTable(seedA));
    for (let off = 0; off < 4; off++) {
      const view = data.subarray(off); // byteOffset not a multiple of 4
      const lens = lengthsOnePiece(c, view);
      // Recompute with the reference loop.
      const ref: number[] = [];
      let s = 0;
      while (s < view.length) {
        const avail = view.length - s;
        if (avail <= 256) {
          ref.push(avail);
          break;
        }
        const n = Math.min(avail, 64 * KiB);
        const normal = Math.min(8 * KiB, n);
        const cut = cutPointBytes(view, s + 256, s + normal, s + n, gear, maskS, maskL);
        const len = cut >= 0 ? cut - s : n;
        ref.push(len);
        s += len;
      }
      expect(lens).toEqual(ref);
    }
  });

  it('gives identical boundaries whether input arrives in one piece or in many small pieces', () => {
    const data = randomBytes(24 * MiB + 12345, 'pieces');
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA));
    const whole = lengthsOnePiece(c, data);
    expect(lengthsPiecewise(c, data, [1, 7, 4096, 65_537, 1_000_003])).toEqual(whole);
    const cs = new Chunker(SMALL, gearTable(seedA));
    expect(lengthsPiecewise(cs, data.subarray(0, 2 * MiB), [1, 3, 511, 4099])).toEqual(
      lengthsOnePiece(cs, data.subarray(0, 2 * MiB)),
    );
  });

  it('different seeds give different boundaries', () => {
    const data = randomBytes(32 * MiB, 'seeds');
    const a = lengthsOnePiece(new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA)), data);
    const b = lengthsOnePiece(new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedB)), data);
    expect(b).not.toEqual(a);
    // Practically no cut point in common.
    const cuts = (l: number[]) => {
      let s = 0;
      return new Set(l.map((x) => (s += x)));
    };
    const ca = cuts(a);
    const common = [...cuts(b)].filter((x) => ca.has(x) && x !== data.length).length;
    expect(common).toBeLessThanOrEqual(2);
  });

  describe('shift resistance (64 MiB random data, 1 MiB edit in the middle)', () => {
    const base = randomBytes(64 * MiB, 'shift-base');
    const patch = randomBytes(1 * MiB, 'shift-patch');
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA));
    const orig = chunkDigests(base, lengthsOnePiece(c, base));
    const origSet = new Set(orig);

    it('insertion: all but a few chunks are unchanged', () => {
      const mid = 32 * MiB + 333;
      const edited = Buffer.concat([base.subarray(0, mid), patch, base.subarray(mid)]);
      const now = chunkDigests(edited, lengthsOnePiece(c, edited));
      const fresh = now.filter((d) => !origSet.has(d)).length;
      const nowSet = new Set(now);
      const lost = orig.filter((d) => !nowSet.has(d)).length;
      expect(orig.length).toBeGreaterThan(45);
      // The 1 MiB insert spans ~1 chunk: the chunk holding the edit and its neighbours change.
      // Deterministic data: measured 58 chunks before, 59 after; 2 new, 1 lost.
      expect(fresh).toBe(2);
      expect(lost).toBe(1);
      expect(now.length - fresh).toBe(orig.length - 1);
    });

    it('overwrite: all but a few chunks are unchanged', () => {
      const mid = 32 * MiB + 777;
      const edited = Buffer.from(base);
      patch.copy(edited, mid);
      const now = chunkDigests(edited, lengthsOnePiece(c, edited));
      const fresh = now.filter((d) => !origSet.has(d)).length;
      const nowSet = new Set(now);
      const lost = orig.filter((d) => !nowSet.has(d)).length;
      // Measured: 3 new chunks, 2 lost (the overwrite moved one cut point).
      expect(fresh).toBe(3);
      expect(lost).toBe(2);
    });
  });
});

describe('chunkFile', () => {
  it('empty file → no chunks', async () => {
    const p = join(dir, 'empty');
    await writeFile(p, '');
    expect(await chunkPath(p, new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA)))).toEqual([]);
  });

  it('file smaller than minSize (and exactly minSize) → one chunk', async () => {
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA));
    for (const size of [1, 100 * KiB, 512 * KiB]) {
      const p = join(dir, `small-${size}`);
      const data = randomBytes(size, `small-${size}`);
      await writeFile(p, data);
      const chunks = await chunkPath(p, c);
      expect(chunks).toHaveLength(1);
      expect(chunks[0]!.equals(data)).toBe(true);
    }
  });

  it('yields the same chunks as one-piece chunking, whatever the read size, and reassembles the file', async () => {
    const data = randomBytes(40 * MiB + 999, 'file');
    const p = join(dir, 'file40');
    await writeFile(p, data);
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA));
    const expected = lengthsOnePiece(c, data);
    for (const readSize of [undefined, 64 * KiB, 3 * MiB + 1, 64 * MiB]) {
      const chunks = await chunkPath(p, c, readSize);
      expect(chunks.map((x) => x.length)).toEqual(expected);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    }
  });

  it('yields views into two reused buffers, pooled across files; concurrent calls do not share', async () => {
    const data = randomBytes(30 * MiB, 'views');
    const p = join(dir, 'views');
    await writeFile(p, data);
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA));
    const buffersOf = async (): Promise<Set<ArrayBufferLike>> => {
      const fh = await open(p, 'r');
      const buffers = new Set<ArrayBufferLike>();
      try {
        for await (const chunk of chunkFile(fh, c, { readSize: 4 * MiB })) buffers.add(chunk.buffer);
      } finally {
        await fh.close();
      }
      return buffers;
    };
    const first = await buffersOf();
    expect(first.size).toBe(2);
    const second = await buffersOf();
    expect([...second].sort()).toEqual([...first].sort());
    expect([...second].every((b) => first.has(b))).toBe(true);

    // Two files chunked concurrently with one chunker: each gets its own buffers and correct chunks.
    const other = randomBytes(30 * MiB, 'views-other');
    const q = join(dir, 'views-other');
    await writeFile(q, other);
    const [a, b] = await Promise.all([chunkPath(p, c, 4 * MiB), chunkPath(q, c, 4 * MiB)]);
    expect(Buffer.concat(a).equals(data)).toBe(true);
    expect(Buffer.concat(b).equals(other)).toBe(true);
    expect(a.map((x) => x.length)).toEqual(lengthsOnePiece(c, data));
    expect(b.map((x) => x.length)).toEqual(lengthsOnePiece(c, other));
  });

  it('stops with the abort reason when the signal fires, and stopping early is clean', async () => {
    const data = randomBytes(20 * MiB, 'abort');
    const p = join(dir, 'abort');
    await writeFile(p, data);
    const c = new Chunker(DEFAULT_CHUNKER_PARAMS, gearTable(seedA));
    const ac = new AbortController();
    const fh = await open(p, 'r');
    let n = 0;
    try {
      await expect(
        (async () => {
          for await (const _ of chunkFile(fh, c, { signal: ac.signal })) {
            if (++n === 2) ac.abort(new Error('stop now'));
          }
        })(),
      ).rejects.toThrow('stop now');
      expect(n).toBe(2);
      // Breaking out early leaves no read in flight: closing right away is safe.
      for await (const _ of chunkFile(fh, c)) break;
    } finally {
      await fh.close();
    }
  });
});
