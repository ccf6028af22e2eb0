/** The `audit` config section and the entry format's own checks. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifierKey } from '../../audit/checkpoint';
import { decodeEntry, encodeEntry, parseEntryInput } from '../../audit/entry';
import { loadAuditSigningKey, resolveAudit } from '../../audit/open';
import { configFromObject } from '../../config/load';
import { SigningKey } from '../../engine/crypto/signing';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeline-audit-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cfg = (audit: unknown, storage: Record<string, unknown> = {}) => configFromObject({ storage, devstack: { dataDir: join(dir, 'data') }, audit }, { checkSecrets: false });

describe('audit config', () => {
  it('defaults: <bucket>-audit, origin from the bucket, governance for 365 days, key under the data folder', () => {
    const a = resolveAudit(cfg(undefined));
    expect(a).toMatchObject({
      bucket: 'lifeline-audit',
      prefix: 'audit',
      origin: 'lifeline-audit/lifeline-audit',
      lockMode: 'governance',
      lock: { mode: 'GOVERNANCE', retentionMs: 365 * 86_400_000 },
      signingKeyFile: join(dir, 'data', 'keys', 'audit-signing.pem'),
      publicKeys: [],
    });
    expect(resolveAudit(cfg({}, { bucket: 'prod-store', prefix: 'eu/' }))).toMatchObject({ bucket: 'prod-store-audit', prefix: 'eu/audit', origin: 'lifeline-audit/prod-store-audit' });
    expect(resolveAudit(cfg({ lockMode: 'compliance', retention: '30d' })).lock).toEqual({ mode: 'COMPLIANCE', retentionMs: 30 * 86_400_000 });
    expect(resolveAudit(cfg({ lockMode: 'none' })).lock).toBeNull();
  });

  it('public keys as base64 or verifier keys of this origin', () => {
    // A raw base64 key may contain '+' like a verifier key does: make sure this one does.
    let k = SigningKey.generate();
    while (!k.publicKey.includes('+')) k = SigningKey.generate();
    const origin = 'audit.example.com/lifeline';
    expect(resolveAudit(cfg({ origin, publicKeys: [k.publicKey, verifierKey(origin, k.publicKey)] })).publicKeys).toEqual([k.publicKey, k.publicKey]);
    expect(() => resolveAudit(cfg({ origin, publicKeys: [verifierKey('other/log', k.publicKey)] }))).toThrow(/audit.publicKeys\[0\]: verifier key is for other\/log/);
    expect(() => cfg({ publicKeys: ['not-a-key'] })).toThrow(/audit.publicKeys\[0\]: expected a base64 Ed25519 public key/);
    expect(() => cfg({ signingKey: 'inline-secret' })).toThrow(/inline secrets are not allowed/);
    expect(() => cfg({ lockMode: 'legal' })).toThrow(/audit.lockMode/);
    expect(() => cfg({ retention: 'forever' })).toThrow(/audit.retention: expected a duration/);
    expect(() => cfg({ bukcet: 'x' })).toThrow(/audit.bukcet/);
  });

  it('a too long default bucket name asks for audit.bucket', () => {
    expect(() => resolveAudit(cfg({}, { bucket: 'b'.repeat(60) }))).toThrow(/set audit.bucket/);
  });

  it('the signing key from a file (owner-only) or a variable; optional for verify-only hosts', async () => {
    expect(await loadAuditSigningKey(cfg({}), { optional: true })).toBeNull();
    await expect(loadAuditSigningKey(cfg({}))).rejects.toThrow(/audit.signingKey: .*not found.*lifeline audit init/);
    const k = SigningKey.generate();
    const file = join(dir, 'audit.pem');
    await writeFile(file, k.toPem(), { mode: 0o644 });
    await expect(loadAuditSigningKey(cfg({ signingKey: { file } }))).rejects.toThrow(/group\/others/);
    await writeFile(join(dir, 'audit2.pem'), k.toPem(), { mode: 0o600 });
    expect((await loadAuditSigningKey(cfg({ signingKey: { file: join(dir, 'audit2.pem') } })))!.keyId).toBe(k.keyId);
    process.env.LIFELINE_TEST_AUDIT_KEY = k.toPem();
    try {
      expect((await loadAuditSigningKey(cfg({ signingKey: { env: 'LIFELINE_TEST_AUDIT_KEY' } })))!.keyId).toBe(k.keyId);
    } finally {
      delete process.env.LIFELINE_TEST_AUDIT_KEY;
    }
    expect(await loadAuditSigningKey(cfg({ signingKey: { env: 'LIFELINE_TEST_AUDIT_KEY' } }), { optional: true })).toBeNull();
  });
});

describe('audit entries', () => {
  const key = SigningKey.generate();
  const input = parseEntryInput({ type: 'restore', action: 'completed', outcome: 'success', actor: { kind: 'user', id: 'alice' }, asset: 'llama', details: { files: 3 } });

  it('round-trip with a valid signature; any changed byte, moved signature or unknown signer is noticed', () => {
    const bytes = encodeEntry(input, 4, key);
    const ok = decodeEntry(bytes, [key.publicKey]);
    expect(ok).toMatchObject({ ok: true, signatureValid: true, entry: { seq: 4, type: 'restore', asset: 'llama', signer: key.keyId } });
    const changed = Buffer.from(bytes.toString().replace('"files":3', '"files":4'));
    expect(decodeEntry(changed, [key.publicKey])).toMatchObject({ ok: true, signatureValid: false, problem: 'signature does not verify' });
    expect(decodeEntry(bytes, [SigningKey.generate().publicKey])).toMatchObject({ signatureValid: false, problem: expect.stringMatching(/not a trusted audit key/) });
    const json = JSON.parse(bytes.toString());
    const moved = Buffer.from(JSON.stringify({ signature: json.signature, ...json }));
    expect(decodeEntry(moved, [key.publicKey])).toMatchObject({ signatureValid: false, problem: 'signature is not the last field' });
    expect(decodeEntry(Buffer.from([0xff, 0xfe]), [key.publicKey])).toEqual({ ok: false, problem: 'not UTF-8' });
    expect(decodeEntry(Buffer.from('{"v":2}'), [key.publicKey])).toMatchObject({ ok: false, problem: expect.stringMatching(/not an audit entry/) });
  });

  it('refuses oversized or secret-bearing details', () => {
    const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, i]));
    expect(() => parseEntryInput({ ...input, details: many })).toThrow(/at most 32 details/);
    expect(() => parseEntryInput({ ...input, details: { note: 'x'.repeat(1025) } })).toThrow(/details.note/);
    expect(() => parseEntryInput({ ...input, details: { note: SigningKey.generate().toPem() } })).toThrow(/must not hold secrets/);
    expect(() => parseEntryInput({ ...input, details: { secretAccessKey: 'x' } })).toThrow(/must not hold secrets/);
    expect(() => parseEntryInput({ ...input, snapshot: 'NOT-HEX' })).toThrow(/snapshot/);
  });
});
