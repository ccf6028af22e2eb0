/**
 * Random access into age payloads: many (offset, length) ranges, including
 * chunk boundaries and the final chunk, equal the plaintext slices — for
 * files made by us, by the age CLI and by typage (hybrid).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Encrypter } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGE_CHUNK_SIZE,
  AGE_SEGMENT_SIZE,
  AgeIdentities,
  AgePayloadReader,
  AgeHeaderIncompleteError,
  agePlaintextSize,
  createAgeHeader,
  parseAgeHeaderLength,
  sealBytes,
  unwrapFileKey,
} from '../../engine/crypto/age';
import { age, makeIdentityFile, makeTempDir, pseudoRandomBytes, rng } from './crypto-helpers';

const C = AGE_CHUNK_SIZE;

let tmp: { dir: string; cleanup: () => Promise<void> };
let x: { path: string; identity: string; recipient: string };
let pq: { path: string; identity: string; recipient: string };
let ids: AgeIdentities;

beforeAll(async () => {
  tmp = await makeTempDir();
  x = await makeIdentityFile(tmp.dir, 'x.txt', 'x25519');
  pq = await makeIdentityFile(tmp.dir, 'pq.txt', 'hybrid');
  ids = AgeIdentities.merge(await AgeIdentities.fromFile(x.path), await AgeIdentities.fromFile(pq.path));
});

afterAll(async () => {
  await tmp?.cleanup();
});

/** Interesting ranges: boundaries, whole chunks, the final chunk, plus random ones. */
function ranges(size: number, seed: number, randomCount: number): Array<[number, number]> {
  const out: Array<[number, number]> = [[0, size], [0, 0], [size, 0]];
  const points = new Set<number>([0, size]);
  for (let k = 1; k * C <= size + C; k++) for (const d of [-2, -1, 0, 1, 2]) points.add(k * C + d);
  const pts = [...points].filter((p) => p >= 0 && p <= size).sort((a, b) => a - b);
  for (const p of pts) {
    for (const len of [1, 2, C - 1, C, C + 1, 3 * C]) if (p + len <= size) out.push([p, len]);
    if (p < size) out.push([p, size - p]); // through the final chunk
  }
  const r = rng(seed);
  for (let i = 0; i < randomCount; i++) {
    const off = Math.floor(r() * (size + 1));
    const len = Math.floor(r() * (size - off + 1) * (r() < 0.5 ? 1 : 0.01));
    out.push([off, len]);
  }
  return out;
}

async function checkRanges(file: Buffer, plain: Buffer, seed: number, randomCount = 300): Promise<number> {
  const headerLength = parseAgeHeaderLength(file);
  const size = agePlaintextSize(headerLength, file.length);
  expect(size).toBe(plain.length);
  // Open from a prefix only (what a ranged GET of the first bytes gives).
  const reader = await AgePayloadReader.open(file.subarray(0, headerLength + 16), ids);
  expect(reader.headerLength).toBe(headerLength);
  let checked = 0;
  for (const [off, len] of ranges(size, seed, randomCount)) {
    const { start, end, firstChunk } = reader.cipherRangeFor(off, len, size);
    expect(firstChunk).toBe(Math.min(Math.floor(off / C), Math.max(0, Math.ceil(size / C) - 1)));
    if (len > 0) {
      expect(start).toBe(headerLength + 16 + firstChunk * AGE_SEGMENT_SIZE);
      expect(end).toBeLessThanOrEqual(file.length);
      // Only the chunks that cover the range.
      const lastChunk = Math.floor((off + len - 1) / C);
      expect(Math.ceil((end - start) / AGE_SEGMENT_SIZE)).toBe(lastChunk - firstChunk + 1);
    }
    const got = reader.decryptRange(file.subarray(start, end), off, len, size);
    if (!got.equals(plain.subarray(off, off + len))) {
      throw new Error(`range [${off}, +${len}) of ${size} differs`);
    }
    checked++;
  }
  return checked;
}

describe('AgePayloadReader random access', () => {
  for (const size of [0, 1, C - 1, C, C + 1, 3 * C, 3 * C + 777, 40 * C + 5]) {
    it(`our file, X25519, plaintext ${size} bytes`, async () => {
      const plain = pseudoRandomBytes(size, size + 1);
      const file = await sealBytes(plain, [x.recipient]);
      expect(await checkRanges(file, plain, size + 3)).toBeGreaterThan(2);
    });
  }

  it('age CLI file (X25519), 2.5 MiB + 3', async () => {
    const plain = pseudoRandomBytes(2.5 * 1024 * 1024 + 3, 9);
    const src = join(tmp.dir, 'cli.src');
    const f = join(tmp.dir, 'cli.age');
    await writeFile(src, plain);
    await age(['-e', '-r', x.recipient, '-o', f, src]);
    await checkRanges(await readFile(f), plain, 17);
  });

  it('typage file (hybrid mlkem768x25519), 1 MiB exactly', async () => {
    const plain = pseudoRandomBytes(1024 * 1024, 10);
    const e = new Encrypter();
    e.addRecipient(pq.recipient);
    await checkRanges(Buffer.from(await e.encrypt(plain)), plain, 23);
  });

  it('fromFileKey with a cached file key reads the same as open()', async () => {
    const plain = pseudoRandomBytes(10 * C + 10, 4);
    const file = await sealBytes(plain, [x.recipient]);
    const hl = parseAgeHeaderLength(file);
    const fileKey = await unwrapFileKey(file.subarray(0, hl), ids);
    const reader = AgePayloadReader.fromFileKey(fileKey, file.subarray(hl, hl + 16), hl);
    const { start, end } = reader.cipherRangeFor(3 * C - 5, 2 * C + 10, plain.length);
    expect(reader.decryptRange(file.subarray(start, end), 3 * C - 5, 2 * C + 10, plain.length)).toEqual(
      plain.subarray(3 * C - 5, 5 * C + 5),
    );
  });

  it('extra bytes after the fetched range are ignored', async () => {
    const plain = pseudoRandomBytes(5 * C, 6);
    const file = await sealBytes(plain, [x.recipient]);
    const reader = await AgePayloadReader.open(file, ids);
    const { start } = reader.cipherRangeFor(C + 3, 10, plain.length);
    expect(reader.decryptRange(file.subarray(start), C + 3, 10, plain.length)).toEqual(plain.subarray(C + 3, C + 13));
  });

  it('a small range does not pin its whole 64 KiB chunk in memory', async () => {
    const plain = pseudoRandomBytes(3 * C, 7);
    const file = await sealBytes(plain, [x.recipient]);
    const reader = await AgePayloadReader.open(file, ids);
    const { start, end } = reader.cipherRangeFor(C + 100, 200, plain.length);
    const got = reader.decryptRange(file.subarray(start, end), C + 100, 200, plain.length);
    expect(got).toEqual(plain.subarray(C + 100, C + 300));
    expect(got.buffer.byteLength).toBeLessThan(C);
  });

  it('open() asks for more bytes when given less than header + nonce', async () => {
    const file = await sealBytes(Buffer.from('hello'), [x.recipient]);
    const hl = parseAgeHeaderLength(file);
    await expect(AgePayloadReader.open(file.subarray(0, hl + 15), ids)).rejects.toBeInstanceOf(AgeHeaderIncompleteError);
    await expect(AgePayloadReader.open(file.subarray(0, hl - 1), ids)).rejects.toBeInstanceOf(AgeHeaderIncompleteError);
  });

  it('rejects ranges outside the plaintext', async () => {
    const { header, fileKey } = await createAgeHeader([x.recipient]);
    const reader = AgePayloadReader.fromFileKey(fileKey, Buffer.alloc(16), header.length);
    expect(() => reader.cipherRangeFor(10, 1, 10)).toThrow(RangeError);
    expect(() => reader.cipherRangeFor(-1, 1, 10)).toThrow(RangeError);
    expect(() => reader.cipherRangeFor(0.5, 1, 10)).toThrow(RangeError);
    expect(() => reader.decryptRange(Buffer.alloc(0), 0, 11, 10)).toThrow(RangeError);
  });
});
