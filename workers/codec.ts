/**
 * Encryption of Temporal payloads (workflow and activity inputs and results,
 * signals, queries, memos, heartbeat details, failure details) before they
 * leave the process: AES-256-GCM with a key from a secret reference
 * (`temporal.payloadEncryption.key`). The Temporal server and anyone reading
 * its histories see only `binary/encrypted` payloads and the key id.
 *
 * Codecs run outside the workflow sandbox (in clients and in the worker's main
 * thread), so node:crypto is fine here. Ids, search attributes and workflow
 * types are never encrypted by Temporal: Lifeline keeps them free of secrets
 * and file names anyway.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
// CommonJS package: under Node's ESM loader only its default export is reliable.
import proto from '@temporalio/proto';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { resolveFromRoot } from '../config/root';
import { readSecret } from '../config/secrets';
import { assertOwnerOnly } from '../engine/crypto/key-files';

const { temporal } = proto;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

const IV_BYTES = 12;
const TAG_BYTES = 16;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : undefined);

/** Key id: hex of the first 8 bytes of SHA-256 of the key (identifies it, reveals nothing). */
export function payloadKeyId(key: Uint8Array): string {
  return createHash('sha256').update(key).digest().subarray(0, 8).toString('hex');
}

export class AesGcmPayloadCodec implements PayloadCodec {
  readonly keyId: string;
  readonly #key: Buffer;

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('an AES-256-GCM payload key has 32 bytes');
    this.#key = Buffer.from(key);
    this.keyId = payloadKeyId(key);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      const plain = temporal.api.common.v1.Payload.encode(p).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
      // The key id is authenticated too, so it cannot be swapped.
      cipher.setAAD(Buffer.from(this.keyId));
      const body = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { encoding: enc(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: enc(this.keyId) }, data: body };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => {
      // Payloads written before encryption was turned on (or by a plain client) pass through.
      if (dec(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p;
      const keyId = dec(p.metadata?.[KEY_ID_METADATA]);
      if (keyId !== this.keyId) {
        throw new Error(`a Temporal payload is encrypted with key ${keyId ?? '(none)'}, but this process has key ${this.keyId} (temporal.payloadEncryption.key differs between processes)`);
      }
      const data = Buffer.from(p.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) throw new Error('an encrypted Temporal payload is truncated');
      const decipher = createDecipheriv('aes-256-gcm', this.#key, data.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(this.keyId));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new Error(`an encrypted Temporal payload (key ${keyId}) fails authentication: it was altered`);
      }
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }

  toString(): string {
    return `AesGcmPayloadCodec(${this.keyId})`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/** A new random key, as the text a key file holds (base64 of 32 bytes). */
export function generatePayloadKey(): string {
  return randomBytes(32).toString('base64');
}

/** Whether payloads are encrypted under this config: `auto` = production with a key configured. */
export function payloadEncryptionEnabled(config: LoadedConfig): boolean {
  const pe = config.temporal.payloadEncryption;
  if (pe.enabled === 'auto') return config.incident.environment === 'production' && pe.key !== undefined;
  return pe.enabled;
}

/** The codec this config asks for, or undefined when payload encryption is off. Key files must be owner-only. */
export async function loadPayloadCodec(config: LoadedConfig): Promise<AesGcmPayloadCodec | undefined> {
  if (!payloadEncryptionEnabled(config)) return undefined;
  const ref = config.temporal.payloadEncryption.key;
  const where = 'temporal.payloadEncryption.key';
  if (!ref) throw new UserError(`${where}: payload encryption is on but no key is configured`);
  if ('file' in ref) {
    try {
      await assertOwnerOnly(resolveFromRoot(ref.file, config.source.root));
    } catch (err) {
      throw new UserError(`${where}: ${(err as Error).message}`);
    }
  }
  const text = readSecret(ref, { source: config.source.file ?? 'built-in defaults', path: where, root: config.source.root }).trim();
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32 || key.toString('base64') !== text) {
    throw new UserError(`${where}: expected base64 of 32 random bytes (44 characters); create one with \`lifeline keys payload-key --out <file>\``);
  }
  return new AesGcmPayloadCodec(key);
}

/** The data converter for clients and workers of this config (undefined = Temporal's default, unencrypted). */
export async function temporalDataConverter(config: LoadedConfig): Promise<DataConverter | undefined> {
  const codec = await loadPayloadCodec(config);
  if (!codec) return undefined;
  return { payloadCodecs: [codec], failureConverterPath: FAILURE_CONVERTER_PATH };
}
