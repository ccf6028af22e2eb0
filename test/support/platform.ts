/**
 * A Lifeline installation for verification, retention and schedule tests on
 * the shared test services: a fresh bucket, tenants with keys (owner-only
 * files) and initialised repositories, unique node and asset names (so task
 * queues and schedule ids are private to the test), policies, a config object
 * for in-process workers and the same config as a YAML file for the CLI.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { LoadedConfig } from '../../config/load';
import type { LifelineConfigInput } from '../../config/schema';
import type { Repository } from '../../engine/repository';
import { initTenant } from '../../tenancy/keys';
import { TenantRepositories } from '../../tenancy/repositories';
import { createTestBucket, testServices } from './services';
import { TEST_ACCESS_KEY_ENV, TEST_SECRET_KEY_ENV, testConfig } from './config';

export interface PlatformOptions {
  label: string;
  /** asset name → policy name (assets are models on one node, tenant `acme` unless given) */
  assets: Record<string, { policy?: string; tenant?: string; kind?: 'model' | 'dataset' | 'checkpoint' | 'platform-config' }>;
  policies?: Record<string, unknown>;
  tenants?: string[];
}

export interface TestPlatform {
  dir: string;
  bucket: string;
  node: string;
  config: LoadedConfig;
  configFile: string;
  /** the raw config sections (edit and call `rewrite`) */
  platform: { tenants: Record<string, unknown>; nodes: Record<string, unknown>; assets: Record<string, any>; policies: Record<string, any> };
  /** environment the CLI needs for the config's secret references */
  cliEnv: NodeJS.ProcessEnv;
  assetPath(asset: string): string;
  /** a repository opened fresh (own index), like a new process would */
  repository(tenant?: string): Promise<Repository>;
  /** re-parse the edited `platform` and rewrite the YAML file */
  rewrite(): Promise<LoadedConfig>;
  cleanup(): Promise<void>;
}

export const suffix = () => randomBytes(3).toString('hex');

export async function createTestPlatform(opts: PlatformOptions): Promise<TestPlatform> {
  const dir = await mkdtemp(join(tmpdir(), `lifeline-${opts.label}-`));
  const bucket = await createTestBucket(opts.label);
  const node = `n-${opts.label}-${suffix()}`.slice(0, 40);
  const tenants = opts.tenants ?? ['acme'];
  const platform: TestPlatform['platform'] = {
    tenants: Object.fromEntries(tenants.map((t) => [t, { identity: { file: join(dir, 'keys', `${t}.age`) }, signingKey: { file: join(dir, 'keys', `${t}.pem`) } }])),
    nodes: { [node]: { root: join(dir, 'assets') } },
    assets: Object.fromEntries(
      Object.entries(opts.assets).map(([name, a]) => [
        name,
        { node, tenant: a.tenant ?? tenants[0]!, kind: a.kind ?? 'model', path: join(dir, 'assets', name), ...(a.policy ? { policy: a.policy } : {}) },
      ]),
    ),
    policies: (opts.policies ?? {}) as Record<string, any>,
  };
  for (const name of Object.keys(opts.assets)) await mkdir(join(dir, 'assets', name), { recursive: true });
  await mkdir(join(dir, 'keys'), { recursive: true, mode: 0o700 });
  const configFile = join(dir, 'lifeline.yaml');
  const svc = testServices();

  const build = async (): Promise<LoadedConfig> => {
    const config = testConfig({ bucket, extra: platform as Partial<LifelineConfigInput> });
    const file = {
      temporal: { address: svc.temporal.address, namespace: svc.temporal.namespace },
      storage: {
        endpoint: svc.s3.endpoint,
        region: svc.s3.region,
        bucket,
        forcePathStyle: true,
        credentials: { accessKeyId: { env: TEST_ACCESS_KEY_ENV }, secretAccessKey: { env: TEST_SECRET_KEY_ENV } },
      },
      logging: { level: 'warn' },
      ...platform,
    };
    await writeFile(configFile, stringify(file));
    return config;
  };

  const p: TestPlatform = {
    dir,
    bucket,
    node,
    config: await build(),
    configFile,
    platform,
    cliEnv: { [TEST_ACCESS_KEY_ENV]: svc.s3.accessKeyId, [TEST_SECRET_KEY_ENV]: svc.s3.secretAccessKey },
    assetPath: (asset) => join(dir, 'assets', asset),
    repository: (tenant = tenants[0]!) => new TenantRepositories(p.config).repository(tenant),
    async rewrite() {
      p.config = await build();
      return p.config;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
  // x25519 identities: the post-quantum default works the same but costs more CPU per record on a loaded test machine.
  for (const t of tenants) await initTenant(p.config, t, { kind: 'x25519' });
  return p;
}
