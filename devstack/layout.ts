import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { LoadedConfig } from '../config/load';
import { resolveFromRoot } from '../config/root';
import { registerSecret } from '../logging/redact';

/** What `lifeline up` needs to know about the embedded stack. */
export interface StackSettings {
  /** Absolute project data folder. */
  dataDir: string;
  host: string;
  namespace: string;
  temporal: { enabled: boolean; port: number; uiPort: number; ui: boolean };
  minio: { enabled: boolean; port: number; consolePort: number };
}

/** Embedded services are enabled unless the config points at an external Temporal / S3. */
export function stackSettings(config: LoadedConfig): StackSettings {
  const d = config.devstack;
  return {
    dataDir: resolveFromRoot(d.dataDir, config.source.root),
    host: d.host,
    namespace: config.temporal.namespace,
    temporal: { enabled: !config.temporal.address, port: d.temporal.port, uiPort: d.temporal.uiPort, ui: d.temporal.ui },
    minio: { enabled: !config.storage.endpoint, port: d.minio.port, consolePort: d.minio.consolePort },
  };
}

/** Files and folders under the project data folder. */
export function stackLayout(dataDir: string) {
  return {
    dataDir,
    logsDir: join(dataDir, 'logs'),
    runDir: join(dataDir, 'run'),
    temporalDb: join(dataDir, 'temporal', 'temporal.db'),
    temporalLog: join(dataDir, 'logs', 'temporal.log'),
    temporalRecord: join(dataDir, 'run', 'temporal.json'),
    minioDataDir: join(dataDir, 'minio', 'data'),
    minioCertsDir: join(dataDir, 'minio', 'certs'),
    minioLog: join(dataDir, 'logs', 'minio.log'),
    minioRecord: join(dataDir, 'run', 'minio.json'),
    minioCredentials: join(dataDir, 'credentials', 'minio-root.json'),
    /** least-privilege users `lifeline up` creates on the embedded MinIO (tenancy/storage-roles.ts) */
    minioRoles: join(dataDir, 'credentials', 'minio-roles.json'),
    upLock: join(dataDir, 'run', 'up.lock'),
  };
}

export type StackLayout = ReturnType<typeof stackLayout>;

export function temporalAddress(s: StackSettings): string {
  return `${s.host}:${s.temporal.port}`;
}

export function minioEndpoint(s: StackSettings): string {
  return `http://${s.host}:${s.minio.port}`;
}

export function temporalUiUrl(s: StackSettings): string | null {
  return s.temporal.ui ? `http://${s.host}:${s.temporal.uiPort}` : null;
}

/** Root credentials of the embedded MinIO (its root user / password). */
export interface MinioCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** A file's text, or null when it does not exist (other errors are thrown). */
export function readFileIfExists(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Read the generated credentials file, or null when it does not exist yet. */
export function readMinioCredentials(file: string): MinioCredentials | null {
  const text = readFileIfExists(file);
  if (text === null) return null;
  const c = JSON.parse(text) as Partial<MinioCredentials>;
  if (typeof c.accessKeyId !== 'string' || typeof c.secretAccessKey !== 'string') {
    throw new Error(`${file} is not a MinIO credentials file (expected accessKeyId and secretAccessKey)`);
  }
  registerSecret(c.accessKeyId);
  registerSecret(c.secretAccessKey);
  return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey };
}

/** Read the credentials, generating random ones (0600 file) on first use. Never printed. */
export function ensureMinioCredentials(file: string): MinioCredentials {
  const existing = readMinioCredentials(file);
  if (existing) return existing;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(dirname(file), 0o700);
  const bytes = randomBytes(20);
  const creds: MinioCredentials = {
    accessKeyId: 'LL' + [...bytes].map((b) => ALNUM[b % 32]).join('').slice(0, 18),
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
  try {
    writeFileSync(file, JSON.stringify(creds, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    // Another `up` won the race: use its credentials.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return readMinioCredentials(file)!;
    throw e;
  }
  registerSecret(creds.accessKeyId);
  registerSecret(creds.secretAccessKey);
  return creds;
}
