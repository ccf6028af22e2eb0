import { readFileSync, statSync } from 'node:fs';
import { registerSecret } from '../logging/redact';
import { ConfigError } from './errors';
import { resolveFromRoot } from './root';
import type { SecretRef } from './schema';

export interface SecretContext {
  /** Where the reference was written (config file, `environment variable X`, …). */
  source: string;
  /** Key path of the reference, e.g. `storage.credentials.secretAccessKey`. */
  path: string;
  env?: NodeJS.ProcessEnv;
  root?: string;
}

/**
 * Read the secret a reference points to. The value is registered for log
 * scrubbing before it is returned. Errors name the key path and the file or
 * variable, never the value.
 */
export function readSecret(ref: SecretRef, ctx: SecretContext): string {
  const fail = (message: string): never => {
    throw new ConfigError([{ source: ctx.source, path: ctx.path, message }]);
  };
  let value: string;
  if ('file' in ref) {
    const file = resolveFromRoot(ref.file, ctx.root);
    try {
      if (!statSync(file).isFile()) fail(`secret file ${file} is not a regular file`);
      value = readFileSync(file, 'utf8');
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      return fail(
        code === 'ENOENT'
          ? `secret file ${file} does not exist`
          : code === 'EACCES'
            ? `secret file ${file} is not readable (permission denied)`
            : `secret file ${file} cannot be read (${code ?? 'error'})`,
      );
    }
    value = value.replace(/\r?\n$/, '');
    if (!value) fail(`secret file ${file} is empty`);
  } else {
    const env = ctx.env ?? process.env;
    const v = env[ref.env];
    if (v === undefined) return fail(`environment variable ${ref.env} is not set`);
    if (v === '') return fail(`environment variable ${ref.env} is empty`);
    value = v;
  }
  registerSecret(value);
  return value;
}

/** Human description of where a secret comes from (safe to print). */
export function describeSecretRef(ref: SecretRef, root?: string): string {
  return 'file' in ref ? `file ${resolveFromRoot(ref.file, root)}` : `env ${ref.env}`;
}
