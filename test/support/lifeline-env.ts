/**
 * A complete Lifeline installation for backup/restore/event tests, on the
 * shared test services (or private ones): a fresh bucket, a tenant with keys
 * and an initialised repository, a node with a unique id (so its task queue
 * `lifeline-node-<id>` is private to the test), assets, a config object for
 * in-process workers and the same config as a YAML file for child processes.
 * Credentials go into owner-only files referenced by the config.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import { configFromObject, type LoadedConfig } from '../../config/load';
import { S3ObjectStore } from '../../engine/backend/s3';
import { createBufferLogger, createLogger, type Logger } from '../../logging/logger';
import { initTenant } from '../../tenancy/keys';
import { provisionMinioRoles, type RoleCredentialsFile } from '../../devstack/minio-roles';
import { minioRoleSpecs, roleScope } from '../../tenancy/provision-roles';
import { initAudit } from '../../audit/open';
import { createLifelineWorker, type LifelineWorker } from '../../workers/worker';
import { LIFELINE_ROOT } from '../../config/root';
import { cleanEnv } from './cli';
import { testServices, uniqueTaskQueue } from './services';

export interface AssetSpec {
  kind?: 'model' | 'dataset' | 'checkpoint' | 'platform-config';
  /** defaults to <dir>/assets/<name> (created); a given path is used as it is */
  path?: string;
  checkpoint?: { completion: 'marker' | 'rename' | 'event'; marker?: string; temporaryPattern?: string };
  labels?: Record<string, string>;
  /** a policy from EnvOptions.policies */
  policy?: string;
  /** default: the env's first tenant (acme) */
  tenant?: string;
}

export interface EnvOptions {
  assets: Record<string, AssetSpec>;
  /** default: the shared test Temporal */
  temporal?: { address: string; namespace?: string };
  /** default: the shared test MinIO */
  s3?: { endpoint: string; region?: string; accessKeyId: string; secretAccessKey: string };
  /** policies (config `policies`) the assets may name */
  policies?: Record<string, unknown>;
  /** create the bucket with S3 Object Lock (committed objects are then written with retention) */
  objectLock?: boolean;
  /** create one MinIO user per storage role (and a restore user per tenant) for this bucket and configure them (storage.roles) */
  leastPrivilege?: boolean;
  /** more tenants besides acme, each with its own keys and initialised repository */
  tenants?: string[];
  /** initialise the audit log (`lifeline audit init`: signing key in the data folder, locked audit bucket) */
  audit?: boolean;
}

export interface LifelineEnv {
  label: string;
  dir: string;
  bucket: string;
  tenant: string;
  node: string;
  /** orchestrator task queue of this test */
  taskQueue: string;
  config: LoadedConfig;
  configFile: string;
  assetPath: (name: string) => string;
  temporal: { address: string; namespace: string };
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
  /** where the tenant's repository lives in the bucket */
  repoPrefix: string;
  /** the role users' keys, with leastPrivilege */
  roles?: RoleCredentialsFile;
}

const slug = (s: string) => s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').slice(0, 24);

export async function makeEnv(label: string, opts: EnvOptions): Promise<LifelineEnv> {
  const svc = testServices();
  const temporal = { address: opts.temporal?.address ?? svc.temporal.address, namespace: opts.temporal?.namespace ?? svc.temporal.namespace };
  const s3 = opts.s3 ? { region: 'us-east-1', ...opts.s3 } : svc.s3;
  const dir = await mkdtemp(join(tmpdir(), `lifeline-${slug(label)}-`));
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const bucket = `t-${slug(label)}-${suffix}`;
  const node = `n-${slug(label)}-${suffix}`;
  const tenant = 'acme';
  await mkdir(join(dir, 'secrets'), { mode: 0o700 });
  await writeFile(join(dir, 'secrets', 's3-access'), s3.accessKeyId, { mode: 0o600 });
  await writeFile(join(dir, 'secrets', 's3-secret'), s3.secretAccessKey, { mode: 0o600 });
  const assets: Record<string, unknown> = {};
  const paths: Record<string, string> = {};
  const tenants = [tenant, ...(opts.tenants ?? [])];
  for (const [name, spec] of Object.entries(opts.assets)) {
    const path = spec.path ?? join(dir, 'assets', name);
    paths[name] = path;
    if (spec.path === undefined) await mkdir(path, { recursive: true });
    assets[name] = {
      node,
      tenant: spec.tenant ?? tenant,
      kind: spec.kind ?? (spec.checkpoint ? 'checkpoint' : 'model'),
      ...(spec.policy ? { policy: spec.policy } : {}),
      path,
      ...(spec.labels ? { labels: spec.labels } : {}),
      ...(spec.checkpoint ? { checkpoint: spec.checkpoint } : {}),
    };
  }
  const raw = {
    temporal: { address: temporal.address, namespace: temporal.namespace },
    devstack: { dataDir: join(dir, 'data') },
    storage: {
      endpoint: s3.endpoint,
      region: s3.region,
      bucket,
      forcePathStyle: true,
      credentials: { accessKeyId: { file: join(dir, 'secrets', 's3-access') }, secretAccessKey: { file: join(dir, 'secrets', 's3-secret') } },
    },
    logging: { level: 'info', format: 'json' },
    tenants: Object.fromEntries(tenants.map((t) => [t, { identity: { file: join(dir, 'secrets', `${t}.age`) }, signingKey: { file: join(dir, 'secrets', `${t}.pem`) } }])),
    nodes: { [node]: { description: `test node of ${label}` } },
    assets,
    ...(opts.policies ? { policies: opts.policies } : {}),
  };
  const configFile = join(dir, 'lifeline.yaml');
  let roles: RoleCredentialsFile | undefined;
  if (opts.leastPrivilege) {
    // Users and policies named after this test's bucket, so tests never share them.
    const scope = roleScope(configFromObject(raw, { source: configFile }));
    roles = await provisionMinioRoles(
      { endpoint: s3.endpoint, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } },
      join(dir, 'secrets', 'roles.json'),
      minioRoleSpecs(scope, bucket),
    );
    const ref = async (name: string, c: { accessKeyId: string; secretAccessKey: string }) => {
      await writeFile(join(dir, 'secrets', `${name}-access`), c.accessKeyId, { mode: 0o600 });
      await writeFile(join(dir, 'secrets', `${name}-secret`), c.secretAccessKey, { mode: 0o600 });
      return { accessKeyId: { file: join(dir, 'secrets', `${name}-access`) }, secretAccessKey: { file: join(dir, 'secrets', `${name}-secret`) } };
    };
    const restore: Record<string, unknown> = {};
    for (const [t, c] of Object.entries(roles.restore ?? {})) restore[t] = await ref(`restore-${t}`, c);
    (raw.storage as Record<string, unknown>).roles = {
      backup: await ref('backup', roles.backup!),
      verifier: await ref('verifier', roles.verifier!),
      retention: await ref('retention', roles.retention!),
      audit: await ref('audit', roles.audit!),
      restore,
    };
  }
  await writeFile(configFile, stringify(raw), { mode: 0o600 });
  const config = configFromObject(raw, { source: configFile });
  await S3ObjectStore.ensureBucket({ endpoint: s3.endpoint, region: s3.region, bucket, prefix: '', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, objectLock: opts.objectLock });
  // x25519: hybrid identities work the same but make every pack header slower to create.
  for (const t of tenants) await initTenant(config, t, { kind: 'x25519' });
  if (opts.audit) await initAudit(config, { actor: 'test' });
  return {
    label,
    dir,
    bucket,
    tenant,
    node,
    taskQueue: uniqueTaskQueue(label),
    config,
    configFile,
    assetPath: (name) => paths[name]!,
    temporal,
    s3,
    repoPrefix: `tenants/${tenant}/`,
    roles,
  };
}

export async function removeEnv(env: LifelineEnv | undefined): Promise<void> {
  if (env && !process.env.LIFELINE_TEST_KEEP_DATA) await rm(env.dir, { recursive: true, force: true });
}

export async function connect(env: LifelineEnv): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: env.temporal.address, connectTimeout: '20 seconds' });
  return { client: new Client({ connection, namespace: env.temporal.namespace }), connection };
}

/** A worker running in this process until `stop()`. */
export interface RunningWorker {
  worker: LifelineWorker;
  done: Promise<void>;
  logs: () => string;
  stop(): Promise<void>;
}

export async function startWorker(env: LifelineEnv, role: 'orchestrator' | 'node-agent', opts: { logger?: Logger } = {}): Promise<RunningWorker> {
  const buffer = createBufferLogger({ level: 'info' });
  const logger = opts.logger ?? buffer.logger;
  const worker = await createLifelineWorker({
    config: env.config,
    role,
    logger,
    ...(role === 'orchestrator' ? { taskQueue: env.taskQueue } : { nodeId: env.node }),
  });
  const done = worker.run();
  done.catch(() => undefined);
  let stopped = false;
  return {
    worker,
    done,
    logs: buffer.text,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        worker.worker.shutdown();
      } catch {
        // already stopping
      }
      await done.catch(() => undefined);
    },
  };
}

/** A Temporal client and both workers of an env in this process: the orchestrator on env.taskQueue and the agent of env's node. */
export interface EnvWorkers {
  client: Client;
  connection: Connection;
  orchestrator: RunningWorker;
  agent: RunningWorker;
  /** stops the agent, then the orchestrator, and closes the connection */
  stop(): Promise<void>;
}

/** Connects (through `opts.connect`, default connect(env)) and starts env's orchestrator and node agent in this process; stops what it started if a part fails. */
export async function startWorkers(env: LifelineEnv, opts: { connect?: () => Promise<{ client: Client; connection: Connection }> } = {}): Promise<EnvWorkers> {
  const { client, connection } = await (opts.connect ?? (() => connect(env)))();
  const started: RunningWorker[] = [];
  let closed = false;
  const stop = async () => {
    for (const w of [...started].reverse()) await w.stop();
    if (!closed) await connection.close();
    closed = true;
  };
  try {
    started.push(await startWorker(env, 'orchestrator'));
    started.push(await startWorker(env, 'node-agent'));
  } catch (err) {
    await stop();
    throw err;
  }
  return { client, connection, orchestrator: started[0]!, agent: started[1]!, stop };
}

/** A node agent as its own process (`lifeline worker --role node-agent`), so a test can SIGKILL it. */
export interface ChildAgent {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function spawnNodeAgent(env: LifelineEnv, opts: { readyTimeoutMs?: number } = {}): Promise<ChildAgent> {
  // node itself, not the bin/lifeline shim: tsx's CLI runs the program in a child process, and a
  // SIGKILL of the wrapper would leave that child (the real agent) running.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(LIFELINE_ROOT, 'cli', 'main.ts'), '--config', env.configFile, '--log-format', 'json', 'worker', '--role', 'node-agent', '--node', env.node],
    { cwd: LIFELINE_ROOT, env: cleanEnv({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code: number | null) => resolve(code)));
  const agent: ChildAgent = {
    child,
    output: () => output,
    exited,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
  while (!/worker ready/.test(output)) {
    if (child.exitCode !== null) throw new Error(`node agent exited (${child.exitCode}) before it was ready:\n${output}`);
    if (Date.now() > deadline) {
      await agent.kill();
      throw new Error(`node agent not ready in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return agent;
}

/** Writes `bytes` of random data in 16 MiB pieces; returns its SHA-256 (hex). */
export async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const ws = createWriteStream(path);
  const piece = 16 * 1024 * 1024;
  for (let done = 0; done < bytes; ) {
    const n = Math.min(piece, bytes - done);
    const buf = randomBytes(n);
    hash.update(buf);
    if (!ws.write(buf)) await new Promise<void>((r) => ws.once('drain', () => r()));
    done += n;
  }
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.end(() => resolve());
  });
  return hash.digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Total size and count of the objects under a prefix of the env's bucket. */
export async function bucketUsage(env: LifelineEnv, prefix: string): Promise<{ bytes: number; objects: number }> {
  const s3 = new S3Client({
    endpoint: env.s3.endpoint,
    region: env.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: env.s3.accessKeyId, secretAccessKey: env.s3.secretAccessKey },
  });
  try {
    let bytes = 0;
    let objects = 0;
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        bytes += o.Size ?? 0;
        objects++;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { bytes, objects };
  } finally {
    s3.destroy();
  }
}

/** A logger for in-process workers that keeps warnings visible in test output. */
export function quietLogger(): Logger {
  return createLogger({ level: 'warn', format: 'json' });
}
