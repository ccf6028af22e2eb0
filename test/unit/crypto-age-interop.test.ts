/**
 * Format proof: our age output opens with the real `age` CLI (X25519) and with
 * typage's Decrypter (X25519 and mlkem768x25519 hybrid), and files made by both
 * open with our whole-file, streaming and random-access readers.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Decrypter, Encrypter } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGE_CHUNK_SIZE,
  AgeEncryptor,
  AgeIdentities,
  AgePayloadReader,
  ageCiphertextSize,
  agePlaintextSize,
  createAgeHeader,
  decryptStream,
  encryptStream,
  openBytes,
  parseAgeHeaderLength,
  sealBytes,
  unwrapFileKey,
} from '../../engine/crypto/age';
import { age, ageKeygen, makeIdentityFile, makeTempDir, pseudoRandomBytes, requireAgeCli } from './crypto-helpers';

const SIZES: Array<[string, number]> = [
  ['empty', 0],
  ['1 byte', 1],
  ['64 KiB - 1', AGE_CHUNK_SIZE - 1],
  ['exactly 64 KiB', AGE_CHUNK_SIZE],
  ['64 KiB + 1', AGE_CHUNK_SIZE + 1],
  ['exactly 2 chunks', 2 * AGE_CHUNK_SIZE],
  ['5 MiB + 123', 5 * 1024 * 1024 + 123],
];

let tmp: { dir: string; cleanup: () => Promise<void> };
let x: { path: string; identity: string; recipient: string };
let x2: { path: string; identity: string; recipient: string };
let pq: { path: string; identity: string; recipient: string };
let xIds: AgeIdentities;
let pqIds: AgeIdentities;

beforeAll(async () => {
  tmp = await makeTempDir();
  x = await makeIdentityFile(tmp.dir, 'x25519.txt', 'x25519');
  x2 = await makeIdentityFile(tmp.dir, 'x25519-b.txt', 'x25519');
  pq = await makeIdentityFile(tmp.dir, 'hybrid.txt', 'hybrid');
  xIds = await AgeIdentities.fromFile(x.path);
  pqIds = await AgeIdentities.fromFile(pq.path);
});

afterAll(async () => {
  await tmp?.cleanup();
});

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Feed `data` to a Transform in pieces of the given sizes (cycled). */
async function throughTransform(data: Buffer, t: NodeJS.ReadWriteStream, pieces: number[]): Promise<Buffer> {
  function* gen() {
    let pos = 0;
    let i = 0;
    while (pos < data.length) {
      const n = pieces[i++ % pieces.length]!;
      yield data.subarray(pos, pos + n);
      pos += n;
    }
  }
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(gen()),
    t,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

describe('our AgeEncryptor output opens with the age CLI and typage', () => {
  it('the age CLI is installed (otherwise: run the project bootstrap)', () => {
    expect(() => requireAgeCli()).not.toThrow();
  });

  for (const [label, size] of SIZES) {
    it(`X25519, ${label}: age -d and typage Decrypter give identical plaintext`, async () => {
      const plain = pseudoRandomBytes(size, size + 7);
      const enc = await AgeEncryptor.create([x.recipient]);
      // Uneven writes exercise the hold-back logic.
      const parts: Buffer[] = [];
      let pos = 0;
      const steps = [1, 65535, 70000, 3, 131072];
      for (let i = 0; pos < size; i++) {
        const n = steps[i % steps.length]!;
        parts.push(...enc.write(plain.subarray(pos, pos + n)));
        pos += n;
      }
      parts.push(...enc.finish());
      const file = Buffer.concat(parts);
      expect(enc.plaintextBytes).toBe(size);
      expect(enc.ciphertextBytes).toBe(file.length);
      expect(file.length).toBe(ageCiphertextSize(parseAgeHeaderLength(file), size));

      const f = join(tmp.dir, `ours-x-${size}.age`);
      await writeFile(f, file);
      // stdout, not -o: age 1.1.1 creates the -o file lazily (none for empty output).
      expect((await age(['-d', '-i', x.path, f])).equals(plain)).toBe(true);

      const d = new Decrypter();
      d.addIdentity(x.identity);
      expect(Buffer.from(await d.decrypt(file)).equals(plain)).toBe(true);
    });

    it(`hybrid mlkem768x25519, ${label}: typage Decrypter gives identical plaintext`, async () => {
      const plain = pseudoRandomBytes(size, size + 11);
      const file = await sealBytes(plain, [pq.recipient]);
      expect(file.toString('latin1', 0, 200)).toContain('-> mlkem768x25519 ');
      const d = new Decrypter();
      d.addIdentity(pq.identity);
      expect(Buffer.from(await d.decrypt(file)).equals(plain)).toBe(true);
      expect((await openBytes(file, pqIds)).equals(plain)).toBe(true);
    });
  }

  it('multiple X25519 recipients: each identity opens the file with age -d', async () => {
    const plain = pseudoRandomBytes(200_000, 3);
    const file = await sealBytes(plain, [x.recipient, x2.recipient]);
    const f = join(tmp.dir, 'multi.age');
    await writeFile(f, file);
    for (const id of [x, x2]) {
      const out = join(tmp.dir, `multi-${id === x ? 'a' : 'b'}.out`);
      await age(['-d', '-i', id.path, '-o', out, f]);
      expect((await readFile(out)).equals(plain)).toBe(true);
    }
  });

  it('encryptStream output (piped from a file) opens with age -d', async () => {
    const plain = pseudoRandomBytes(3 * 1024 * 1024 + 5, 99);
    const src = join(tmp.dir, 'stream.src');
    const f = join(tmp.dir, 'stream.age');
    const out = join(tmp.dir, 'stream.out');
    await writeFile(src, plain);
    await pipeline(createReadStream(src, { highWaterMark: 10_000 }), encryptStream([x.recipient]), createWriteStream(f));
    await age(['-d', '-i', x.path, '-o', out, f]);
    expect((await readFile(out)).equals(plain)).toBe(true);
  });

  it('encryptStream of an empty input is a valid empty age file', async () => {
    const file = await throughTransform(Buffer.alloc(0), encryptStream([x.recipient]), [1]);
    const f = join(tmp.dir, 'empty-stream.age');
    await writeFile(f, file);
    expect((await age(['-d', '-i', x.path, f])).length).toBe(0);
  });

  it('write() split pattern does not change the bytes (fixed header, key, nonce)', async () => {
    const { header, fileKey } = await createAgeHeader([x.recipient]);
    const nonce = Buffer.alloc(16, 7);
    const plain = pseudoRandomBytes(4 * AGE_CHUNK_SIZE + 17, 5);
    const outputs: Buffer[] = [];
    for (const split of [[plain.length], [1], [AGE_CHUNK_SIZE], [AGE_CHUNK_SIZE + 1], [7, 65529, 65536, 100000]]) {
      const e = AgeEncryptor.fromFileKey(header, fileKey, nonce);
      const parts: Buffer[] = [];
      let pos = 0;
      for (let i = 0; pos < plain.length; i++) {
        const n = split[i % split.length]!;
        parts.push(...e.write(plain.subarray(pos, pos + n)));
        pos += n;
      }
      parts.push(...e.finish());
      outputs.push(Buffer.concat(parts));
    }
    for (const o of outputs) expect(o.equals(outputs[0]!)).toBe(true);
    const d = new Decrypter();
    d.addIdentity(x.identity);
    expect(Buffer.from(await d.decrypt(outputs[0]!)).equals(plain)).toBe(true);
  });

  it('the caller may reuse its input buffer after write() returns', async () => {
    const plain = pseudoRandomBytes(300_000, 8);
    const e = await AgeEncryptor.create([x.recipient]);
    const scratch = Buffer.alloc(10_000);
    const parts: Buffer[] = [];
    for (let pos = 0; pos < plain.length; pos += scratch.length) {
      const n = plain.copy(scratch, 0, pos, pos + scratch.length);
      parts.push(...e.write(scratch.subarray(0, n)));
      scratch.fill(0xee);
    }
    parts.push(...e.finish());
    expect((await openBytes(Buffer.concat(parts), xIds)).equals(plain)).toBe(true);
  });
});

describe('files made by the age CLI and by typage open with ours', () => {
  async function checkAllReaders(file: Buffer, ids: AgeIdentities, plain: Buffer): Promise<void> {
    expect((await openBytes(file, ids)).equals(plain)).toBe(true);
    expect((await throughTransform(file, decryptStream(ids), [1, 13, 65552, 4096, 100_003])).equals(plain)).toBe(true);
    const headerLength = parseAgeHeaderLength(file);
    const size = agePlaintextSize(headerLength, file.length);
    expect(size).toBe(plain.length);
    const reader = await AgePayloadReader.open(file.subarray(0, headerLength + 16), ids);
    const ranges: Array<[number, number]> = [
      [0, Math.min(1, size)],
      [0, size],
      [Math.max(0, size - 1), Math.min(1, size)],
      [Math.floor(size / 2), Math.floor(size / 4)],
    ];
    if (size > AGE_CHUNK_SIZE) ranges.push([AGE_CHUNK_SIZE - 1, 2], [AGE_CHUNK_SIZE, size - AGE_CHUNK_SIZE]);
    for (const [off, len] of ranges) {
      const { start, end } = reader.cipherRangeFor(off, len, size);
      const got = reader.decryptRange(file.subarray(start, end), off, len, size);
      expect(got.equals(plain.subarray(off, off + len))).toBe(true);
    }
  }

  for (const [label, size] of SIZES) {
    it(`age -e -r (X25519), ${label}`, async () => {
      const plain = pseudoRandomBytes(size, size + 21);
      const src = join(tmp.dir, `cli-r-${size}.src`);
      const f = join(tmp.dir, `cli-r-${size}.age`);
      await writeFile(src, plain);
      await age(['-e', '-r', x.recipient, '-o', f, src]);
      await checkAllReaders(await readFile(f), xIds, plain);
    });

    it(`typage Encrypter, X25519 and hybrid recipients, ${label}`, async () => {
      const plain = pseudoRandomBytes(size, size + 31);
      for (const [rcpt, ids] of [
        [x.recipient, xIds],
        [pq.recipient, pqIds],
      ] as const) {
        const e = new Encrypter();
        e.addRecipient(rcpt);
        const file = Buffer.from(await e.encrypt(plain));
        await checkAllReaders(file, ids, plain);
      }
    });
  }

  it('age -e -i (encrypt to an identity file) and several -r recipients', async () => {
    const plain = pseudoRandomBytes(777_777, 42);
    const src = join(tmp.dir, 'cli-i.src');
    await writeFile(src, plain);
    const f1 = join(tmp.dir, 'cli-i.age');
    await age(['-e', '-i', x.path, '-o', f1, src]);
    await checkAllReaders(await readFile(f1), xIds, plain);
    const f2 = join(tmp.dir, 'cli-rr.age');
    await age(['-e', '-r', x2.recipient, '-r', x.recipient, '-o', f2, src]);
    await checkAllReaders(await readFile(f2), xIds, plain);
  });

  it('an age-keygen identity file loads and matches age-keygen -y', async () => {
    const kf = join(tmp.dir, 'keygen.txt');
    await ageKeygen(['-o', kf]);
    const ids = await AgeIdentities.fromFile(kf);
    const expected = (await ageKeygen(['-y', kf])).trim();
    expect(await ids.recipients()).toEqual([expected]);
    const plain = pseudoRandomBytes(100_000, 1);
    const src = join(tmp.dir, 'keygen.src');
    const f = join(tmp.dir, 'keygen.age');
    await writeFile(src, plain);
    await age(['-e', '-r', expected, '-o', f, src]);
    expect((await openBytes(await readFile(f), ids)).equals(plain)).toBe(true);
  });

  it('a hybrid file streamed from disk by typage opens with decryptStream (small read sizes)', async () => {
    const plain = pseudoRandomBytes(1_500_000, 77);
    const e = new Encrypter();
    e.addRecipient(pq.recipient);
    const f = join(tmp.dir, 'typage-pq.age');
    await writeFile(f, await e.encrypt(plain));
    const got = await collect(createReadStream(f, { highWaterMark: 333 }).pipe(decryptStream(pqIds)));
    expect(got.equals(plain)).toBe(true);
  });

  it('merged identities open files for either key; unwrapFileKey agrees with typage decryptHeader', async () => {
    const both = AgeIdentities.merge(xIds, pqIds);
    expect(both.size).toBe(2);
    for (const r of [x.recipient, pq.recipient]) {
      const { header, fileKey } = await createAgeHeader([r]);
      expect((await unwrapFileKey(header, both)).equals(fileKey)).toBe(true);
      const d = new Decrypter();
      d.addIdentity(r === x.recipient ? x.identity : pq.identity);
      expect(Buffer.from(await d.decryptHeader(header)).equals(fileKey)).toBe(true);
    }
  });
});
