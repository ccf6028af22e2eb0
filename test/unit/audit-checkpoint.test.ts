/**
 * Checkpoints as C2SP signed notes: byte-identical to what Go's
 * golang.org/x/mod/sumdb/note produces for the same key and text
 * (fixtures/audit-kat.json), and every malformed or forged note refused.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NoteError,
  formatCheckpoint,
  noteKeyHash,
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  verifierKey,
  verifyCheckpoint,
} from '../../audit/checkpoint';
import { SigningKey } from '../../engine/crypto/signing';

const kat = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'audit-kat.json'), 'utf8')) as {
  note: string;
  vkey: string;
  publicKey: string;
  seedHex: string;
  roots: string[];
};
const ORIGIN = 'lifeline-audit/example';

let dir: string;
let key: SigningKey;
const other = SigningKey.generate();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeline-audit-cp-'));
  // PKCS#8 of an Ed25519 private key from its 32-byte seed.
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(kat.seedHex, 'hex')]);
  const pem = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64')}\n-----END PRIVATE KEY-----\n`;
  await writeFile(join(dir, 'key.pem'), pem, { mode: 0o600 });
  key = await SigningKey.fromFile(join(dir, 'key.pem'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof NoteError) return err.reason;
    throw err;
  }
  return 'accepted';
}

describe('signed notes (interoperable with Go sumdb/note)', () => {
  it('signs byte-for-byte like Go and derives the same verifier key', () => {
    expect(key.publicKey).toBe(kat.publicKey);
    const note = signCheckpoint({ origin: ORIGIN, size: 8, rootHash: Buffer.from(kat.roots[7]!, 'hex') }, key);
    expect(note).toBe(kat.note);
    expect(verifierKey(ORIGIN, key.publicKey)).toBe(kat.vkey);
    const v = parseVerifierKey(kat.vkey);
    expect(v).toEqual({ name: ORIGIN, publicKey: kat.publicKey, keyHash: noteKeyHash(ORIGIN, kat.publicKey) });
  });

  it("verifies Go's note and returns the checkpoint", () => {
    const { checkpoint, signers } = verifyCheckpoint(kat.note, ORIGIN, [other.publicKey, kat.publicKey]);
    expect(checkpoint).toEqual({ origin: ORIGIN, size: 8, rootHash: Buffer.from(kat.roots[7]!, 'hex') });
    expect(signers.map((s) => s.publicKey)).toEqual([kat.publicKey]);
  });

  it('refuses notes not signed by a trusted key, or with a changed text or signature', () => {
    expect(reason(() => verifyCheckpoint(kat.note, ORIGIN, [other.publicKey]))).toBe('unknown-key');
    expect(reason(() => verifyCheckpoint(kat.note, 'lifeline-audit/other', [kat.publicKey]))).toBe('unknown-key');
    expect(reason(() => verifyCheckpoint(kat.note.replace('\n8\n', '\n9\n'), ORIGIN, [kat.publicKey]))).toBe('bad-signature');
    const sigLine = kat.note.split('\n')[4]!;
    const sig = Buffer.from(sigLine.split(' ')[2]!, 'base64');
    sig[20]! ^= 1;
    const forged = kat.note.replace(sigLine, `— ${ORIGIN} ${sig.toString('base64')}`);
    expect(reason(() => verifyCheckpoint(forged, ORIGIN, [kat.publicKey]))).toBe('bad-signature');
    // A forger's checkpoint under the right name, signed with another key: its key hash is unknown.
    const byOther = signCheckpoint({ origin: ORIGIN, size: 8, rootHash: Buffer.alloc(32, 7) }, other);
    expect(reason(() => verifyCheckpoint(byOther, ORIGIN, [kat.publicKey]))).toBe('unknown-key');
  });

  it('a valid signature plus a failing one by another trusted key is refused (like note.Open)', () => {
    const text = formatCheckpoint({ origin: ORIGIN, size: 3, rootHash: Buffer.alloc(32, 1) });
    const good = signNote(text, key, ORIGIN);
    const otherSigned = signNote(formatCheckpoint({ origin: ORIGIN, size: 4, rootHash: Buffer.alloc(32, 1) }), other, ORIGIN);
    const otherLine = otherSigned.split('\n')[4]!;
    const both = `${good}${otherLine}\n`;
    expect(reason(() => verifyCheckpoint(both, ORIGIN, [key.publicKey]))).toBe('accepted'); // other key not trusted: ignored
    expect(reason(() => verifyCheckpoint(both, ORIGIN, [key.publicKey, other.publicKey]))).toBe('bad-signature');
  });

  it('refuses a signed checkpoint about another origin', () => {
    const note = signNote(formatCheckpoint({ origin: 'evil.example/log', size: 1, rootHash: Buffer.alloc(32) }), key, ORIGIN);
    expect(reason(() => verifyCheckpoint(note, ORIGIN, [key.publicKey]))).toBe('wrong-origin');
  });

  it('refuses malformed notes and checkpoints', () => {
    const t = kat.note;
    const malformed = [
      t.replace('\n\n', '\n'), // no signature block
      t.slice(0, -1), // no final newline
      t.replace('— ', '-- '),
      t.replace(ORIGIN, `${ORIGIN}\u0007`),
      `${t}— ${ORIGIN} !!!\n`,
    ];
    for (const m of malformed) expect(reason(() => openNote(m, [parseVerifierKey(kat.vkey)])), JSON.stringify(m)).toBe('malformed');
    for (const text of [`${ORIGIN}\n08\n${Buffer.alloc(32).toString('base64')}\n`, `${ORIGIN}\n8\n${Buffer.alloc(31).toString('base64')}\n`, `${ORIGIN}\n8\n`, `${ORIGIN}\n-1\n${Buffer.alloc(32).toString('base64')}\n`]) {
      expect(reason(() => parseCheckpoint(text)), text).toBe('malformed');
    }
    expect(reason(() => signNote('two\n\nparagraphs\n', key, ORIGIN))).toBe('malformed');
    expect(reason(() => signNote('x\n', key, 'bad name'))).toBe('malformed');
    expect(reason(() => parseVerifierKey(kat.vkey.replace(/\+[0-9a-f]{8}\+/, '+00000000+')))).toBe('malformed');
  });

  it('ignores extension lines after the root hash', () => {
    const text = `${ORIGIN}\n2\n${Buffer.alloc(32, 2).toString('base64')}\nextension line\n`;
    expect(parseCheckpoint(text)).toEqual({ origin: ORIGIN, size: 2, rootHash: Buffer.alloc(32, 2) });
  });
});
