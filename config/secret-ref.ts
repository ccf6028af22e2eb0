/** Secret references in config: where a secret is, never the secret itself. */
import { z } from 'zod';

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

