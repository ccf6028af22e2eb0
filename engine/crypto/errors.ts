/**
 * Error classes of the crypto modules. Messages never contain key material:
 * identity strings, file keys or payload keys are not echoed, even partially.
 */

/** The bytes are not a well-formed age v1 file/header (or use an unsupported feature). */
export class AgeFormatError extends Error {
  override name = 'AgeFormatError';
}

/** Authentication failed: header MAC mismatch, or a payload chunk was tampered with or truncated. */
export class AgeAuthError extends Error {
  override name = 'AgeAuthError';
  /** Index of the payload chunk that failed, when the failure is in the payload. */
  readonly chunkIndex: number | undefined;
  constructor(message: string, chunkIndex?: number) {
    super(message);
    this.chunkIndex = chunkIndex;
  }
}

/** None of the identities can unwrap any stanza of the header. */
export class AgeNoIdentityMatchError extends Error {
  override name = 'AgeNoIdentityMatchError';
  /** Stanza types present in the header (e.g. ["X25519", "X25519"]), for diagnostics. */
  readonly stanzaTypes: string[];
  constructor(stanzaTypes: string[] = []) {
    super('no identity matches this file: it was encrypted for other recipients (wrong tenant or revoked key?)');
    this.stanzaTypes = stanzaTypes;
  }
}

/** `data` ends before the header does: fetch more bytes and try again. */
export class AgeHeaderIncompleteError extends Error {
  override name = 'AgeHeaderIncompleteError';
  /** Bytes that were available. */
  readonly available: number;
  constructor(message: string, available: number) {
    super(message);
    this.available = available;
  }
}

/** A recipient string is invalid, or the recipient set is not allowed (e.g. mixing post-quantum and classic). */
export class AgeRecipientError extends Error {
  override name = 'AgeRecipientError';
}

/** An identity file or identity string could not be used. Names the path and line, never the content. */
export class AgeIdentityError extends Error {
  override name = 'AgeIdentityError';
  readonly path: string | undefined;
  readonly line: number | undefined;
  constructor(message: string, opts: { path?: string; line?: number } = {}) {
    super(message);
    this.path = opts.path;
    this.line = opts.line;
  }
}

/** A secret file (identity, signing key) has unsafe permissions or cannot be written safely. */
export class SecretFileError extends Error {
  override name = 'SecretFileError';
  readonly path: string;
  constructor(message: string, path: string) {
    super(message);
    this.path = path;
  }
}
