/**
 * The `audit` config section: where the tamper-evident audit log lives, which
 * key signs it, which keys verify it, and how its objects are locked.
 */
import { z } from 'zod';
import { DurationSchema } from './platform';
import { SecretRefSchema } from './secret-ref';

export const AUDIT_LOCK_MODES = ['governance', 'compliance', 'none'] as const;
export type AuditLockMode = (typeof AUDIT_LOCK_MODES)[number];

const ED25519_PUBLIC_KEY = /^[A-Za-z0-9+/]{43}=$/;
/** A C2SP verifier key: <name>+<8 hex>+<base64 of 0x01 ‖ public key>. */
const VERIFIER_KEY = /^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/;

export const AuditSection = z
  .object({
    /** Bucket of the audit log; default `<storage.bucket>-audit`. Created with Object Lock by `lifeline audit init`. */
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3–63 chars: a-z 0-9 . -)')
      .optional(),
    /** Checkpoint origin (and note key name); default `lifeline-audit/<bucket>`. */
    origin: z
      .string()
      .regex(/^[^\s+]{1,255}$/, 'expected a name without spaces or "+", e.g. audit.example.com/lifeline')
      .optional(),
    /** Ed25519 private key (PKCS#8 PEM) that signs entries and checkpoints; default `{ file: <devstack.dataDir>/keys/audit-signing.pem }`. */
    signingKey: SecretRefSchema.optional(),
    /**
     * More public keys trusted when verifying (base64 raw Ed25519, or C2SP verifier keys `name+hash+key`):
     * earlier signing keys after a rotation, other writers' keys, or the only keys of a verify-only host.
     */
    publicKeys: z
      .array(z.string().refine((s) => ED25519_PUBLIC_KEY.test(s) || VERIFIER_KEY.test(s), 'expected a base64 Ed25519 public key (44 characters) or a verifier key name+hash+key'))
      .default([]),
    /** Object Lock mode of every audit object: governance (privileged users may bypass), compliance (nobody may), none. */
    lockMode: z.enum(AUDIT_LOCK_MODES).default('governance'),
    /** How long each audit object is locked after it is written. */
    retention: DurationSchema.default('365d'),
  })
  .strict();

export type AuditConfig = z.output<typeof AuditSection>;
