import { readMinioCredentials, stackLayout, stackSettings, minioEndpoint } from '../devstack/layout';
import { processStorageRoute } from '../drills/storage-route';
import { UserError } from './errors';
import type { LoadedConfig } from './load';
import { readSecret } from './secrets';

/** Storage settings with secrets read: what an S3 client is built from. Never log it whole. */
export interface ResolvedStorage {
  endpoint: string | undefined;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** true when this is the embedded MinIO of the devstack. */
  embedded: boolean;
  /** where requests go instead of `endpoint` right now (a drill's fault proxy; drills/storage-route.ts), asked per request */
  route?: () => string | undefined;
}

/**
 * Resolve the storage section: an external endpoint with its secret
 * references read, or the embedded MinIO with its generated root credentials
 * (which exist once `lifeline up` has run).
 */
export function resolveStorage(config: LoadedConfig, env: NodeJS.ProcessEnv = process.env): ResolvedStorage {
  const s = config.storage;
  const source = config.source.file ?? 'built-in defaults';
  if (s.endpoint) {
    const c = s.credentials!;
    return {
      endpoint: s.endpoint,
      region: s.region,
      bucket: s.bucket,
      prefix: s.prefix,
      forcePathStyle: s.forcePathStyle,
      credentials: {
        accessKeyId: readSecret(c.accessKeyId, { source, path: 'storage.credentials.accessKeyId', env, root: config.source.root }),
        secretAccessKey: readSecret(c.secretAccessKey, { source, path: 'storage.credentials.secretAccessKey', env, root: config.source.root }),
      },
      embedded: false,
      route: processStorageRoute(config),
    };
  }
  const settings = stackSettings(config);
  const file = stackLayout(settings.dataDir).minioCredentials;
  const creds = readMinioCredentials(file);
  if (!creds) throw new UserError(`embedded MinIO credentials not found at ${file}; run \`lifeline up\` first`);
  return {
    endpoint: minioEndpoint(settings),
    region: s.region,
    bucket: s.bucket,
    prefix: s.prefix,
    forcePathStyle: s.forcePathStyle,
    credentials: creds,
    embedded: true,
    route: processStorageRoute(config),
  };
}

/** A printable description of the storage target (no secrets). */
export function describeStorage(r: Pick<ResolvedStorage, 'endpoint' | 'bucket' | 'prefix'>): string {
  return `s3://${r.bucket}/${r.prefix}${r.endpoint ? ` at ${r.endpoint}` : ''}`;
}
