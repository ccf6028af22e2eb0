/**
 * age v1 (C2SP age-encryption.org/v1) for the storage engine.
 *
 * Split of work:
 *  - headers (X25519 and mlkem768x25519 hybrid stanzas, header MAC) are built
 *    and opened with typage (`age-encryption`), once per object;
 *  - the payload (STREAM of ChaCha20-Poly1305 over 64 KiB chunks) is sealed and
 *    opened natively with node:crypto, and can be read by random access: a
 *    ranged read of just the chunks covering a blob, authenticated chunk by
 *    chunk (including the last-chunk flag, so truncation is detected).
 *
 * Output is byte-for-byte the age format: files open with the `age` CLI and
 * with typage's Decrypter, and files they make open here (see
 * test/unit/crypto-age-interop.test.ts).
 *
 * Key material never appears in messages, String(), JSON or util.inspect.
 */
import sodium from 'sodium-native';
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { Transform, type TransformCallback } from 'node:stream';
import { inspect } from 'node:util';
import { Decrypter, Encrypter, identityToRecipient, type Recipient } from 'age-encryption';
import {
  AgeAuthError,
  AgeFormatError,
  AgeHeaderIncompleteError,
  AgeIdentityError,
  AgeNoIdentityMatchError,
  AgeRecipientError,
} from './errors';

export {
  AgeAuthError,
  AgeFormatError,
  AgeHeaderIncompleteError,
  AgeIdentityError,
  AgeNoIdentityMatchError,
  AgeRecipientError,
};

export const AGE_CHUNK_SIZE = 65536;
export const AGE_TAG_SIZE = 16;
export const AGE_NONCE_SIZE = 16;
/** Size of the file key wrapped in the header. */
export const AGE_FILE_KEY_SIZE = 16;
/** Ciphertext size of one full payload chunk (64 KiB + tag). */
export const AGE_SEGMENT_SIZE = AGE_CHUNK_SIZE + AGE_TAG_SIZE;
/** Headers longer than this are rejected as malformed (≈600 hybrid stanzas). */
export const AGE_MAX_HEADER_SIZE = 1 << 20;

const CHUNK = AGE_CHUNK_SIZE;
const TAG = AGE_TAG_SIZE;
const SEG = AGE_SEGMENT_SIZE;

const VERSION_LINE = Buffer.from('age-encryption.org/v1\n', 'latin1');
const ARMOR_BEGIN = Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----', 'latin1');
const LF = 0x0a;

// ---------------------------------------------------------------------------
// Identities
// ---------------------------------------------------------------------------

const X25519_PREFIX = 'AGE-SECRET-KEY-1';
const HYBRID_PREFIX = 'AGE-SECRET-KEY-PQ-1';

interface IdentityState {
  keys: readonly string[];
  decrypter: Decrypter;
  recipients?: Promise<string[]>;
}

/** Secrets live here, not on the instance, so no reflection or inspect path reaches them. */
const identityState = new WeakMap<AgeIdentities, IdentityState>();

/** Validate one identity string and add it to `decrypter`; throws a content-free message. */
function addIdentityTo(decrypter: Decrypter, key: string): 'x25519' | 'hybrid' | 'unsupported' | 'malformed' {
  const isHybrid = key.startsWith(HYBRID_PREFIX);
  const isX25519 = !isHybrid && key.startsWith(X25519_PREFIX);
  if (!isHybrid && !isX25519) return 'unsupported';
  try {
    // typage validates bech32 checksum, prefix and length here. Its error
    // messages may echo the key, so they are swallowed.
    decrypter.addIdentity(key);
  } catch {
    return 'malformed';
  }
  return isHybrid ? 'hybrid' : 'x25519';
}

function describeUnsupported(key: string): string {
  if (key.startsWith('AGE-PLUGIN-')) return 'age plugin identities are not supported';
  if (key.startsWith('age-encryption.org/v1') || key.startsWith('-----BEGIN AGE ENCRYPTED FILE')) {
    return 'passphrase-encrypted identity files are not supported (decrypt the file first)';
  }
  if (key.startsWith('-----BEGIN') || key.startsWith('ssh-')) return 'SSH keys are not supported as age identities';
  if (key.startsWith('age1')) return 'this is a public recipient (age1…), not an identity';
  return `not an age identity (expected ${X25519_PREFIX}… or ${HYBRID_PREFIX}…)`;
}

export interface AgeIdentitiesFromFileOptions {
  /** Accept identity files readable by group/others. Default false: such files are refused. */
  allowInsecurePermissions?: boolean;
}

/**
 * Identities loaded from age identity files (AGE-SECRET-KEY-1… X25519 and
 * AGE-SECRET-KEY-PQ-1… hybrid). Never printable: toString/toJSON/inspect
 * return "AgeIdentities(N keys)".
 */
export class AgeIdentities {
  private constructor(keys: string[]) {
    const unique = [...new Set(keys)];
    const decrypter = new Decrypter();
    unique.forEach((k, i) => {
      const kind = addIdentityTo(decrypter, k);
      if (kind === 'malformed') throw new AgeIdentityError(`identity #${i + 1} is malformed (bad checksum, length or case)`);
      if (kind === 'unsupported') throw new AgeIdentityError(`identity #${i + 1}: ${describeUnsupported(k)}`);
    });
    identityState.set(this, { keys: Object.freeze(unique), decrypter });
  }

  /**
   * Load an age identity file: one identity per line, '#' comments and blank
   * lines ignored (the layout age-keygen writes). Refuses files readable by
   * group/others unless `opts.allowInsecurePermissions`. Errors name the path
   * and line number, never the line's content.
   */
  static async fromFile(path: string, opts: AgeIdentitiesFromFileOptions = {}): Promise<AgeIdentities> {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw fileError(path, err);
    }
    if (!st.isFile()) throw new AgeIdentityError(`age identity file ${path} is not a regular file`, { path });
    const mode = st.mode & 0o777;
    if ((mode & 0o077) !== 0 && !opts.allowInsecurePermissions) {
      throw new AgeIdentityError(
        `age identity file ${path} is accessible by group/others (mode ${mode.toString(8).padStart(4, '0')}); ` +
          `refusing to use it: run chmod 600 ${path} (or set allowInsecurePermissions)`,
        { path },
      );
    }
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw fileError(path, err);
    }
    const keys: string[] = [];
    const decrypter = new Decrypter();
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === '' || line.startsWith('#')) continue;
      const kind = addIdentityTo(decrypter, line);
      if (kind === 'malformed') {
        throw new AgeIdentityError(
          `age identity file ${path}: line ${i + 1}: malformed age secret key (bad checksum, length or case)`,
          { path, line: i + 1 },
        );
      }
      if (kind === 'unsupported') {
        throw new AgeIdentityError(`age identity file ${path}: line ${i + 1}: ${describeUnsupported(line)}`, {
          path,
          line: i + 1,
        });
      }
      keys.push(line);
    }
    if (keys.length === 0) throw new AgeIdentityError(`age identity file ${path} contains no identities`, { path });
    return new AgeIdentities(keys);
  }

  /** Identities from strings (AGE-SECRET-KEY-1… / AGE-SECRET-KEY-PQ-1…). For tests and key management. */
  static fromStrings(identities: string[]): AgeIdentities {
    if (identities.length === 0) throw new AgeIdentityError('no identities given');
    return new AgeIdentities(identities.map((s) => s.trim()));
  }

  /** Union of several sets (duplicates removed). */
  static merge(...sets: AgeIdentities[]): AgeIdentities {
    const keys: string[] = [];
    for (const s of sets) keys.push(...stateOf(s).keys);
    if (keys.length === 0) throw new AgeIdentityError('no identities given');
    return new AgeIdentities(keys);
  }

  /** The public recipients (age1… / age1pq1…), in the order of the identities. */
  recipients(): Promise<string[]> {
    const st = stateOf(this);
    st.recipients ??= Promise.all(st.keys.map((k) => identityToRecipient(k)));
    return st.recipients.then((r) => [...r]);
  }

  /**
   * The recipient new data is encrypted to: the first identity's. A tenant
   * holds its current identity first and older ones after it, only for
   * reading what was written before a key rotation.
   */
  async currentRecipients(): Promise<string[]> {
    return (await this.recipients()).slice(0, 1);
  }

  /** The subset whose recipients satisfy `keep` (for rotation and revocation; keys never leave this module). */
  async select(keep: (recipient: string, index: number) => boolean): Promise<AgeIdentities | null> {
    const st = stateOf(this);
    const recipients = await this.recipients();
    const keys = st.keys.filter((_, i) => keep(recipients[i]!, i));
    return keys.length === 0 ? null : new AgeIdentities(keys);
  }

  get size(): number {
    return stateOf(this).keys.length;
  }

  toString(): string {
    const n = this.size;
    return `AgeIdentities(${n} key${n === 1 ? '' : 's'})`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

function stateOf(ids: AgeIdentities): IdentityState {
  const st = identityState.get(ids);
  if (!st) throw new TypeError('not an AgeIdentities instance');
  return st;
}

function fileError(path: string, err: unknown): AgeIdentityError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new AgeIdentityError(`age identity file not found: ${path}`, { path });
  if (code === 'EACCES' || code === 'EPERM') {
    return new AgeIdentityError(`cannot read age identity file ${path}: permission denied`, { path });
  }
  if (code === 'EISDIR') return new AgeIdentityError(`age identity file ${path} is a directory`, { path });
  return new AgeIdentityError(`cannot read age identity file ${path}: ${code ?? 'I/O error'}`, { path });
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

const B64_CHARS = /^[A-Za-z0-9+/]*$/;

function isCanonicalB64(s: string): boolean {
  if (!B64_CHARS.test(s) || s.length % 4 === 1) return false;
  return Buffer.from(s, 'base64').toString('base64').replace(/=+$/, '') === s;
}

interface ParsedHeader {
  length: number;
  stanzaTypes: string[];
}

function incomplete(data: Uint8Array, what: string): never {
  if (data.length >= AGE_MAX_HEADER_SIZE) {
    throw new AgeFormatError(`age header is longer than ${AGE_MAX_HEADER_SIZE} bytes`);
  }
  throw new AgeHeaderIncompleteError(`age header incomplete: data ends inside ${what} (${data.length} bytes)`, data.length);
}

/** Strict parse of the header at the start of data (C2SP age v1 grammar). */
function parseHeader(data: Uint8Array): ParsedHeader {
  const n = Math.min(data.length, VERSION_LINE.length);
  for (let i = 0; i < n; i++) {
    if (data[i] !== VERSION_LINE[i]) {
      if (data.length >= ARMOR_BEGIN.length && Buffer.from(data.buffer, data.byteOffset, ARMOR_BEGIN.length).equals(ARMOR_BEGIN)) {
        throw new AgeFormatError('ASCII-armored age files are not supported here (dearmor first)');
      }
      throw new AgeFormatError('not an age v1 file: the first line is not "age-encryption.org/v1"');
    }
  }
  if (data.length < VERSION_LINE.length) incomplete(data, 'the version line');

  let pos = VERSION_LINE.length;
  let lineNo = 2;
  const stanzaTypes: string[] = [];

  /** Next line [pos, lf) as a string, validating bytes; throws incomplete when there is no LF yet. */
  const nextLine = (what: string): string => {
    let end = data.indexOf(LF, pos);
    const scanEnd = end < 0 ? data.length : end;
    for (let i = pos; i < scanEnd; i++) {
      const b = data[i]!;
      if (b < 0x20 || b > 0x7e) throw new AgeFormatError(`age header line ${lineNo}: invalid byte 0x${b.toString(16).padStart(2, '0')}`);
    }
    if (end < 0) incomplete(data, what);
    if (end + 1 > AGE_MAX_HEADER_SIZE) throw new AgeFormatError(`age header is longer than ${AGE_MAX_HEADER_SIZE} bytes`);
    const s = Buffer.from(data.buffer, data.byteOffset + pos, end - pos).toString('latin1');
    pos = end + 1;
    lineNo++;
    return s;
  };

  for (;;) {
    const line = nextLine('a stanza or the MAC line');
    if (line.startsWith('-> ') || line === '->') {
      const args = line.split(' ').slice(1);
      if (args.length === 0 || args.some((a) => a.length === 0)) {
        throw new AgeFormatError(`age header line ${lineNo - 1}: malformed stanza line (empty argument)`);
      }
      stanzaTypes.push(args[0]!);
      // Body: base64 lines of exactly 64 columns, ended by a shorter (maybe empty) line.
      for (;;) {
        const body = nextLine('a stanza body');
        if (body.length > 64) throw new AgeFormatError(`age header line ${lineNo - 1}: stanza body line longer than 64 columns`);
        if (!isCanonicalB64(body)) throw new AgeFormatError(`age header line ${lineNo - 1}: stanza body is not canonical unpadded base64`);
        if (body.length < 64) break;
      }
      continue;
    }
    if (line.startsWith('---')) {
      if (!line.startsWith('--- ') || line.length !== 4 + 43 || !isCanonicalB64(line.slice(4))) {
        throw new AgeFormatError(`age header line ${lineNo - 1}: malformed MAC line`);
      }
      if (stanzaTypes.length === 0) throw new AgeFormatError('age header has no recipient stanzas');
      return { length: pos, stanzaTypes };
    }
    throw new AgeFormatError(`age header line ${lineNo - 1}: expected a stanza ("-> …") or the MAC line ("--- …")`);
  }
}

/**
 * Parse the header at the start of `data`; returns its byte length (through the
 * "--- <mac>\n" line). Throws AgeFormatError if malformed, or
 * AgeHeaderIncompleteError if `data` ends before the header does.
 */
export function parseAgeHeaderLength(data: Uint8Array): number {
  return parseHeader(data).length;
}

/** Recipient types and a short, non-secret label for error messages. */
function abbreviate(r: string): string {
  return r.length > 24 ? `${r.slice(0, 16)}…${r.slice(-6)}` : r;
}

function isPostQuantumRecipient(r: string): boolean {
  return r.startsWith('age1pq1') || r.startsWith('age1tagpq1');
}

export interface CreateAgeHeaderOptions {
  /**
   * Allow post-quantum (age1pq1…) and classic (age1…) recipients in one header.
   * Off by default, as in age ≥ 1.3: a classic stanza next to a hybrid one makes
   * the file only as strong as the classic one, defeating the point of PQ keys.
   */
  allowMixedPostQuantum?: boolean;
}

/** Validate recipients (clear errors) and return them deduplicated. */
function checkRecipients(recipients: string[], opts: CreateAgeHeaderOptions): string[] {
  if (recipients.length === 0) throw new AgeRecipientError('no recipients given');
  const unique = [...new Set(recipients)];
  const probe = new Encrypter();
  unique.forEach((r, i) => {
    if (typeof r !== 'string' || !r.startsWith('age1')) {
      throw new AgeRecipientError(`recipient #${i + 1} is not an age recipient (expected age1… or age1pq1…)`);
    }
    try {
      probe.addRecipient(r);
    } catch {
      throw new AgeRecipientError(`recipient #${i + 1} (${abbreviate(r)}) is not a valid age recipient (bad checksum or length)`);
    }
  });
  const pq = unique.filter(isPostQuantumRecipient).length;
  if (pq > 0 && pq < unique.length && !opts.allowMixedPostQuantum) {
    throw new AgeRecipientError(
      `refusing to mix ${pq} post-quantum (age1pq1…) and ${unique.length - pq} classic (age1…) recipients in one file: ` +
        'the classic stanza would make the file only as strong as X25519',
    );
  }
  return unique;
}

/**
 * Build a fresh age header for the recipients with a new random 16-byte file
 * key. header = everything up to and including the "--- <mac>\n" line.
 *
 * typage does not export a header builder, so its Encrypter encrypts an empty
 * payload with a capturing Recipient (returning no stanza) listed first; the
 * real recipients' stanzas and the header MAC are typage's own.
 */
export async function createAgeHeader(
  recipients: string[],
  opts: CreateAgeHeaderOptions = {},
): Promise<{ header: Buffer; fileKey: Buffer }> {
  const list = checkRecipients(recipients, opts);
  let captured: Uint8Array | undefined;
  const capture: Recipient = {
    wrapFileKey(fileKey: Uint8Array) {
      captured = Uint8Array.from(fileKey);
      return [];
    },
  };
  const enc = new Encrypter();
  enc.addRecipient(capture);
  for (const r of list) enc.addRecipient(r);
  const out = await enc.encrypt(new Uint8Array(0));
  if (!captured || captured.length !== AGE_FILE_KEY_SIZE) throw new Error('internal: file key was not captured');
  const headerLength = parseAgeHeaderLength(out);
  if (out.length !== headerLength + AGE_NONCE_SIZE + TAG) throw new Error('internal: unexpected typage output size');
  const fileKey = Buffer.from(captured);
  captured.fill(0);
  return { header: Buffer.from(out.subarray(0, headerLength)), fileKey };
}

/**
 * Unwrap the file key from a complete header using the identities; verifies
 * the header MAC. `header` may be followed by more bytes (they are ignored).
 */
export async function unwrapFileKey(header: Uint8Array, identities: AgeIdentities): Promise<Buffer> {
  const parsed = parseHeader(header);
  const { decrypter } = stateOf(identities);
  let fileKey: Uint8Array;
  try {
    fileKey = await decrypter.decryptHeader(header.subarray(0, parsed.length));
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (msg.startsWith('no identity matched')) throw new AgeNoIdentityMatchError(parsed.stanzaTypes);
    if (msg.includes('HMAC')) throw new AgeAuthError('age header MAC mismatch: the header was tampered with or corrupted');
    // Stanza-level errors from typage ("invalid X25519 stanza", …) carry no secrets.
    throw new AgeFormatError(`age header rejected: ${msg.slice(0, 200)}`);
  }
  if (fileKey.length !== AGE_FILE_KEY_SIZE) throw new AgeFormatError('age header: unwrapped file key has the wrong size');
  return Buffer.from(fileKey);
}

// ---------------------------------------------------------------------------
// Payload: STREAM (ChaCha20-Poly1305, 64 KiB chunks) with node:crypto
// ---------------------------------------------------------------------------

function payloadKeyOf(fileKey: Uint8Array, nonce: Uint8Array): KeyObject {
  if (fileKey.length !== AGE_FILE_KEY_SIZE) throw new RangeError(`file key must be ${AGE_FILE_KEY_SIZE} bytes`);
  if (nonce.length !== AGE_NONCE_SIZE) throw new RangeError(`payload nonce must be ${AGE_NONCE_SIZE} bytes`);
  return createSecretKey(Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32)));
}

/** Write the 12-byte STREAM nonce: 11-byte big-endian counter ‖ last flag. */
function setChunkNonce(nonce: Buffer, index: number, last: boolean): void {
  nonce[0] = 0;
  nonce[1] = 0;
  nonce[2] = 0;
  nonce.writeUInt32BE(Math.floor(index / 0x1_0000_0000), 3);
  nonce.writeUInt32BE(index >>> 0, 7);
  nonce[11] = last ? 1 : 0;
}

class ChunkCipher {
  private readonly nonce = Buffer.alloc(12);
  /** raw key bytes for libsodium, which seals into a caller's buffer (no per-chunk allocation) */
  readonly #raw: Buffer;
  constructor(private readonly key: KeyObject) {
    this.#raw = key.export();
  }

  /** Seal one chunk into `out` at `pos` (ciphertext ‖ tag, plain.length + 16 bytes); returns the bytes written. */
  sealInto(index: number, last: boolean, plain: Uint8Array, out: Buffer, pos: number): number {
    setChunkNonce(this.nonce, index, last);
    const n = plain.length + TAG;
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt(out.subarray(pos, pos + n), plain, null, null, this.nonce, this.#raw);
    return n;
  }

  /** Seal one chunk; returns [ciphertext, tag] (two buffers: no concat of 64 KiB). */
  seal(index: number, last: boolean, plain: Uint8Array): [Buffer, Buffer] {
    setChunkNonce(this.nonce, index, last);
    const c = createCipheriv('chacha20-poly1305', this.key, this.nonce, { authTagLength: TAG });
    const ct = c.update(plain);
    c.final();
    return [ct, c.getAuthTag()];
  }

  /**
   * Open one sealed chunk into `out` at `pos` (exactly sealed.length − 16 bytes);
   * nothing is written unless the tag verifies. Returns the plaintext length.
   */
  openInto(index: number, last: boolean, sealed: Uint8Array, out: Buffer, pos: number): number {
    if (sealed.length < TAG) {
      throw new AgeAuthError(`age payload chunk ${index} is truncated (${sealed.length} bytes, shorter than its tag)`, index);
    }
    setChunkNonce(this.nonce, index, last);
    const n = sealed.length - TAG;
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt(out.subarray(pos, pos + n), null, sealed, null, this.nonce, this.#raw);
    } catch {
      throw new AgeAuthError(
        last
          ? `age payload chunk ${index} (final) failed authentication: the file was tampered with or truncated`
          : `age payload chunk ${index} failed authentication: the file was tampered with`,
        index,
      );
    }
    return n;
  }

  /** Open one sealed chunk (ciphertext ‖ tag). Plaintext is returned only after the tag verified. */
  open(index: number, last: boolean, sealed: Uint8Array): Buffer {
    if (sealed.length < TAG) {
      throw new AgeAuthError(`age payload chunk ${index} is truncated (${sealed.length} bytes, shorter than its tag)`, index);
    }
    setChunkNonce(this.nonce, index, last);
    const d = createDecipheriv('chacha20-poly1305', this.key, this.nonce, { authTagLength: TAG });
    const pt = d.update(sealed.subarray(0, sealed.length - TAG));
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    try {
      d.final();
    } catch {
      throw new AgeAuthError(
        last
          ? `age payload chunk ${index} (final) failed authentication: the file was tampered with or truncated`
          : `age payload chunk ${index} failed authentication: the file was tampered with`,
        index,
      );
    }
    return pt;
  }

  [inspect.custom](): string {
    return 'ChunkCipher(<redacted>)';
  }
}

/** Size of an age file for P plaintext bytes: header + 16 + P + 16·max(1, ⌈P/65536⌉). */
export function ageCiphertextSize(headerLength: number, plaintextSize: number): number {
  return headerLength + AGE_NONCE_SIZE + plaintextSize + TAG * ageChunkCount(plaintextSize);
}

/** Number of payload chunks for P plaintext bytes: max(1, ⌈P/65536⌉). */
export function ageChunkCount(plaintextSize: number): number {
  return Math.max(1, Math.ceil(plaintextSize / CHUNK));
}

/**
 * Inverse of {@link ageCiphertextSize}: plaintext size of an age file of
 * `ciphertextSize` bytes whose header is `headerLength` bytes. Throws
 * AgeFormatError for sizes no age file can have (a truncated file).
 */
export function agePlaintextSize(headerLength: number, ciphertextSize: number): number {
  const payload = ciphertextSize - headerLength - AGE_NONCE_SIZE;
  if (payload < TAG) throw new AgeFormatError(`age file of ${ciphertextSize} bytes is truncated: no payload chunk`);
  if (payload === TAG) return 0;
  const full = Math.floor(payload / SEG);
  const rest = payload % SEG;
  if (rest > 0 && rest <= TAG) throw new AgeFormatError(`age file of ${ciphertextSize} bytes has an invalid payload size (truncated?)`);
  return payload - full * TAG - (rest > 0 ? TAG : 0);
}

/**
 * Incremental encryptor: header first, then the 16-byte nonce, then sealed
 * 64 KiB chunks. Holds back the last (possibly partial) chunk until finish()
 * so it can carry the last-chunk flag; an empty plaintext produces one empty
 * final chunk, as the spec requires.
 *
 * Buffers returned by write()/finish() belong to the caller. Input buffers are
 * not retained: full chunks are sealed straight from the caller's buffer and
 * the held-back tail is copied into one reused 64 KiB staging buffer.
 */
export class AgeEncryptor {
  readonly #header: Buffer;
  readonly #nonce: Buffer;
  readonly #cipher: ChunkCipher;
  readonly #staging = Buffer.allocUnsafe(CHUNK);
  #stagingLength = 0;
  #chunkIndex = 0;
  #started = false;
  #finished = false;
  #plaintextBytes = 0;
  #ciphertextBytes = 0;

  private constructor(header: Buffer, fileKey: Uint8Array, nonce: Buffer) {
    this.#header = header;
    this.#nonce = nonce;
    this.#cipher = new ChunkCipher(payloadKeyOf(fileKey, nonce));
  }

  /** New header and file key for `recipients` (see {@link createAgeHeader}). */
  static async create(recipients: string[], opts: CreateAgeHeaderOptions = {}): Promise<AgeEncryptor> {
    const { header, fileKey } = await createAgeHeader(recipients, opts);
    const e = new AgeEncryptor(header, fileKey, randomBytes(AGE_NONCE_SIZE));
    fileKey.fill(0);
    return e;
  }

  /**
   * Encryptor for an existing header and its file key (tests, or reusing one
   * header for several objects: each gets a fresh random nonce, hence its own
   * payload key). Never pass the same `nonce` twice for one file key.
   */
  static fromFileKey(header: Buffer, fileKey: Buffer, nonce?: Buffer): AgeEncryptor {
    if (parseAgeHeaderLength(header) !== header.length) {
      throw new AgeFormatError('header has trailing bytes after the MAC line');
    }
    return new AgeEncryptor(header, fileKey, nonce ? Buffer.from(nonce) : randomBytes(AGE_NONCE_SIZE));
  }

  get plaintextBytes(): number {
    return this.#plaintextBytes;
  }

  /** Bytes emitted so far. */
  get ciphertextBytes(): number {
    return this.#ciphertextBytes;
  }

  get headerLength(): number {
    return this.#header.length;
  }

  #start(out: Buffer[]): void {
    if (this.#started) return;
    this.#started = true;
    out.push(this.#header, this.#nonce);
    this.#ciphertextBytes += this.#header.length + this.#nonce.length;
  }

  #seal(plain: Uint8Array, last: boolean, out: Buffer[]): void {
    const [ct, tag] = this.#cipher.seal(this.#chunkIndex++, last, plain);
    if (ct.length > 0) out.push(ct);
    out.push(tag);
    this.#ciphertextBytes += ct.length + tag.length;
  }

  /**
   * Like write(), but seals into `dst` starting at `pos` (the same bytes write()
   * would return, laid end to end) and returns the new position. `dst` needs
   * room for maxOutputFor(plain.length) bytes. Used by packs, whose buffers are
   * reused: no allocation and no copy per 64 KiB chunk.
   */
  writeTo(plain: Uint8Array, dst: Buffer, pos: number): number {
    if (this.#finished) throw new Error('AgeEncryptor: write() after finish()');
    pos = this.#startTo(dst, pos);
    const len = plain.length;
    if (len === 0) return pos;
    this.#plaintextBytes += len;
    let i = 0;
    if (this.#stagingLength === CHUNK) {
      pos = this.#sealTo(this.#staging, false, dst, pos);
      this.#stagingLength = 0;
    }
    if (this.#stagingLength > 0) {
      const n = Math.min(CHUNK - this.#stagingLength, len);
      this.#staging.set(plain.subarray(0, n), this.#stagingLength);
      this.#stagingLength += n;
      i = n;
      if (i === len) return pos;
      pos = this.#sealTo(this.#staging, false, dst, pos);
      this.#stagingLength = 0;
    }
    while (len - i > CHUNK) {
      pos = this.#sealTo(plain.subarray(i, i + CHUNK), false, dst, pos);
      i += CHUNK;
    }
    this.#staging.set(plain.subarray(i), 0);
    this.#stagingLength = len - i;
    return pos;
  }

  /** Like finish(), into `dst` at `pos`; returns the new position. */
  finishTo(dst: Buffer, pos: number): number {
    if (this.#finished) throw new Error('AgeEncryptor: finish() called twice');
    pos = this.#startTo(dst, pos);
    this.#finished = true;
    pos = this.#sealTo(this.#staging.subarray(0, this.#stagingLength), true, dst, pos);
    this.#stagingLength = 0;
    return pos;
  }

  /** Upper bound of the bytes writeTo(n bytes) followed by finishTo() can produce from now on. */
  maxOutputFor(plaintextBytes: number): number {
    const pending = this.#stagingLength + plaintextBytes;
    return (this.#started ? 0 : this.#header.length + AGE_NONCE_SIZE) + pending + TAG * (Math.ceil(pending / CHUNK) + 1);
  }

  #startTo(dst: Buffer, pos: number): number {
    if (this.#started) return pos;
    this.#started = true;
    this.#header.copy(dst, pos);
    this.#nonce.copy(dst, pos + this.#header.length);
    this.#ciphertextBytes += this.#header.length + this.#nonce.length;
    return pos + this.#header.length + this.#nonce.length;
  }

  #sealTo(plain: Uint8Array, last: boolean, dst: Buffer, pos: number): number {
    const n = this.#cipher.sealInto(this.#chunkIndex++, last, plain, dst, pos);
    this.#ciphertextBytes += n;
    return pos + n;
  }

  /** Append plaintext; returns ciphertext produced so far (possibly empty). The first call's output starts with header+nonce. */
  write(plain: Uint8Array): Buffer[] {
    if (this.#finished) throw new Error('AgeEncryptor: write() after finish()');
    const out: Buffer[] = [];
    this.#start(out);
    const len = plain.length;
    if (len === 0) return out;
    this.#plaintextBytes += len;
    let pos = 0;
    // A full staged chunk is not the last one now that more data has arrived.
    if (this.#stagingLength === CHUNK) {
      this.#seal(this.#staging, false, out);
      this.#stagingLength = 0;
    }
    if (this.#stagingLength > 0) {
      const n = Math.min(CHUNK - this.#stagingLength, len);
      this.#staging.set(plain.subarray(0, n), this.#stagingLength);
      this.#stagingLength += n;
      pos = n;
      if (pos === len) return out;
      this.#seal(this.#staging, false, out); // full, and more data follows
      this.#stagingLength = 0;
    }
    // Seal full chunks straight from the caller's buffer while more data follows them.
    while (len - pos > CHUNK) {
      this.#seal(plain.subarray(pos, pos + CHUNK), false, out);
      pos += CHUNK;
    }
    this.#staging.set(plain.subarray(pos), 0);
    this.#stagingLength = len - pos;
    return out;
  }

  /** Seal the held-back final chunk (flag set). */
  finish(): Buffer[] {
    if (this.#finished) throw new Error('AgeEncryptor: finish() called twice');
    const out: Buffer[] = [];
    this.#start(out);
    this.#finished = true;
    this.#seal(this.#staging.subarray(0, this.#stagingLength), true, out);
    this.#stagingLength = 0;
    return out;
  }

  toString(): string {
    return `AgeEncryptor(${this.#plaintextBytes} bytes in)`;
  }
  toJSON(): string {
    return this.toString();
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * Incremental payload decryptor (the bytes after header+nonce). Holds back the
 * last segment until finish() so the last-chunk flag is checked: a file cut at
 * a chunk boundary fails authentication of what is then its final chunk.
 */
class PayloadDecryptor {
  readonly #cipher: ChunkCipher;
  readonly #staging = Buffer.allocUnsafe(SEG);
  #stagingLength = 0;
  #chunkIndex = 0;
  #finished = false;

  constructor(cipher: ChunkCipher) {
    this.#cipher = cipher;
  }

  write(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    const len = data.length;
    if (len === 0) return out;
    let pos = 0;
    if (this.#stagingLength === SEG) {
      out.push(this.#cipher.open(this.#chunkIndex++, false, this.#staging));
      this.#stagingLength = 0;
    }
    if (this.#stagingLength > 0) {
      const n = Math.min(SEG - this.#stagingLength, len);
      this.#staging.set(data.subarray(0, n), this.#stagingLength);
      this.#stagingLength += n;
      pos = n;
      if (pos === len) return out;
      out.push(this.#cipher.open(this.#chunkIndex++, false, this.#staging));
      this.#stagingLength = 0;
    }
    while (len - pos > SEG) {
      out.push(this.#cipher.open(this.#chunkIndex++, false, data.subarray(pos, pos + SEG)));
      pos += SEG;
    }
    this.#staging.set(data.subarray(pos), 0);
    this.#stagingLength = len - pos;
    return out;
  }

  finish(): Buffer[] {
    if (this.#finished) throw new Error('PayloadDecryptor: finish() called twice');
    this.#finished = true;
    const index = this.#chunkIndex;
    if (this.#stagingLength === 0) {
      throw new AgeAuthError(`age file is truncated: payload chunk ${index} is missing`, index);
    }
    const pt = this.#cipher.open(index, true, this.#staging.subarray(0, this.#stagingLength));
    if (pt.length === 0 && index > 0) {
      throw new AgeFormatError(`age payload: final chunk ${index} is empty (only an empty file may end with an empty chunk)`);
    }
    this.#stagingLength = 0;
    return [pt];
  }
}

/** Random access into an age file's payload. */
export class AgePayloadReader {
  readonly #cipher: ChunkCipher;
  readonly headerLength: number;

  private constructor(cipher: ChunkCipher, headerLength: number) {
    this.#cipher = cipher;
    this.headerLength = headerLength;
  }

  /** headerAndNonce: the first headerLength+16 bytes of the file (or more). Throws AgeHeaderIncompleteError if shorter. */
  static async open(headerAndNonce: Uint8Array, identities: AgeIdentities): Promise<AgePayloadReader> {
    const headerLength = parseAgeHeaderLength(headerAndNonce);
    if (headerAndNonce.length < headerLength + AGE_NONCE_SIZE) {
      throw new AgeHeaderIncompleteError(
        `age file prefix ends inside the payload nonce (${headerAndNonce.length} of ${headerLength + AGE_NONCE_SIZE} bytes)`,
        headerAndNonce.length,
      );
    }
    const fileKey = await unwrapFileKey(headerAndNonce.subarray(0, headerLength), identities);
    const nonce = headerAndNonce.subarray(headerLength, headerLength + AGE_NONCE_SIZE);
    const r = AgePayloadReader.fromFileKey(fileKey, Buffer.from(nonce), headerLength);
    fileKey.fill(0);
    return r;
  }

  static fromFileKey(fileKey: Buffer, nonce: Buffer, headerLength: number): AgePayloadReader {
    if (!Number.isSafeInteger(headerLength) || headerLength <= 0) throw new RangeError('headerLength must be a positive integer');
    return new AgePayloadReader(new ChunkCipher(payloadKeyOf(fileKey, nonce)), headerLength);
  }

  /** Offset of the first payload chunk in the file. */
  get payloadOffset(): number {
    return this.headerLength + AGE_NONCE_SIZE;
  }

  /**
   * Absolute byte range [start, end) of the age file to fetch to read
   * plaintext [offset, offset+length) of a payload of plaintextSize bytes, and
   * the index of its first chunk. For length 0 the range is empty.
   */
  cipherRangeFor(offset: number, length: number, plaintextSize: number): { start: number; end: number; firstChunk: number } {
    checkRange(offset, length, plaintextSize);
    const base = this.payloadOffset;
    const chunks = ageChunkCount(plaintextSize);
    if (length === 0) {
      const c = Math.min(Math.floor(offset / CHUNK), chunks - 1);
      return { start: base + c * SEG, end: base + c * SEG, firstChunk: c };
    }
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((offset + length - 1) / CHUNK);
    return {
      start: base + first * SEG,
      end: base + last * SEG + chunkPlainLength(last, plaintextSize) + TAG,
      firstChunk: first,
    };
  }

  /**
   * Decrypt the ciphertext fetched for cipherRangeFor(offset, length,
   * plaintextSize) (extra trailing bytes are ignored) and return exactly
   * plaintext [offset, offset+length). Every chunk is authenticated, the final
   * chunk with the last-chunk flag; throws AgeAuthError naming the chunk on
   * tampering or truncation.
   */
  decryptRange(cipher: Uint8Array, offset: number, length: number, plaintextSize: number, into?: Buffer): Buffer {
    checkRange(offset, length, plaintextSize);
    if (length === 0) return Buffer.alloc(0);
    if (into !== undefined && into.length < length) throw new RangeError(`output buffer of ${into.length} bytes is smaller than the range (${length})`);
    const chunks = ageChunkCount(plaintextSize);
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((offset + length - 1) / CHUNK);
    const end = offset + length;
    let out: Buffer | undefined;
    let outPos = 0;
    let cpos = 0;
    for (let i = first; i <= last; i++) {
      const plen = chunkPlainLength(i, plaintextSize);
      const seglen = plen + TAG;
      if (cpos + seglen > cipher.length) {
        throw new AgeAuthError(
          `age payload chunk ${i} is truncated: fetched ${Math.max(0, cipher.length - cpos)} of ${seglen} bytes`,
          i,
        );
      }
      const chunkStart = i * CHUNK;
      const from = Math.max(offset, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + plen) - chunkStart;
      if (into !== undefined && from === 0 && to === plen) {
        // A whole chunk of the range: decrypt straight into the caller's buffer.
        out ??= into.subarray(0, length);
        this.#cipher.openInto(i, i === chunks - 1, cipher.subarray(cpos, cpos + seglen), out, outPos);
        cpos += seglen;
        outPos += plen;
        continue;
      }
      const pt = this.#cipher.open(i, i === chunks - 1, cipher.subarray(cpos, cpos + seglen));
      cpos += seglen;
      if (first === last && into === undefined) {
        // One chunk: hand out the decrypted buffer itself, or a copy when the
        // slice is small, so a cached small blob does not pin a 64 KiB chunk.
        if (from === 0 && to === pt.length) return pt;
        return (to - from) * 2 < pt.length ? Buffer.from(pt.subarray(from, to)) : pt.subarray(from, to);
      }
      // A caller-supplied (reused) buffer avoids page-faulting fresh memory for large ranges.
      out ??= into ? into.subarray(0, length) : Buffer.allocUnsafe(length);
      pt.copy(out, outPos, from, to);
      outPos += to - from;
    }
    return out!;
  }

  toString(): string {
    return `AgePayloadReader(headerLength=${this.headerLength})`;
  }
  toJSON(): string {
    return this.toString();
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

function chunkPlainLength(index: number, plaintextSize: number): number {
  const chunks = ageChunkCount(plaintextSize);
  return index < chunks - 1 ? CHUNK : plaintextSize - (chunks - 1) * CHUNK;
}

function checkRange(offset: number, length: number, plaintextSize: number): void {
  if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) throw new RangeError(`invalid plaintextSize ${plaintextSize}`);
  if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`invalid offset ${offset}`);
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`invalid length ${length}`);
  if (offset + length > plaintextSize) {
    throw new RangeError(`range [${offset}, ${offset + length}) is outside the plaintext (${plaintextSize} bytes)`);
  }
}

// ---------------------------------------------------------------------------
// Whole-file helpers
// ---------------------------------------------------------------------------

/** Encrypt a small object (config, index, manifest) in one call. */
export async function sealBytes(plain: Uint8Array, recipients: string[], opts: CreateAgeHeaderOptions = {}): Promise<Buffer> {
  const enc = await AgeEncryptor.create(recipients, opts);
  const parts = [...enc.write(plain), ...enc.finish()];
  return Buffer.concat(parts, enc.ciphertextBytes);
}

/** Decrypt a whole age file held in memory. */
export async function openBytes(ciphertext: Uint8Array, identities: AgeIdentities): Promise<Buffer> {
  let headerLength: number;
  try {
    headerLength = parseAgeHeaderLength(ciphertext);
  } catch (err) {
    if (err instanceof AgeHeaderIncompleteError) throw new AgeFormatError(`age file is truncated inside its header (${ciphertext.length} bytes)`);
    throw err;
  }
  if (ciphertext.length < headerLength + AGE_NONCE_SIZE) {
    throw new AgeFormatError('age file is truncated inside the payload nonce');
  }
  const fileKey = await unwrapFileKey(ciphertext.subarray(0, headerLength), identities);
  const nonce = ciphertext.subarray(headerLength, headerLength + AGE_NONCE_SIZE);
  const dec = new PayloadDecryptor(new ChunkCipher(payloadKeyOf(fileKey, nonce)));
  fileKey.fill(0);
  const parts = [...dec.write(ciphertext.subarray(headerLength + AGE_NONCE_SIZE)), ...dec.finish()];
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Streaming encryption (node stream, bounded memory): plaintext in, a complete
 * age file out. The header is created on the first chunk (or at end for an
 * empty input).
 */
export function encryptStream(recipients: string[], opts: CreateAgeHeaderOptions = {}): Transform {
  // Fail fast (synchronously) on bad recipients, before any data flows.
  const list = checkRecipients(recipients, opts);
  let encP: Promise<AgeEncryptor> | undefined;
  const encryptor = () => (encP ??= AgeEncryptor.create(list, opts));
  const t = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      encryptor().then(
        (e) => {
          for (const b of e.write(chunk)) t.push(b);
          cb();
        },
        (err: unknown) => cb(err as Error),
      );
    },
    flush(cb: TransformCallback) {
      encryptor().then(
        (e) => {
          for (const b of e.finish()) t.push(b);
          cb();
        },
        (err: unknown) => cb(err as Error),
      );
    },
  });
  return t;
}

/**
 * Streaming decryption (node stream, bounded memory): an age file in,
 * plaintext out. Plaintext of a chunk is emitted only after that chunk
 * authenticated; a truncated or tampered tail makes the stream error (so a
 * consumer must treat output as provisional until 'end'/'finish').
 */
export function decryptStream(identities: AgeIdentities): Transform {
  let headBufs: Buffer[] = [];
  let headLen = 0;
  let payload: PayloadDecryptor | undefined;

  const onHeaderBytes = async (chunk: Buffer): Promise<Buffer[]> => {
    headBufs.push(chunk);
    headLen += chunk.length;
    const head = headBufs.length === 1 ? headBufs[0]! : Buffer.concat(headBufs, headLen);
    headBufs = [head];
    let headerLength: number;
    try {
      headerLength = parseAgeHeaderLength(head);
    } catch (err) {
      if (err instanceof AgeHeaderIncompleteError) return [];
      throw err;
    }
    if (head.length < headerLength + AGE_NONCE_SIZE) return [];
    const fileKey = await unwrapFileKey(head.subarray(0, headerLength), identities);
    const nonce = head.subarray(headerLength, headerLength + AGE_NONCE_SIZE);
    payload = new PayloadDecryptor(new ChunkCipher(payloadKeyOf(fileKey, nonce)));
    fileKey.fill(0);
    headBufs = [];
    return payload.write(head.subarray(headerLength + AGE_NONCE_SIZE));
  };

  const t = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      if (payload) {
        let out: Buffer[];
        try {
          out = payload.write(chunk);
        } catch (err) {
          cb(err as Error);
          return;
        }
        for (const b of out) t.push(b);
        cb();
        return;
      }
      onHeaderBytes(chunk).then(
        (out) => {
          for (const b of out) t.push(b);
          cb();
        },
        (err: unknown) => cb(err as Error),
      );
    },
    flush(cb: TransformCallback) {
      if (!payload) {
        cb(new AgeFormatError(`age file is truncated: input ended inside the header or payload nonce (${headLen} bytes)`));
        return;
      }
      try {
        for (const b of payload.finish()) t.push(b);
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  return t;
}
