/**
 * Ed25519 signatures (node:crypto) for tamper-evident manifests and logs.
 *
 * Key id = hex of the first 16 bytes of SHA-256(raw 32-byte public key).
 * Public keys and signatures travel as standard base64.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { inspect } from 'node:util';
import { SecretFileError } from './errors';
import { assertOwnerOnly } from './key-files';

export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

const ED25519_PUBLIC_KEY_SIZE = 32;
const ED25519_SIGNATURE_SIZE = 64;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeB64Strict(s: string, size: number): Buffer | undefined {
  if (typeof s !== 'string' || !B64.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  if (b.length !== size || b.toString('base64') !== s) return undefined;
  return b;
}

function rawPublicKey(pub: KeyObject): Buffer {
  const jwk = pub.export({ format: 'jwk' });
  if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') {
    throw new SigningKeyError('not an Ed25519 key');
  }
  return Buffer.from(jwk.x, 'base64url');
}

function publicKeyObject(publicKeyB64: string): KeyObject {
  const raw = decodeB64Strict(publicKeyB64, ED25519_PUBLIC_KEY_SIZE);
  if (!raw) throw new SigningKeyError('invalid Ed25519 public key: expected base64 of 32 bytes');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
}

/** hex of the first 16 bytes of sha256(raw public key). */
export function keyIdOf(publicKeyB64: string): string {
  const raw = decodeB64Strict(publicKeyB64, ED25519_PUBLIC_KEY_SIZE);
  if (!raw) throw new SigningKeyError('invalid Ed25519 public key: expected base64 of 32 bytes');
  return createHash('sha256').update(raw).digest().subarray(0, 16).toString('hex');
}

export interface SigningKeyFromFileOptions {
  /** Accept key files readable by group/others. Default false. */
  allowInsecurePermissions?: boolean;
}

/** An Ed25519 private key. Never printable: toString/toJSON/inspect show only the key id. */
export class SigningKey {
  readonly #privateKey: KeyObject;
  readonly keyId: string;
  /** base64 of the raw 32-byte public key. */
  readonly publicKey: string;

  private constructor(privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== 'ed25519') throw new SigningKeyError('not an Ed25519 private key');
    this.#privateKey = privateKey;
    this.publicKey = rawPublicKey(createPublicKey(privateKey)).toString('base64');
    this.keyId = keyIdOf(this.publicKey);
  }

  /** Load a PKCS#8 PEM Ed25519 private key (as written by {@link toPem}); refuses group/world-readable files. */
  static async fromFile(path: string, opts: SigningKeyFromFileOptions = {}): Promise<SigningKey> {
    if (!opts.allowInsecurePermissions) {
      try {
        await assertOwnerOnly(path);
      } catch (err) {
        if (err instanceof SecretFileError) throw new SigningKeyError(err.message.replace('secret file', 'signing key file'));
        throw err;
      }
    }
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new SigningKeyError(
        code === 'ENOENT' ? `signing key file not found: ${path}` : `cannot read signing key file ${path}: ${code ?? 'I/O error'}`,
      );
    }
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch {
      throw new SigningKeyError(`signing key file ${path} does not contain a PEM private key`);
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new SigningKeyError(`signing key file ${path} holds a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
    }
    return new SigningKey(key);
  }

  static generate(): SigningKey {
    return new SigningKey(generateKeyPairSync('ed25519').privateKey);
  }

  /** base64 Ed25519 signature of `data`. */
  sign(data: Uint8Array): string {
    return sign(null, data, this.#privateKey).toString('base64');
  }

  /** PKCS#8 PEM of the private key (write it with writeSecretFile). */
  toPem(): string {
    return this.#privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  }

  toString(): string {
    return `SigningKey(${this.keyId})`;
  }
  toJSON(): string {
    return this.toString();
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Verify a base64 Ed25519 signature. Returns false for a wrong or malformed
 * signature; throws SigningKeyError if the public key itself is malformed.
 */
export function verifySignature(publicKeyB64: string, data: Uint8Array, signatureB64: string): boolean {
  const key = publicKeyObject(publicKeyB64);
  const sig = decodeB64Strict(signatureB64, ED25519_SIGNATURE_SIZE);
  if (!sig) return false;
  return verify(null, data, key, sig);
}
