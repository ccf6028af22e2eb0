/**
 * Secret scrubbing shared by everything that prints: a process-wide registry
 * of known secret values (every secret Lifeline resolves is registered) plus
 * patterns for secrets it may never have seen (age identities, PEM keys,
 * authorization headers). No dependencies, so config code can use it.
 */
export const REDACTED = '[REDACTED]';

/** Values shorter than this are not registered: scrubbing them would shred unrelated text. */
const MIN_SECRET_LENGTH = 6;
const secrets = new Set<string>();
let secretPattern: RegExp | null = null;

/** Register a secret value so it is scrubbed from every log line and error message from now on. */
export function registerSecret(value: string | undefined | null): void {
  if (!value || value.length < MIN_SECRET_LENGTH || secrets.has(value)) return;
  secrets.add(value);
  secretPattern = null;
}

/** Number of registered secrets (for diagnostics; never their values). */
export function registeredSecretCount(): number {
  return secrets.size;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const PATTERNS: RegExp[] = [
  /AGE-SECRET-KEY-(?:PQ-)?1[0-9A-Z]+/g,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
  // HTTP authorization values (AWS SigV4 "Credential=…, Signature=…", Bearer/Basic tokens)
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g,
  /\bX-Amz-Signature=[0-9a-f]{16,}/gi,
  /\bX-Amz-Credential=[^&\s"]+/gi,
  /\bSignature=[0-9a-f]{16,}/g,
];

/** Replace every known secret value and secret-looking token in a string. */
export function scrubString(s: string): string {
  if (secrets.size > 0) {
    secretPattern ??= new RegExp(
      [...secrets].sort((a, b) => b.length - a.length).map(escape).join('|'),
      'g',
    );
    s = s.replace(secretPattern, REDACTED);
  }
  for (const p of PATTERNS) s = s.replace(p, (m, scheme?: string) => (scheme && /^(Bearer|Basic)$/.test(scheme) ? `${scheme} ${REDACTED}` : REDACTED));
  return s;
}

/** Keys whose values are secret whatever they hold. */
export const SECRET_KEY_PATTERN =
  /^(secretAccessKey|secretKey|secret|password|passphrase|rootPassword|accessKeyId|accessKey|credentials?|authorization|proxy-authorization|x-amz-security-token|sessionToken|token|taskToken|identities|ageIdentity|ageIdentities|privateKey|signingKey|signingKeys|apiKey|cookie)$/i;

/**
 * Deep copy of a value with secret-named keys redacted and every string
 * scrubbed. Errors become plain objects ({ type, message, stack, … }).
 */
export function scrubValue(value: unknown, depth = 0, seen = new WeakSet<object>()): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth > 12) return '[depth limit]';
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  if (value instanceof Date) return value;
  if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (Array.isArray(value)) return value.map((v) => scrubValue(v, depth + 1, seen));
  const out: Record<string, unknown> = {};
  if (value instanceof Error) {
    out.type = value.name;
    out.message = scrubString(value.message);
    if (value.stack) out.stack = scrubString(value.stack);
    if (value.cause !== undefined) out.cause = scrubValue(value.cause, depth + 1, seen);
  }
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY_PATTERN.test(k) && v !== undefined && v !== null ? REDACTED : scrubValue(v, depth + 1, seen);
  }
  return out;
}
