/** Ed25519 signing keys: round trip, wrong key, altered data, key files, redaction. */
import { createHash, createPublicKey, verify } from 'node:crypto';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSecretFile } from '../../engine/crypto/key-files';
import { SigningKey, SigningKeyError, keyIdOf, verifySignature } from '../../engine/crypto/signing';
import { makeTempDir } from './crypto-helpers';

let tmp: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  tmp = await makeTempDir('lifeline-signing-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

const data = Buffer.from('{"manifest":"snapshot 42","sha256":"abc"}');

describe('SigningKey', () => {
  it('sign/verify round trip; key id and public key formats', () => {
    const k = SigningKey.generate();
    const sig = k.sign(data);
    expect(Buffer.from(sig, 'base64')).toHaveLength(64);
    expect(verifySignature(k.publicKey, data, sig)).toBe(true);
    expect(Buffer.from(k.publicKey, 'base64')).toHaveLength(32);
    expect(k.keyId).toMatch(/^[0-9a-f]{32}$/);
    expect(k.keyId).toBe(keyIdOf(k.publicKey));
    const expected = createHash('sha256').update(Buffer.from(k.publicKey, 'base64')).digest('hex').slice(0, 32);
    expect(k.keyId).toBe(expected);
  });

  it('signatures are standard Ed25519 (verify with a node KeyObject from the PEM)', () => {
    const k = SigningKey.generate();
    const pub = createPublicKey(k.toPem());
    expect(verify(null, data, pub, Buffer.from(k.sign(data), 'base64'))).toBe(true);
  });

  it('wrong key, altered data, altered or malformed signature all fail', () => {
    const k = SigningKey.generate();
    const other = SigningKey.generate();
    const sig = k.sign(data);
    expect(verifySignature(other.publicKey, data, sig)).toBe(false);
    const altered = Buffer.from(data);
    altered[3] = altered[3]! ^ 1;
    expect(verifySignature(k.publicKey, altered, sig)).toBe(false);
    const badSig = Buffer.from(sig, 'base64');
    badSig[10] = badSig[10]! ^ 0x80;
    expect(verifySignature(k.publicKey, data, badSig.toString('base64'))).toBe(false);
    expect(verifySignature(k.publicKey, data, 'not base64!')).toBe(false);
    expect(verifySignature(k.publicKey, data, sig.slice(0, 40))).toBe(false);
    expect(verifySignature(k.publicKey, data, '')).toBe(false);
    expect(() => verifySignature('AAAA', data, sig)).toThrow(SigningKeyError);
    expect(() => keyIdOf('x')).toThrow(SigningKeyError);
  });

  it('toPem → writeSecretFile → fromFile gives the same key', async () => {
    const k = SigningKey.generate();
    const p = join(tmp.dir, 'keys', 'signing.pem');
    await writeSecretFile(p, k.toPem());
    const loaded = await SigningKey.fromFile(p);
    expect(loaded.keyId).toBe(k.keyId);
    expect(loaded.publicKey).toBe(k.publicKey);
    expect(verifySignature(k.publicKey, data, loaded.sign(data))).toBe(true);
  });

  it('fromFile refuses insecure permissions, missing files and non-Ed25519 content, without echoing it', async () => {
    const k = SigningKey.generate();
    const pem = k.toPem();
    const p = join(tmp.dir, 'loose.pem');
    await writeSecretFile(p, pem);
    await chmod(p, 0o644);
    await expect(SigningKey.fromFile(p)).rejects.toThrow(/signing key file .* accessible by group\/others/);
    expect((await SigningKey.fromFile(p, { allowInsecurePermissions: true })).keyId).toBe(k.keyId);
    await expect(SigningKey.fromFile(join(tmp.dir, 'missing.pem'))).rejects.toThrow(/not found/);
    const junk = join(tmp.dir, 'junk.pem');
    await writeSecretFile(junk, 'SECRETSECRET not a pem');
    const err = await SigningKey.fromFile(junk).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/does not contain a PEM private key/);
    expect(err?.message).not.toContain('SECRETSECRET');
  });

  it('never prints the private key', () => {
    const k = SigningKey.generate();
    const pemBody = k.toPem().split('\n')[1]!;
    const outs = [String(k), JSON.stringify({ k }), inspect(k), inspect(k, { showHidden: true, depth: 5 })];
    for (const s of outs) {
      expect(s).not.toContain(pemBody);
      expect(s).toContain(k.keyId);
    }
    expect(String(k)).toBe(`SigningKey(${k.keyId})`);
  });
});
