/**
 * The Lifeline configuration schema: one zod object per section, every object
 * `.strict()` so that unknown (typo'd) keys are errors. Later sections
 * (tenants, nodes, assets, policies, …) are added here as their own objects.
 */
import { z } from 'zod';

// ---- building blocks ---------------------------------------------------------

/**
 * A reference to a secret, never the secret itself:
 *   { file: /run/secrets/s3-secret }   the file's content (trailing newline removed)
 *   { env: NAME }                      the value of environment variable NAME
 */
export type SecretRef = { file: string } | { env: string };

const FileRef = z.object({ file: z.string().min(1, 'file path must not be empty') }).strict();
const EnvRef = z
  .object({
    env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name like MY_SECRET'),
  })
  .strict();

export const SecretRefSchema = z.unknown().transform((value, ctx): SecretRef => {
  if (typeof value === 'string' || typeof value === 'number') {
    ctx.addIssue({
      code: 'custom',
      message: 'inline secrets are not allowed; use a reference { file: /path/to/secret } or { env: VARIABLE_NAME }',
    });
    return z.NEVER;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: `expected a secret reference { file: … } or { env: … }, got ${describeType(value)}` });
    return z.NEVER;
  }
  const keys = Object.keys(value);
  if (keys.length !== 1 || (keys[0] !== 'file' && keys[0] !== 'env')) {
    ctx.addIssue({
      code: 'custom',
      message: `expected exactly one of "file" or "env", got ${keys.length ? keys.map((k) => JSON.stringify(k)).join(', ') : 'an empty object'}`,
    });
    return z.NEVER;
  }
  const parsed = (keys[0] === 'file' ? FileRef : EnvRef).safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, code: 'custom', message: issue.message, path: issue.path });
    return z.NEVER;
  }
  return parsed.data;
});

export function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && Number.isNaN(v)) return 'NaN';
  return typeof v;
}

const Port = z.number().int('expected a whole number').min(1, 'expected a port 1–65535').max(65535, 'expected a port 1–65535');

// ---- sections ----------------------------------------------------------------

/** Where workflows run. No `address` → the embedded dev server (`devstack`). */
export const TemporalSection = z
  .object({
    /** host:port of an external Temporal frontend; when set, Lifeline starts no Temporal server. */
    address: z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port, e.g. temporal.example.com:7233').optional(),
    namespace: z.string().min(1).default('default'),
  })
  .strict();

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
    credentials: z
      .object({
        accessKeyId: SecretRefSchema,
        secretAccessKey: SecretRefSchema,
      })
      .strict()
      .optional(),
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
  })
  .strict();

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
