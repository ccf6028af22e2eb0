/**
 * Audit entries: what happened (type, action, outcome), to what (tenant,
 * asset, snapshot, node), by whom (actor: a workflow, a user or Lifeline
 * itself), when, and a few small details. Entries name things by id only —
 * never file names, paths or secrets — so the log is stored unencrypted.
 *
 * Stored form (the Merkle leaf is exactly these bytes): one line of JSON, keys
 * in this order, `signature` last:
 *
 *   {"v":1,"seq":7,"id":"<32 hex>","time":"<ISO>","type":"backup","action":"completed",
 *    "outcome":"success","actor":{"kind":"workflow","id":"…","runId":"…"},"tenant":"acme",
 *    "asset":"llama","snapshot":"<hex>","node":"gpu-1","details":{…},
 *    "signer":"<key id>","signature":"<base64 Ed25519>"}
 *
 * The signature covers the same bytes with `,"signature":"…"` removed, i.e.
 * the object up to and including `"signer":"<key id>"` followed by `}`.
 */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { SECRET_KEY_PATTERN, scrubString } from '../logging/redact';
import { type SigningKey, keyIdOf, verifySignature } from '../engine/crypto/signing';

/** What kind of operation an entry records. */
export const AUDIT_ENTRY_TYPES = [
  'backup',
  'verification',
  'restore',
  'retention-deletion',
  'key-operation',
  'incident-step',
  'approval',
  'drill',
  /** the audit log's own events (initialised, …) */
  'audit',
] as const;
export type AuditEntryType = (typeof AUDIT_ENTRY_TYPES)[number];

export const AUDIT_OUTCOMES = ['success', 'failure', 'partial', 'denied', 'cancelled', 'started'] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export const AUDIT_ACTOR_KINDS = ['workflow', 'user', 'system'] as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const Name = (what: string) => z.string().regex(NAME, `expected a ${what} name (letters, digits, . _ -; at most 63 characters)`);

/** Most details one entry may carry, and the longest entry. */
export const MAX_DETAILS = 32;
export const MAX_DETAIL_STRING = 1024;
export const MAX_ENTRY_BYTES = 16 * 1024;

const DetailValue = z.union([z.string().max(MAX_DETAIL_STRING), z.number().refine(Number.isFinite, 'expected a finite number'), z.boolean(), z.null()]);

const Details = z
  .record(z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, 'expected a detail key like bytes or packCount'), DetailValue)
  .superRefine((d, ctx) => {
    const keys = Object.keys(d);
    if (keys.length > MAX_DETAILS) ctx.addIssue({ code: 'custom', message: `at most ${MAX_DETAILS} details` });
    for (const k of keys) {
      if (SECRET_KEY_PATTERN.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'audit details must not hold secrets' });
      const v = d[k];
      if (typeof v === 'string' && scrubString(v) !== v) ctx.addIssue({ code: 'custom', path: [k], message: 'audit details must not hold secrets' });
    }
  });

export const AuditActorSchema = z
  .object({
    kind: z.enum(AUDIT_ACTOR_KINDS),
    /** workflow id, user name, or the Lifeline component */
    id: z.string().min(1).max(256),
    /** workflow run id */
    runId: z.string().min(1).max(128).optional(),
  })
  .strict();
export type AuditActor = z.infer<typeof AuditActorSchema>;

/** What a caller passes to record an entry; the log adds seq, id, time (unless given) and the signature. */
export const AuditEntryInputSchema = z
  .object({
    type: z.enum(AUDIT_ENTRY_TYPES),
    /** what exactly, e.g. started, completed, snapshot-forgotten, key-created, granted */
    action: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'expected a kebab-case action like completed').optional(),
    outcome: z.enum(AUDIT_OUTCOMES),
    actor: AuditActorSchema,
    tenant: Name('tenant').optional(),
    asset: Name('asset').optional(),
    /** snapshot id (hex, full or a unique prefix of at least 8) */
    snapshot: z.string().regex(/^[0-9a-f]{8,64}$/, 'expected a snapshot id (8–64 lowercase hex)').optional(),
    node: Name('node').optional(),
    details: Details.optional(),
    /** when it happened; default: when it is recorded */
    time: z.coerce.date().optional(),
  })
  .strict();
export type AuditEntryInput = z.input<typeof AuditEntryInputSchema>;

/** A stored entry, as parsed (signature not yet checked). */
export const AuditEntrySchema = z
  .object({
    v: z.literal(1),
    seq: z.number().int().nonnegative(),
    id: z.string().regex(/^[0-9a-f]{32}$/),
    time: z.iso.datetime(),
    type: z.enum(AUDIT_ENTRY_TYPES),
    action: z.string().optional(),
    outcome: z.enum(AUDIT_OUTCOMES),
    actor: AuditActorSchema,
    tenant: z.string().optional(),
    asset: z.string().optional(),
    snapshot: z.string().optional(),
    node: z.string().optional(),
    details: z.record(z.string(), DetailValue).optional(),
    signer: z.string().regex(/^[0-9a-f]{32}$/),
    signature: z.string(),
  })
  .strict();
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

export class AuditEntryError extends Error {
  override name = 'AuditEntryError';
}

/** Validate a caller's input (throws AuditEntryError naming the field). */
export function parseEntryInput(input: AuditEntryInput): z.output<typeof AuditEntryInputSchema> {
  const r = AuditEntryInputSchema.safeParse(input);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new AuditEntryError(`invalid audit entry: ${i.path.join('.') || '(entry)'}: ${i.message}`);
  }
  return r.data;
}

/**
 * The stored bytes of an entry: canonical key order, signed. `input` must
 * have been validated by {@link parseEntryInput}.
 */
export function encodeEntry(
  input: z.output<typeof AuditEntryInputSchema>,
  seq: number,
  key: SigningKey,
  opts: { id?: string; now?: Date } = {},
): Buffer {
  const body = {
    v: 1,
    seq,
    id: opts.id ?? randomBytes(16).toString('hex'),
    time: (input.time ?? opts.now ?? new Date()).toISOString(),
    type: input.type,
    ...(input.action !== undefined ? { action: input.action } : {}),
    outcome: input.outcome,
    actor: { kind: input.actor.kind, id: input.actor.id, ...(input.actor.runId !== undefined ? { runId: input.actor.runId } : {}) },
    ...(input.tenant !== undefined ? { tenant: input.tenant } : {}),
    ...(input.asset !== undefined ? { asset: input.asset } : {}),
    ...(input.snapshot !== undefined ? { snapshot: input.snapshot } : {}),
    ...(input.node !== undefined ? { node: input.node } : {}),
    ...(input.details !== undefined ? { details: input.details } : {}),
    signer: key.keyId,
  };
  const signed = JSON.stringify(body);
  const signature = key.sign(Buffer.from(signed, 'utf8'));
  const out = Buffer.from(`${signed.slice(0, -1)},"signature":"${signature}"}`, 'utf8');
  if (out.length > MAX_ENTRY_BYTES) throw new AuditEntryError(`audit entry too large (${out.length} bytes, at most ${MAX_ENTRY_BYTES}): keep details small`);
  return out;
}

const SIGNATURE_TAIL = /,"signature":"([A-Za-z0-9+/]{86}==)"\}$/;

export type DecodedEntry =
  | { ok: true; entry: AuditEntry; signatureValid: boolean; problem?: string }
  | { ok: false; problem: string };

/**
 * Parse stored entry bytes and check its own signature against the trusted
 * public keys (base64). Never throws: damaged bytes give `ok: false`.
 */
export function decodeEntry(bytes: Uint8Array, trustedPublicKeys: readonly string[]): DecodedEntry {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { ok: false, problem: 'not UTF-8' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'not JSON' };
  }
  const parsed = AuditEntrySchema.safeParse(json);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    return { ok: false, problem: `not an audit entry (${i.path.join('.') || 'entry'}: ${i.message})` };
  }
  const entry = parsed.data;
  const m = SIGNATURE_TAIL.exec(text);
  if (!m || m[1] !== entry.signature) return { ok: true, entry, signatureValid: false, problem: 'signature is not the last field' };
  const key = trustedPublicKeys.find((k) => keyIdOf(k) === entry.signer);
  if (!key) return { ok: true, entry, signatureValid: false, problem: `signer ${entry.signer} is not a trusted audit key` };
  const signed = Buffer.from(`${text.slice(0, m.index)}}`, 'utf8');
  if (!verifySignature(key, signed, entry.signature)) return { ok: true, entry, signatureValid: false, problem: 'signature does not verify' };
  return { ok: true, entry, signatureValid: true };
}
