/**
 * Negative paths: tampered headers and payloads, truncation (caught by the
 * last-chunk flag), wrong identities, malformed headers, and that the age CLI
 * agrees on the tampered files we reject.
 */
import { createCipheriv, hkdfSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AGE_CHUNK_SIZE,
  AGE_SEGMENT_SIZE,
  AgeAuthError,
  AgeEncryptor,
  AgeFormatError,
  AgeHeaderIncompleteError,
  AgeIdentities,
  AgeNoIdentityMatchError,
  AgePayloadReader,
  AgeRecipientError,
  createAgeHeader,
  decryptStream,
  encryptStream,
  openBytes,
  parseAgeHeaderLength,
  sealBytes,
  unwrapFileKey,
} from '../../engine/crypto/age';
import { age, makeIdentityFile, makeTempDir, pseudoRandomBytes } from './crypto-helpers';

const C = AGE_CHUNK_SIZE;
const NO_MATCH = 'no identity matches this file: it was encrypted for other recipients (wrong tenant or revoked key?)';

let tmp: { dir: string; cleanup: () => Promise<void> };
let x: { path: string; identity: string; recipient: string };
let other: { path: string; identity: string; recipient: string };
let pq: { path: string; identity: string; recipient: string };
let ids: AgeIdentities;
let otherIds: AgeIdentities;
let plain: Buffer;
let file: Buffer;
let headerLength: number;

beforeAll(async () => {
  tmp = await makeTempDir();
  x = await makeIdentityFile(tmp.dir, 'x.txt', 'x25519');
  other = await makeIdentityFile(tmp.dir, 'other.txt', 'x25519');
  pq = await makeIdentityFile(tmp.dir, 'pq.txt', 'hybrid');
  ids = await AgeIdentities.fromFile(x.path);
  otherIds = await AgeIdentities.fromFile(other.path);
  plain = pseudoRandomBytes(3 * C + 1000, 5); // 4 chunks, the last partial
  file = await sealBytes(plain, [x.recipient]);
  headerLength = parseAgeHeaderLength(file);
});

afterAll(async () => {
  await tmp?.cleanup();
});

function flip(buf: Buffer, index: number, bit = 0): Buffer {
  const b = Buffer.from(buf);
  b[index] = b[index]! ^ (1 << bit);
  return b;
}

async function streamDecrypt(data: Buffer, identities: AgeIdentities, piece = 4096): Promise<Buffer> {
  const out: Buffer[] = [];
  function* gen() {
    for (let i = 0; i < data.length; i += piece) yield data.subarray(i, i + piece);
  }
  await pipeline(
    Readable.from(gen()),
    decryptStream(identities),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

async function cliRejects(data: Buffer, name: string): Promise<void> {
  const f = join(tmp.dir, name);
  await writeFile(f, data);
  await expect(age(['-d', '-i', x.path, f])).rejects.toThrow(/age -d failed/);
}

describe('header tampering', () => {
  it('every single-bit flip anywhere in the header is rejected with a typed error', async () => {
    const kinds = new Set<string>();
    for (let i = 0; i < headerLength; i++) {
      const bad = flip(file, i, i % 7);
      const err = await openBytes(bad, ids).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, `flip at header byte ${i} was accepted`).not.toBeNull();
      expect(
        err instanceof AgeFormatError || err instanceof AgeAuthError || err instanceof AgeNoIdentityMatchError,
        `flip at byte ${i}: unexpected ${String(err)}`,
      ).toBe(true);
      kinds.add((err as Error).name);
    }
    // The version line, stanza and MAC all get hit.
    expect(kinds).toContain('AgeFormatError');
    expect(kinds).toContain('AgeNoIdentityMatchError');
    expect(kinds).toContain('AgeAuthError');
  });

  it('a flipped MAC is an AgeAuthError (and the age CLI rejects it too)', async () => {
    const macPos = file.lastIndexOf('--- ', headerLength) + 4 + 10;
    // Swap in another base64 letter (a raw bit flip can yield a non-base64 byte, which is a format error instead).
    const bad = Buffer.from(file);
    bad[macPos] = bad[macPos] === 0x41 ? 0x42 : 0x41;
    await expect(openBytes(bad, ids)).rejects.toBeInstanceOf(AgeAuthError);
    await expect(unwrapFileKey(bad.subarray(0, headerLength), ids)).rejects.toThrow(/header MAC mismatch/);
    await cliRejects(bad, 'bad-mac.age');
  });

  it('a flipped stanza body bit: no identity can unwrap (age CLI agrees)', async () => {
    const bodyPos = file.indexOf('\n', file.indexOf('-> X25519')) + 5;
    const bad = flip(file, bodyPos, 0);
    const err = await openBytes(bad, ids).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    await cliRejects(bad, 'bad-stanza.age');
  });

  it('parseAgeHeaderLength: every proper prefix is incomplete, garbage is malformed', () => {
    for (let n = 0; n < headerLength; n++) {
      expect(() => parseAgeHeaderLength(file.subarray(0, n)), `prefix ${n}`).toThrow(AgeHeaderIncompleteError);
    }
    expect(parseAgeHeaderLength(file.subarray(0, headerLength))).toBe(headerLength);
    expect(() => parseAgeHeaderLength(Buffer.from('PK\x03\x04 not age'))).toThrow(AgeFormatError);
    expect(() => parseAgeHeaderLength(Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----\n'))).toThrow(/armored/);
    const base = 'age-encryption.org/v1\n-> X25519 abc\n';
    expect(() => parseAgeHeaderLength(Buffer.from(`${base}\n--- short\n`))).toThrow(/malformed MAC line/);
    expect(() => parseAgeHeaderLength(Buffer.from(`${base}A===\n`))).toThrow(/base64/);
    expect(() => parseAgeHeaderLength(Buffer.from(`${base}${'A'.repeat(65)}\n`))).toThrow(/64 columns/);
    expect(() => parseAgeHeaderLength(Buffer.from('age-encryption.org/v1\n->  X\n'))).toThrow(/empty argument/);
    expect(() => parseAgeHeaderLength(Buffer.from('age-encryption.org/v1\nhello\n'))).toThrow(/expected a stanza/);
    expect(() => parseAgeHeaderLength(Buffer.from('age-encryption.org/v1\n--- ' + 'A'.repeat(43) + '\n'))).toThrow(
      /no recipient stanzas/,
    );
    expect(() => parseAgeHeaderLength(Buffer.from('age-encryption.org/v1\n-> X\x00'))).toThrow(/invalid byte/);
    // CRLF line endings are not age.
    expect(() => parseAgeHeaderLength(Buffer.from('age-encryption.org/v1\r\n'))).toThrow(AgeFormatError);
  });

  it('a truncated header in a whole file is an AgeFormatError, and streams error out', async () => {
    await expect(openBytes(file.subarray(0, headerLength - 3), ids)).rejects.toBeInstanceOf(AgeFormatError);
    await expect(openBytes(file.subarray(0, headerLength + 10), ids)).rejects.toBeInstanceOf(AgeFormatError);
    await expect(streamDecrypt(file.subarray(0, headerLength + 10), ids)).rejects.toBeInstanceOf(AgeFormatError);
  });
});

describe('payload tampering and truncation', () => {
  const payloadStart = () => headerLength + 16;

  for (const chunk of [0, 1, 3]) {
    it(`a flipped bit in payload chunk ${chunk} is an AgeAuthError naming chunk ${chunk}`, async () => {
      const pos = payloadStart() + chunk * AGE_SEGMENT_SIZE + 100;
      const bad = flip(file, pos, 3);
      const e1 = await openBytes(bad, ids).catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(AgeAuthError);
      expect((e1 as AgeAuthError).chunkIndex).toBe(chunk);
      expect((e1 as Error).message).toContain(`chunk ${chunk}`);
      const e2 = await streamDecrypt(bad, ids, 1000).catch((e: unknown) => e);
      expect(e2).toBeInstanceOf(AgeAuthError);
      expect((e2 as AgeAuthError).chunkIndex).toBe(chunk);
      const reader = await AgePayloadReader.open(bad, ids);
      const { start, end } = reader.cipherRangeFor(chunk * C, 10, plain.length);
      expect(() => reader.decryptRange(bad.subarray(start, end), chunk * C, 10, plain.length)).toThrow(
        new RegExp(`chunk ${chunk}`),
      );
      // Chunks that were not touched still read fine by random access.
      const okChunk = chunk === 0 ? 1 : 0;
      const r2 = reader.cipherRangeFor(okChunk * C, 10, plain.length);
      expect(reader.decryptRange(bad.subarray(r2.start, r2.end), okChunk * C, 10, plain.length)).toEqual(
        plain.subarray(okChunk * C, okChunk * C + 10),
      );
    });
  }

  it('a flipped nonce byte breaks every chunk (chunk 0 reported)', async () => {
    const bad = flip(file, headerLength + 3);
    const err = await openBytes(bad, ids).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgeAuthError);
    expect((err as AgeAuthError).chunkIndex).toBe(0);
  });

  it('dropping the last chunk is detected by the last-chunk flag (ours and the age CLI)', async () => {
    const cut = file.subarray(0, payloadStart() + 3 * AGE_SEGMENT_SIZE); // 3 full chunks, valid size
    const err = await openBytes(cut, ids).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgeAuthError);
    expect((err as AgeAuthError).chunkIndex).toBe(2);
    expect((err as Error).message).toMatch(/final.*tampered with or truncated/);
    await expect(streamDecrypt(cut, ids)).rejects.toBeInstanceOf(AgeAuthError);
    await cliRejects(cut, 'cut.age');
    // Random access with the true size: the missing bytes are a truncated fetch.
    const reader = await AgePayloadReader.open(cut, ids);
    const { start, end } = reader.cipherRangeFor(3 * C, 10, plain.length);
    expect(() => reader.decryptRange(cut.subarray(start, end), 3 * C, 10, plain.length)).toThrow(/chunk 3 is truncated/);
    // Random access believing a shorter size: chunk 2 is not sealed as final.
    const short = 3 * C;
    const r = reader.cipherRangeFor(2 * C, 10, short);
    expect(() => reader.decryptRange(cut.subarray(r.start, r.end), 2 * C, 10, short)).toThrow(AgeAuthError);
  });

  it('a file of exactly N full chunks cut to N-1 is detected', async () => {
    const p = pseudoRandomBytes(2 * C, 12);
    const f = await sealBytes(p, [x.recipient]);
    const hl = parseAgeHeaderLength(f);
    const cut = f.subarray(0, hl + 16 + AGE_SEGMENT_SIZE);
    await expect(openBytes(cut, ids)).rejects.toBeInstanceOf(AgeAuthError);
  });

  it('truncation inside a chunk, removing the whole payload, or appending bytes is rejected', async () => {
    await expect(openBytes(file.subarray(0, file.length - 1), ids)).rejects.toBeInstanceOf(AgeAuthError);
    await expect(openBytes(file.subarray(0, file.length - 500), ids)).rejects.toThrow(/chunk 3/);
    await expect(openBytes(file.subarray(0, file.length - 1020), ids)).rejects.toThrow(/chunk 2 \(final\)/);
    await expect(openBytes(file.subarray(0, payloadStart()), ids)).rejects.toThrow(/truncated/);
    await expect(openBytes(Buffer.concat([file, Buffer.from([0])]), ids)).rejects.toBeInstanceOf(AgeAuthError);
    await expect(streamDecrypt(Buffer.concat([file, Buffer.alloc(AGE_SEGMENT_SIZE)]), ids)).rejects.toBeInstanceOf(AgeAuthError);
  });

  it('swapping two chunks is detected (chunk counter in the nonce)', async () => {
    const a = payloadStart();
    const swapped = Buffer.from(file);
    file.copy(swapped, a, a + AGE_SEGMENT_SIZE, a + 2 * AGE_SEGMENT_SIZE);
    file.copy(swapped, a + AGE_SEGMENT_SIZE, a, a + AGE_SEGMENT_SIZE);
    const err = await openBytes(swapped, ids).catch((e: unknown) => e);
    expect((err as AgeAuthError).chunkIndex).toBe(0);
  });

  it('hand-built payload per the spec opens; an empty final chunk after a full one is refused', async () => {
    const { header, fileKey } = await createAgeHeader([x.recipient]);
    const nonce = Buffer.alloc(16, 9);
    const key = Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
    const seal = (counter: number, last: boolean, p: Buffer): Buffer => {
      const n = Buffer.alloc(12);
      n.writeUInt32BE(counter, 7);
      n[11] = last ? 1 : 0;
      const c = createCipheriv('chacha20-poly1305', key, n, { authTagLength: 16 });
      return Buffer.concat([c.update(p), c.final(), c.getAuthTag()]);
    };
    const p0 = pseudoRandomBytes(C, 1);
    const canonical = Buffer.concat([header, nonce, seal(0, true, p0)]);
    expect((await openBytes(canonical, ids)).equals(p0)).toBe(true);
    // Byte-identical to what AgeEncryptor makes with the same header, key and nonce.
    const e = AgeEncryptor.fromFileKey(header, fileKey, nonce);
    expect(Buffer.concat([...e.write(p0), ...e.finish()]).equals(canonical)).toBe(true);
    const nonCanonical = Buffer.concat([header, nonce, seal(0, false, p0), seal(1, true, Buffer.alloc(0))]);
    await expect(openBytes(nonCanonical, ids)).rejects.toThrow(/final chunk 1 is empty/);
    await expect(streamDecrypt(nonCanonical, ids)).rejects.toBeInstanceOf(AgeFormatError);
  });
});

describe('identity mismatch', () => {
  it('wrong X25519 identity: AgeNoIdentityMatchError with the exact message', async () => {
    const err = await openBytes(file, otherIds).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgeNoIdentityMatchError);
    expect((err as Error).message).toBe(NO_MATCH);
    expect((err as AgeNoIdentityMatchError).stanzaTypes).toEqual(['X25519']);
    await expect(AgePayloadReader.open(file, otherIds)).rejects.toBeInstanceOf(AgeNoIdentityMatchError);
    await expect(streamDecrypt(file, otherIds)).rejects.toBeInstanceOf(AgeNoIdentityMatchError);
  });

  it('hybrid file with only an X25519 identity (and vice versa) does not match', async () => {
    const pqFile = await sealBytes(Buffer.from('pq'), [pq.recipient]);
    await expect(openBytes(pqFile, ids)).rejects.toThrow(NO_MATCH);
    const pqIds = await AgeIdentities.fromFile(pq.path);
    await expect(openBytes(file, pqIds)).rejects.toThrow(NO_MATCH);
  });

  it('scrypt (passphrase) files are not for identities', async () => {
    // A hand-made scrypt stanza header (MAC irrelevant: no identity even tries).
    const hdr = Buffer.from(`age-encryption.org/v1\n-> scrypt ${'A'.repeat(22)} 10\n${'A'.repeat(43)}\n--- ${'A'.repeat(43)}\n`);
    await expect(unwrapFileKey(hdr, ids)).rejects.toBeInstanceOf(AgeNoIdentityMatchError);
  });
});

describe('recipient validation', () => {
  it('rejects bad recipients with clear messages, before any data flows', async () => {
    await expect(createAgeHeader([])).rejects.toThrow(/no recipients/);
    await expect(createAgeHeader(['ssh-ed25519 AAAA'])).rejects.toThrow(AgeRecipientError);
    await expect(createAgeHeader([x.recipient.slice(0, -1) + (x.recipient.endsWith('q') ? 'p' : 'q')])).rejects.toThrow(
      /recipient #1 .* not a valid age recipient/,
    );
    expect(() => encryptStream(['nope'])).toThrow(AgeRecipientError);
  });

  it('refuses to mix post-quantum and classic recipients unless allowed', async () => {
    await expect(createAgeHeader([x.recipient, pq.recipient])).rejects.toThrow(/refusing to mix/);
    const { header } = await createAgeHeader([x.recipient, pq.recipient], { allowMixedPostQuantum: true });
    expect(header.toString('latin1')).toContain('-> X25519 ');
    expect(header.toString('latin1')).toContain('-> mlkem768x25519 ');
  });

  it('duplicate recipients produce one stanza', async () => {
    const { header } = await createAgeHeader([x.recipient, x.recipient]);
    expect(header.toString('latin1').split('-> X25519 ').length).toBe(2);
  });
});
