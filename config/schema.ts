/**
 * The Lifeline configuration schema: one zod object per section, every object
 * `.strict()` so that unknown (typo'd) keys are errors. Later sections
 * (tenants, nodes, assets, policies, …) are added here as their own objects.
 */
import { z } from 'zod';

// ---- building blocks ---------------------------------------------------------

import { SecretRefSchema, describeType, type SecretRef } from './secret-ref';
import { AssetsSection, DurationSchema, NodesSection, PoliciesSection, TenantsSection, checkPlatformReferences } from './platform';
import { AuditSection } from './audit';
import { IncidentSection } from './incident';
import { AlarmSection } from './alarm';
import { TrainingJobsSection, checkTrainingJobReferences } from './training-jobs';

export { SecretRefSchema, describeType, type SecretRef };

const Port = z.number().int('expected a whole number').min(1, 'expected a port 1–65535').max(65535, 'expected a port 1–65535');

// ---- sections ----------------------------------------------------------------

/** Where workflows run. No `address` → the embedded dev server (`devstack`). */
export const TemporalSection = z
  .object({
    /** host:port of an external Temporal frontend; when set, Lifeline starts no Temporal server. */
    address: z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port, e.g. temporal.example.com:7233').optional(),
    namespace: z.string().min(1).default('default'),
    /** Encryption of workflow and activity payloads before they reach the Temporal server (workers/codec.ts). */
    payloadEncryption: z
      .object({
        /** `auto`: on when `incident.environment` is production and a key is configured. */
        enabled: z.union([z.boolean(), z.literal('auto')]).default('auto'),
        /** 32-byte AES-256-GCM key, base64 (44 characters) in a file or variable; `lifeline keys payload-key` writes one. */
        key: SecretRefSchema.optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** `enabled: true` needs a key; production with an external Temporal and no key is allowed but loud (see payloadEncryptionOf). */
function checkPayloadEncryption(cfg: { temporal: { payloadEncryption: { enabled: boolean | 'auto'; key?: SecretRef } } }, ctx: z.RefinementCtx): void {
  const pe = cfg.temporal.payloadEncryption;
  if (pe.enabled === true && !pe.key) {
    ctx.addIssue({ code: 'custom', path: ['temporal', 'payloadEncryption', 'key'], message: 'required when payloadEncryption.enabled is true: { file: … } or { env: … } holding a base64 32-byte key (lifeline keys payload-key --out <file>)' });
  }
}

/** The embedded stack started by `lifeline up` when no external service is configured. */
export const DevstackSection = z
  .object({
    /** Project data folder (service data, logs, pid files, generated credentials). Relative paths resolve against the Lifeline root. */
    dataDir: z.string().min(1).default('.lifeline'),
    /** Interface the embedded services listen on. */
    host: z.string().min(1).default('127.0.0.1'),
    temporal: z
      .object({
        port: Port.default(7233),
        uiPort: Port.default(8233),
        /** Serve the Temporal Web UI on uiPort. */
        ui: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    minio: z
      .object({
        port: Port.default(9000),
        consolePort: Port.default(9001),
      })
      .strict()
      .prefault({}),
  })
  .strict();

const Credentials = z
  .object({
    accessKeyId: SecretRefSchema,
    secretAccessKey: SecretRefSchema,
  })
  .strict();

/**
 * Least-privilege credentials per role (tenancy/storage-roles.ts). For the
 * embedded MinIO `lifeline up` creates them; for external S3 each role that is
 * not given here uses `storage.credentials`.
 */
const RolesSection = z
  .object({
    backup: Credentials.optional(),
    verifier: Credentials.optional(),
    retention: Credentials.optional(),
    audit: Credentials.optional(),
    /** tenant → that tenant's read-only restore credentials */
    restore: z.record(z.string(), Credentials).default({}),
  })
  .strict();

export const OBJECT_LOCK_MODES = ['governance', 'compliance', 'none'] as const;

/** S3 Object Lock of repository buckets: new buckets are created with it, committed objects written with retention. */
const ObjectLockSection = z
  .object({
    mode: z.enum(OBJECT_LOCK_MODES).default('governance'),
    retention: DurationSchema.default('30d'),
  })
  .strict();

/** S3-compatible object storage. No `endpoint` → the embedded MinIO with generated root credentials. */
export const StorageSection = z
  .object({
    endpoint: z.url({ message: 'expected a URL like https://s3.example.com' }).optional(),
    region: z.string().min(1).default('us-east-1'),
    bucket: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'expected an S3 bucket name (3–63 chars: a-z 0-9 . -)')
      .default('lifeline'),
    /** Key prefix under which Lifeline stores everything ('' or e.g. 'prod/'). */
    prefix: z.string().default(''),
    forcePathStyle: z.boolean().default(true),
    credentials: Credentials.optional(),
    roles: RolesSection.prefault({}),
    objectLock: ObjectLockSection.prefault({}),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.endpoint && !s.credentials) {
      ctx.addIssue({
        code: 'custom',
        path: ['credentials'],
        message: 'required when storage.endpoint is set: { accessKeyId: { file|env: … }, secretAccessKey: { file|env: … } }',
      });
    }
    const given = Object.entries(s.roles).filter(([k, v]) => (k === 'restore' ? Object.keys(v as object).length > 0 : v !== undefined));
    if (!s.endpoint && given.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['roles', given[0]![0]],
        message: 'only allowed together with storage.endpoint (`lifeline up` creates the embedded MinIO\'s role users)',
      });
    }
    if (!s.endpoint && s.credentials) {
      ctx.addIssue({
        code: 'custom',
        path: ['credentials'],
        message: 'only allowed together with storage.endpoint (the embedded MinIO uses generated credentials)',
      });
    }
  });

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

export const LoggingSection = z
  .object({
    level: z.enum(LOG_LEVELS).default('info'),
    /** auto: pretty when stderr is a terminal, JSON otherwise. */
    format: z.enum(LOG_FORMATS).default('auto'),
  })
  .strict();

export const LifelineConfigSchema = z
  .object({
    temporal: TemporalSection.prefault({}),
    devstack: DevstackSection.prefault({}),
    storage: StorageSection.prefault({}),
    logging: LoggingSection.prefault({}),
    tenants: TenantsSection,
    nodes: NodesSection,
    assets: AssetsSection,
    policies: PoliciesSection,
    audit: AuditSection.prefault({}),
    incident: IncidentSection.prefault({}),
    alarm: AlarmSection.prefault({}),
    trainingJobs: TrainingJobsSection,
  })
  .strict()
  .superRefine((cfg, ctx) => {
    checkPlatformReferences(cfg, ctx);
    for (const tenant of Object.keys(cfg.storage.roles.restore)) {
      if (!cfg.tenants[tenant]) {
        ctx.addIssue({ code: 'custom', path: ['storage', 'roles', 'restore', tenant], message: `unknown tenant ${JSON.stringify(tenant)} (declared: ${Object.keys(cfg.tenants).join(', ') || 'none'})` });
      }
    }
    checkPayloadEncryption(cfg, ctx);
    checkTrainingJobReferences(cfg, ctx);
  });

export type LifelineConfigInput = z.input<typeof LifelineConfigSchema>;
export type LifelineConfig = z.output<typeof LifelineConfigSchema>;
export type TemporalConfig = LifelineConfig['temporal'];
export type DevstackConfig = LifelineConfig['devstack'];
export type StorageConfig = LifelineConfig['storage'];
export type LoggingConfig = LifelineConfig['logging'];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The built-in defaults (embedded stack), i.e. the config an empty file yields. */
export function defaultConfig(): LifelineConfig {
  return LifelineConfigSchema.parse({});
}
