/**
 * Packs are sealed into reused buffers through writeTo/finishTo (libsodium);
 * the bytes must be exactly those of the buffer-returning path (node:crypto),
 * which the interop tests prove against the age CLI and typage.
 */
import { randomBytes } from 'node:crypto';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { describe, expect, it } from 'vitest';
import { AgeEncryptor, AgeIdentities, createAgeHeader, openBytes } from '../../engine/crypto/age';

describe('AgeEncryptor.writeTo / finishTo', () => {
  const splits: Array<[string, number[]]> = [
    ['empty', []],
    ['one byte', [1]],
    ['exactly one chunk', [65536]],
    ['chunk plus one, in odd pieces', [1000, 64536, 1]],
    ['several chunks in uneven pieces', [70000, 3, 200000, 65536, 12345]],
  ];
  for (const [name, pieces] of splits) {
    it(`produces the same bytes as write()/finish(): ${name}`, async () => {
      const identity = await generateX25519Identity();
      const { header, fileKey } = await createAgeHeader([await identityToRecipient(identity)]);
      const nonce = randomBytes(16);
      const a = AgeEncryptor.fromFileKey(header, fileKey, nonce);
      const b = AgeEncryptor.fromFileKey(header, fileKey, nonce);
      const parts = pieces.map((n) => randomBytes(n));
      const viaBuffers: Buffer[] = [];
      const dst = Buffer.alloc(b.maxOutputFor(pieces.reduce((x, y) => x + y, 0)));
      let pos = 0;
      for (const p of parts) {
        viaBuffers.push(...a.write(p));
        pos = b.writeTo(p, dst, pos);
      }
      viaBuffers.push(...a.finish());
      pos = b.finishTo(dst, pos);
      const expected = Buffer.concat(viaBuffers);
      expect(pos).toBe(expected.length);
      expect(dst.subarray(0, pos).equals(expected)).toBe(true);
      expect((await openBytes(dst.subarray(0, pos), AgeIdentities.fromStrings([identity]))).equals(Buffer.concat(parts))).toBe(true);
    });
  }
});
