/**
 * Checkpoints as C2SP signed notes (https://c2sp.org/signed-note,
 * https://c2sp.org/tlog-checkpoint), Ed25519 only:
 *
 *     <origin>\n
 *     <tree size, decimal>\n
 *     <base64 root hash>\n
 *     \n
 *     — <key name> <base64(key hash (4 bytes, big-endian) ‖ Ed25519 signature (64 bytes))>\n
 *
 * The signature covers the note text (the first three lines, final newline
 * included). key hash = first 4 bytes of SHA-256(key name ‖ 0x0A ‖ 0x01 ‖
 * raw 32-byte public key). Lifeline signs its checkpoints under the log's
 * origin as key name, so any signed-note implementation (Go's
 * golang.org/x/mod/sumdb/note, for one) verifies them with the verifier key
 * `<origin>+<key hash hex>+<base64(0x01 ‖ public key)>` ({@link verifierKey}).
 */
import { createHash } from 'node:crypto';
import { type SigningKey, verifySignature } from '../engine/crypto/signing';
import { HASH_SIZE } from './merkle';

export interface Checkpoint {
  origin: string;
  /** number of entries the tree holds */
  size: number;
  /** RFC 6962 root hash (32 bytes) */
  rootHash: Buffer;
}

/** A key that may sign notes: its name and base64 raw Ed25519 public key. */
export interface NoteVerifier {
  name: string;
  publicKey: string;
  keyHash: number;
}

export type NoteErrorReason = 'malformed' | 'unknown-key' | 'bad-signature' | 'wrong-origin';

export class NoteError extends Error {
  override name = 'NoteError';
  constructor(
    message: string,
    readonly reason: NoteErrorReason,
  ) {
    super(message);
  }
}

const ALG_ED25519 = 0x01;
const EM_DASH = '\u2014';
const MAX_NOTE_BYTES = 1 << 20;
const MAX_SIGNATURES = 100;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeB64(s: string): Buffer | undefined {
  if (!B64.test(s) || s.length % 4 !== 0) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.toString('base64') === s ? b : undefined;
}

/** A valid note key name: non-empty, no Unicode space, no '+'. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name) && !/[\u0000-\u001f\u007f]/.test(name);
}

function rawPublicKey(publicKeyB64: string): Buffer {
  const raw = decodeB64(publicKeyB64);
  if (!raw || raw.length !== 32) throw new NoteError('invalid Ed25519 public key: expected base64 of 32 bytes', 'malformed');
  return raw;
}

/** key hash = first 4 bytes (big-endian uint32) of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key). */
export function noteKeyHash(name: string, publicKeyB64: string): number {
  const h = createHash('sha256')
    .update(Buffer.from(`${name}\n`, 'utf8'))
    .update(Buffer.from([ALG_ED25519]))
    .update(rawPublicKey(publicKeyB64))
    .digest();
  return h.readUInt32BE(0);
}

export function noteVerifier(name: string, publicKeyB64: string): NoteVerifier {
  if (!isValidKeyName(name)) throw new NoteError(`invalid note key name ${JSON.stringify(name)}`, 'malformed');
  return { name, publicKey: publicKeyB64, keyHash: noteKeyHash(name, publicKeyB64) };
}

/** The C2SP verifier key string `<name>+<key hash, 8 hex>+<base64(0x01 ‖ public key)>`. */
export function verifierKey(name: string, publicKeyB64: string): string {
  const v = noteVerifier(name, publicKeyB64);
  const body = Buffer.concat([Buffer.from([ALG_ED25519]), rawPublicKey(publicKeyB64)]).toString('base64');
  return `${name}+${v.keyHash.toString(16).padStart(8, '0')}+${body}`;
}

/** Parse a verifier key string; throws NoteError when it is malformed or its hash does not match. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  // The name has no '+'; the base64 key may.
  const m = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(vkey);
  if (!m) throw new NoteError('malformed verifier key: expected <name>+<hash>+<key>', 'malformed');
  const [, name, hash, key] = m as unknown as [string, string, string, string];
  const raw = decodeB64(key);
  if (!isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(hash) || !raw || raw.length !== 33 || raw[0] !== ALG_ED25519) {
    throw new NoteError('malformed verifier key: expected <name>+<8 hex>+<base64 of 0x01 and a 32-byte Ed25519 key>', 'malformed');
  }
  const v = noteVerifier(name, raw.subarray(1).toString('base64'));
  if (v.keyHash !== parseInt(hash, 16)) throw new NoteError('verifier key hash does not match its name and key', 'malformed');
  return v;
}

// ---- notes ---------------------------------------------------------------------------

function checkText(text: string): void {
  if (text.length === 0 || !text.endsWith('\n')) throw new NoteError('note text must be non-empty and end with a newline', 'malformed');
  if (text.includes('\n\n')) throw new NoteError('note text must not contain blank lines', 'malformed');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw new NoteError('note text must not contain control characters', 'malformed');
}

/** Sign a note text (ending in a newline) under `name`. */
export function signNote(text: string, key: SigningKey, name: string): string {
  checkText(text);
  const v = noteVerifier(name, key.publicKey);
  const sig = Buffer.from(key.sign(Buffer.from(text, 'utf8')), 'base64');
  const hash = Buffer.alloc(4);
  hash.writeUInt32BE(v.keyHash, 0);
  return `${text}\n${EM_DASH} ${name} ${Buffer.concat([hash, sig]).toString('base64')}\n`;
}

export interface NoteSignature {
  name: string;
  keyHash: number;
  signature: Buffer;
}

/** Split a signed note into its text and signature lines (not verified). */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) throw new NoteError('note too large', 'malformed');
  if (note.includes('\uFFFD')) throw new NoteError('note is not valid UTF-8', 'malformed');
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new NoteError('note contains control characters', 'malformed');
  if (!note.endsWith('\n')) throw new NoteError('note must end with a newline', 'malformed');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('note has no signature block (blank line)', 'malformed');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw new NoteError('note has too many signatures', 'malformed');
  const signatures: NoteSignature[] = [];
  for (const line of lines) {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    const raw = m ? decodeB64(m[2]!) : undefined;
    if (!m || !isValidKeyName(m[1]!) || !raw || raw.length < 5) throw new NoteError('malformed signature line', 'malformed');
    signatures.push({ name: m[1]!, keyHash: raw.readUInt32BE(0), signature: raw.subarray(4) });
  }
  return { text, signatures };
}

/**
 * Verify a signed note against trusted keys: at least one signature by a
 * trusted key, and every signature by a trusted key valid (like Go's
 * note.Open). Returns the text and the keys that signed it.
 */
export function openNote(note: string, trusted: readonly NoteVerifier[]): { text: string; signers: NoteVerifier[] } {
  const { text, signatures } = parseNote(note);
  const data = Buffer.from(text, 'utf8');
  const signers: NoteVerifier[] = [];
  for (const s of signatures) {
    const v = trusted.find((t) => t.name === s.name && t.keyHash === s.keyHash);
    if (!v) continue;
    if (s.signature.length !== 64 || !verifySignature(v.publicKey, data, s.signature.toString('base64'))) {
      throw new NoteError(`signature by ${v.name}+${v.keyHash.toString(16).padStart(8, '0')} does not verify`, 'bad-signature');
    }
    if (!signers.includes(v)) signers.push(v);
  }
  if (signers.length === 0) {
    const names = signatures.map((s) => `${s.name}+${s.keyHash.toString(16).padStart(8, '0')}`).join(', ') || 'none';
    throw new NoteError(`not signed by a trusted key (signed by: ${names})`, 'unknown-key');
  }
  return { text, signers };
}

// ---- checkpoints ---------------------------------------------------------------------

export function formatCheckpoint(cp: Checkpoint): string {
  if (!isValidKeyName(cp.origin)) throw new NoteError(`invalid origin ${JSON.stringify(cp.origin)}`, 'malformed');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw new NoteError(`invalid tree size ${cp.size}`, 'malformed');
  if (cp.rootHash.length !== HASH_SIZE) throw new NoteError('root hash must be 32 bytes', 'malformed');
  return `${cp.origin}\n${cp.size}\n${cp.rootHash.toString('base64')}\n`;
}

/** Parse a checkpoint note text (extension lines after the root hash are allowed and ignored). */
export function parseCheckpoint(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length < 4 || lines[lines.length - 1] !== '') throw new NoteError('checkpoint needs origin, size and root hash lines', 'malformed');
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (!isValidKeyName(origin)) throw new NoteError('checkpoint origin is not a valid name', 'malformed');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) {
    throw new NoteError('checkpoint tree size is not a decimal number without leading zeros', 'malformed');
  }
  const root = decodeB64(rootText);
  if (!root || root.length !== HASH_SIZE) throw new NoteError('checkpoint root hash is not base64 of 32 bytes', 'malformed');
  return { origin, size: Number(sizeText), rootHash: root };
}

/** The signed note of a checkpoint, signed under its origin. */
export function signCheckpoint(cp: Checkpoint, key: SigningKey): string {
  return signNote(formatCheckpoint(cp), key, cp.origin);
}

/**
 * Verify a checkpoint note: signed under `origin` by one of the trusted public
 * keys (base64 raw Ed25519), and about `origin`. Throws NoteError otherwise.
 */
export function verifyCheckpoint(note: string, origin: string, trustedPublicKeys: readonly string[]): { checkpoint: Checkpoint; signers: NoteVerifier[] } {
  const trusted = trustedPublicKeys.map((k) => noteVerifier(origin, k));
  const { text, signers } = openNote(note, trusted);
  const checkpoint = parseCheckpoint(text);
  if (checkpoint.origin !== origin) throw new NoteError(`checkpoint is for origin ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(origin)}`, 'wrong-origin');
  return { checkpoint, signers };
}
