/** The Temporal payload codec: AES-256-GCM round trip, what the server sees, wrong keys and tampering, and when config turns it on. */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { AesGcmPayloadCodec, generatePayloadKey, loadPayloadCodec, payloadEncryptionEnabled, temporalDataConverter } from '../../workers/codec';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeline-codec-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const key = () => Buffer.from(generatePayloadKey(), 'base64');
const text = (b: Uint8Array | null | undefined) => new TextDecoder().decode(b ?? new Uint8Array());

describe('AesGcmPayloadCodec', () => {
  it('encrypts every payload (binary/encrypted + key id) and decodes it back', async () => {
    const codec = new AesGcmPayloadCodec(key());
    const plain = [defaultPayloadConverter.toPayload({ asset: 'secret-model', path: 'weights/private.bin' }), defaultPayloadConverter.toPayload(null)];
    const sealed = await codec.encode(plain);
    for (const p of sealed) {
      expect(text(p.metadata!.encoding)).toBe('binary/encrypted');
      expect(text(p.metadata!['encryption-key-id'])).toBe(codec.keyId);
      expect(Buffer.from(p.data!).includes('private.bin')).toBe(false);
    }
    expect(Buffer.from(sealed[0]!.data!).equals(Buffer.from((await codec.encode([plain[0]!]))[0]!.data!))).toBe(false); // fresh IV each time
    const back = await codec.decode(sealed);
    expect(defaultPayloadConverter.fromPayload(back[0]!)).toEqual({ asset: 'secret-model', path: 'weights/private.bin' });
    expect(defaultPayloadConverter.fromPayload(back[1]!)).toBeNull();
  });

  it('passes unencrypted payloads through, refuses another key and altered ciphertext with clear messages', async () => {
    const a = new AesGcmPayloadCodec(key());
    const b = new AesGcmPayloadCodec(key());
    const plain = defaultPayloadConverter.toPayload('x');
    expect(await a.decode([plain])).toEqual([plain]);
    const sealed = await a.encode([plain]);
    await expect(b.decode(sealed)).rejects.toThrow(`encrypted with key ${a.keyId}, but this process has key ${b.keyId}`);
    const data = Buffer.from(sealed[0]!.data!);
    data[20] = data[20]! ^ 1;
    await expect(a.decode([{ ...sealed[0]!, data }])).rejects.toThrow(/fails authentication: it was altered/);
    expect(String(a)).toBe(`AesGcmPayloadCodec(${a.keyId})`);
    expect(JSON.stringify({ a })).not.toMatch(/[A-Za-z0-9+/]{43}=/);
  });
});

describe('payload encryption config', () => {
  const cfg = (temporal: object, incident: object = {}) => configFromObject({ temporal, incident }, { checkSecrets: false });

  it('auto: on in production when a key is configured; off without a key or outside production; true needs a key', async () => {
    const file = join(dir, 'k1');
    await writeFile(file, generatePayloadKey() + '\n', { mode: 0o600 });
    expect(payloadEncryptionEnabled(cfg({}))).toBe(false);
    expect(payloadEncryptionEnabled(cfg({ payloadEncryption: { key: { file } } }))).toBe(true);
    expect(payloadEncryptionEnabled(cfg({ payloadEncryption: { key: { file } } }, { environment: 'staging' }))).toBe(false);
    expect(payloadEncryptionEnabled(cfg({ payloadEncryption: { enabled: true, key: { file } } }, { environment: 'development' }))).toBe(true);
    expect(payloadEncryptionEnabled(cfg({ payloadEncryption: { enabled: false, key: { file } } }))).toBe(false);
    expect(() => cfg({ payloadEncryption: { enabled: true } })).toThrow(/temporal\.payloadEncryption\.key: required when payloadEncryption\.enabled is true/);
    expect(() => cfg({ payloadEncryption: { key: 'abc' } })).toThrow(/temporal\.payloadEncryption\.key: inline secrets are not allowed/);
    const dc = await temporalDataConverter(cfg({ payloadEncryption: { key: { file } } }));
    expect(dc?.payloadCodecs).toHaveLength(1);
    expect(dc?.failureConverterPath).toMatch(/failure-converter\.cjs$/);
    expect(await temporalDataConverter(cfg({}))).toBeUndefined();
  });

  it('refuses a key file others can read, and a key that is not 32 bytes of base64, naming the key path', async () => {
    const loose = join(dir, 'k2');
    await writeFile(loose, generatePayloadKey());
    await chmod(loose, 0o644);
    await expect(loadPayloadCodec(cfg({ payloadEncryption: { key: { file: loose } } }))).rejects.toThrow(/temporal\.payloadEncryption\.key: .*accessible by group\/others/);
    const short = join(dir, 'k3');
    await writeFile(short, Buffer.alloc(16).toString('base64'), { mode: 0o600 });
    await expect(loadPayloadCodec(cfg({ payloadEncryption: { key: { file: short } } }))).rejects.toThrow(/temporal\.payloadEncryption\.key: expected base64 of 32 random bytes/);
  });
});

describe('LIFELINE_TEMPORAL_PAYLOAD_KEY_FILE', () => {
  it('turns payload encryption on for a deployment configured by environment variables (production)', async () => {
    const { loadConfig } = await import('../../config/load');
    const file = join(dir, 'k-env');
    await writeFile(file, generatePayloadKey(), { mode: 0o600 });
    const c = loadConfig({ env: { LIFELINE_TEMPORAL_ADDRESS: 'temporal:7233', LIFELINE_TEMPORAL_PAYLOAD_KEY_FILE: file }, root: dir });
    expect(c.temporal.payloadEncryption.key).toEqual({ file });
    expect(payloadEncryptionEnabled(c)).toBe(true);
    expect((await loadPayloadCodec(c))?.keyId).toMatch(/^[0-9a-f]{16}$/);
  });
});
