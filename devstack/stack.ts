/**
 * The embedded stack: a Temporal dev server (SQLite persistence) and a MinIO,
 * both started detached with their data, logs and pid records under the
 * project data folder. Used by `lifeline up|down|status`, by `npm start`, and
 * by the test harness (on other ports and a temporary data folder).
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../config/errors';
import { minioHealthy, temporalHealthy } from './health';
import {
  ensureMinioCredentials,
  minioEndpoint,
  stackLayout,
  temporalAddress,
  temporalUiUrl,
  type StackLayout,
  type StackSettings,
} from './layout';
import {
  pidAlive,
  portInUse,
  processMatches,
  readRecord,
  removeRecord,
  sleep,
  spawnDetached,
  stopProcess,
  tailFile,
  waitFor,
  writeRecord,
  type ServiceRecord,
} from './process';
import { ensureTool } from './tools.mjs';

export type ServiceName = 'temporal' | 'minio';

export interface UpResult {
  service: ServiceName;
  /** started: launched now; reused: a healthy instance we started earlier; external: configured elsewhere, nothing started. */
  state: 'started' | 'reused' | 'external';
  address?: string;
  pid?: number;
  ms: number;
}

export interface UpOptions {
  log?: (msg: string) => void;
  /** How long to wait for each service to become healthy (default 120 s: 2-core machines under load are slow). */
  healthTimeoutMs?: number;
}

interface ServiceSpec {
  name: ServiceName;
  label: string;
  ports: { port: number; what: string; configKey: string }[];
  record: string;
  logFile: string;
  address: string;
  healthy: () => Promise<boolean>;
  launch: () => Promise<{ executable: string; args: string[]; env: NodeJS.ProcessEnv }>;
  info: Record<string, unknown>;
}

function specs(s: StackSettings, layout: StackLayout): ServiceSpec[] {
  const out: ServiceSpec[] = [];
  if (s.temporal.enabled) {
    const address = temporalAddress(s);
    const ports = [{ port: s.temporal.port, what: 'Temporal frontend', configKey: 'devstack.temporal.port' }];
    if (s.temporal.ui) ports.push({ port: s.temporal.uiPort, what: 'Temporal UI', configKey: 'devstack.temporal.uiPort' });
    out.push({
      name: 'temporal',
      label: 'Temporal',
      ports,
      record: layout.temporalRecord,
      logFile: layout.temporalLog,
      address,
      healthy: () => temporalHealthy(address, s.namespace),
      info: { address, namespace: s.namespace, ui: temporalUiUrl(s), port: s.temporal.port, uiPort: s.temporal.ui ? s.temporal.uiPort : null },
      launch: async () => {
        const executable = await ensureTool('temporal');
        mkdirSync(join(layout.temporalDb, '..'), { recursive: true });
        const args = [
          'server', 'start-dev',
          '--ip', s.host,
          '--port', String(s.temporal.port),
          '--db-filename', layout.temporalDb,
          '--sqlite-pragma', 'journal_mode=WAL',
          '--log-format', 'json',
          '--log-level', 'warn',
          '--disable-config-file', '--disable-config-env',
        ];
        if (s.temporal.ui) args.push('--ui-port', String(s.temporal.uiPort));
        else args.push('--headless');
        if (s.namespace !== 'default') args.push('--namespace', s.namespace);
        return { executable, args, env: { ...process.env } };
      },
    });
  }
  if (s.minio.enabled) {
    const endpoint = minioEndpoint(s);
    out.push({
      name: 'minio',
      label: 'MinIO',
      ports: [
        { port: s.minio.port, what: 'MinIO S3 API', configKey: 'devstack.minio.port' },
        { port: s.minio.consolePort, what: 'MinIO console', configKey: 'devstack.minio.consolePort' },
      ],
      record: layout.minioRecord,
      logFile: layout.minioLog,
      address: endpoint,
      healthy: () => minioHealthy(endpoint),
      info: { endpoint, console: `http://${s.host}:${s.minio.consolePort}`, port: s.minio.port, consolePort: s.minio.consolePort, credentialsFile: layout.minioCredentials },
      launch: async () => {
        const executable = await ensureTool('minio');
        const creds = ensureMinioCredentials(layout.minioCredentials);
        mkdirSync(layout.minioDataDir, { recursive: true });
        mkdirSync(layout.minioCertsDir, { recursive: true });
        const args = [
          'server', layout.minioDataDir,
          '--address', `${s.host}:${s.minio.port}`,
          '--console-address', `${s.host}:${s.minio.consolePort}`,
          '--certs-dir', layout.minioCertsDir,
          '--anonymous', '--json',
        ];
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          MINIO_ROOT_USER: creds.accessKeyId,
          MINIO_ROOT_PASSWORD: creds.secretAccessKey,
          MINIO_UPDATE: 'off',
          MINIO_BROWSER_REDIRECT: 'off',
        };
        return { executable, args, env };
      },
    });
  }
  return out;
}

/** Exclusive lock for `up`/`down` on one data folder (two concurrent `up`s must not both start services). */
async function withStackLock<T>(layout: StackLayout, fn: () => Promise<T>, log: (m: string) => void): Promise<T> {
  mkdirSync(layout.runDir, { recursive: true });
  let announced = false;
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(layout.upLock);
      writeFileSync(join(layout.upLock, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname() }));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = readRecord(join(layout.upLock, 'owner.json')) as unknown as { pid?: number; host?: string } | null;
      if (owner?.pid && owner.host === hostname() && !pidAlive(owner.pid)) {
        rmSync(layout.upLock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new UserError(`another lifeline up/down holds ${layout.upLock}; remove it if no lifeline command is running`);
      if (!announced) log(`waiting for another lifeline up/down on ${layout.dataDir} to finish…`);
      announced = true;
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(layout.upLock, { recursive: true, force: true });
  }
}

const ORDER: ServiceName[] = ['temporal', 'minio'];
function byService<T extends { service: ServiceName }>(xs: T[]): T[] {
  return [...xs].sort((a, b) => ORDER.indexOf(a.service) - ORDER.indexOf(b.service));
}

/** The record of a service we started that is still running, or null (stale records are removed). */
export function runningRecord(file: string): ServiceRecord | null {
  const rec = readRecord(file);
  if (!rec) return null;
  if (processMatches(rec.pid, rec.executable)) return rec;
  removeRecord(file);
  return null;
}

/**
 * Bring the embedded stack up: reuse healthy instances started earlier from
 * this data folder, refuse ports held by anything else, start what is missing,
 * and wait until every service is healthy. Idempotent.
 */
export async function up(s: StackSettings, opts: UpOptions = {}): Promise<UpResult[]> {
  const log = opts.log ?? (() => {});
  const timeoutMs = opts.healthTimeoutMs ?? 120_000;
  const layout = stackLayout(s.dataDir);
  const results: UpResult[] = [];
  if (!s.temporal.enabled) results.push({ service: 'temporal', state: 'external', ms: 0 });
  if (!s.minio.enabled) results.push({ service: 'minio', state: 'external', ms: 0 });
  const todo = specs(s, layout);
  if (todo.length === 0) return byService(results);

  mkdirSync(s.dataDir, { recursive: true });
  return withStackLock(
    layout,
    async () => {
      // Decide everything before starting anything: a taken port fails the whole `up`.
      const plan: { spec: ServiceSpec; reuse: ServiceRecord | null }[] = [];
      for (const spec of todo) {
        const rec = runningRecord(spec.record);
        if (rec) {
          const wanted = spec.ports.map((p) => p.port).join(',');
          const had = (rec.info.ports as number[] | undefined)?.join(',');
          if (had !== wanted) {
            throw new UserError(
              `${spec.label} from ${s.dataDir} is already running (pid ${rec.pid}) on other ports (${had}); run \`lifeline down\` first`,
            );
          }
          plan.push({ spec, reuse: rec });
          continue;
        }
        for (const p of spec.ports) {
          if (await portInUse(s.host, p.port)) {
            throw new UserError(
              `port ${p.port} (${p.what}) on ${s.host} is already in use by a process lifeline did not start; stop it or choose another port with ${p.configKey}`,
            );
          }
        }
        plan.push({ spec, reuse: null });
      }

      for (const { spec, reuse } of plan) {
        const t0 = Date.now();
        if (reuse) {
          await waitFor(`${spec.label} (pid ${reuse.pid}) to be healthy`, spec.healthy, {
            timeoutMs,
            intervalMs: 250,
          }).catch((e: Error) => {
            throw new UserError(`${spec.label} (pid ${reuse.pid}) is running but not healthy: ${e.message}; see ${spec.logFile}`);
          });
          log(`${spec.label}: reusing healthy instance (pid ${reuse.pid}) at ${spec.address}`);
          results.push({ service: spec.name, state: 'reused', address: spec.address, pid: reuse.pid, ms: Date.now() - t0 });
          continue;
        }
        const { executable, args, env } = await spec.launch();
        log(`${spec.label}: starting (log: ${spec.logFile})`);
        const pid = spawnDetached(executable, args, { logFile: spec.logFile, env, cwd: s.dataDir });
        writeRecord(spec.record, {
          service: spec.name,
          pid,
          executable,
          args,
          logFile: spec.logFile,
          startedAt: new Date().toISOString(),
          info: { ...spec.info, ports: spec.ports.map((p) => p.port) },
        });
        try {
          await waitFor(`${spec.label} to become healthy at ${spec.address}`, spec.healthy, {
            timeoutMs,
            intervalMs: 250,
            onWait: () => {
              if (!processMatches(pid, executable)) {
                throw new UserError(`${spec.label} exited during startup; last lines of ${spec.logFile}:\n${tailFile(spec.logFile)}`);
              }
            },
          });
        } catch (e) {
          await stopProcess(pid, 5_000);
          removeRecord(spec.record);
          if (e instanceof UserError) throw e;
          throw new UserError(`${(e as Error).message}; last lines of ${spec.logFile}:\n${tailFile(spec.logFile)}`);
        }
        log(`${spec.label}: healthy at ${spec.address} (pid ${pid}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
        results.push({ service: spec.name, state: 'started', address: spec.address, pid, ms: Date.now() - t0 });
      }
      return byService(results);
    },
    log,
  );
}

export interface DownResult {
  service: ServiceName;
  state: 'stopped' | 'killed' | 'not-running' | 'external';
  pid?: number;
}

/** Stop the services started from this data folder: SIGTERM, wait, SIGKILL fallback. */
export async function down(s: StackSettings, opts: { log?: (m: string) => void; graceMs?: number } = {}): Promise<DownResult[]> {
  const log = opts.log ?? (() => {});
  const layout = stackLayout(s.dataDir);
  const results: DownResult[] = [];
  const all: { name: ServiceName; label: string; record: string; enabled: boolean }[] = [
    { name: 'temporal', label: 'Temporal', record: layout.temporalRecord, enabled: s.temporal.enabled },
    { name: 'minio', label: 'MinIO', record: layout.minioRecord, enabled: s.minio.enabled },
  ];
  const act = async () => {
    for (const svc of all) {
      const rec = runningRecord(svc.record);
      if (!rec) {
        results.push({ service: svc.name, state: svc.enabled ? 'not-running' : 'external' });
        continue;
      }
      log(`${svc.label}: stopping pid ${rec.pid}`);
      const how = await stopProcess(rec.pid, opts.graceMs ?? 20_000);
      removeRecord(svc.record);
      log(`${svc.label}: ${how === 'killed' ? 'killed after the grace period' : 'stopped'}`);
      results.push({ service: svc.name, state: how === 'killed' ? 'killed' : how === 'terminated' ? 'stopped' : 'not-running', pid: rec.pid });
    }
    return results;
  };
  // A data folder that does not exist has nothing to stop (and is not created by `down`).
  if (!existsSync(s.dataDir)) return all.map((a) => ({ service: a.name, state: a.enabled ? 'not-running' : 'external' }));
  return withStackLock(layout, act, log);
}

export interface EmbeddedServiceStatus {
  service: ServiceName;
  running: boolean;
  healthy: boolean;
  pid?: number;
  address: string;
  logFile: string;
}

/** Status of the embedded services (without starting anything). */
export async function embeddedStatus(s: StackSettings): Promise<EmbeddedServiceStatus[]> {
  const layout = stackLayout(s.dataDir);
  const out: EmbeddedServiceStatus[] = [];
  for (const spec of specs(s, layout)) {
    const rec = readRecord(spec.record);
    const running = !!rec && processMatches(rec.pid, rec.executable);
    out.push({
      service: spec.name,
      running,
      healthy: running ? await spec.healthy() : false,
      pid: running ? rec!.pid : undefined,
      address: spec.address,
      logFile: spec.logFile,
    });
  }
  return out;
}

/** SIGKILL the embedded Temporal server (for crash tests); resolves when it is gone. */
export async function killService(s: StackSettings, service: ServiceName): Promise<number> {
  const layout = stackLayout(s.dataDir);
  const rec = runningRecord(service === 'temporal' ? layout.temporalRecord : layout.minioRecord);
  if (!rec) throw new Error(`${service} is not running from ${s.dataDir}`);
  process.kill(rec.pid, 'SIGKILL');
  await waitFor(`${service} pid ${rec.pid} to die`, () => !processMatches(rec.pid, rec.executable), { timeoutMs: 30_000, intervalMs: 100 });
  return rec.pid;
}

/**
 * Stop one embedded service started from this data folder, leaving the other
 * running (a storage-outage drill stops MinIO alone; `up` starts it again).
 */
export async function stopService(
  s: StackSettings,
  service: ServiceName,
  opts: { log?: (m: string) => void; graceMs?: number } = {},
): Promise<DownResult> {
  const layout = stackLayout(s.dataDir);
  const record = service === 'temporal' ? layout.temporalRecord : layout.minioRecord;
  if (!existsSync(s.dataDir)) return { service, state: 'not-running' };
  return withStackLock(
    layout,
    async () => {
      const rec = runningRecord(record);
      if (!rec) return { service, state: 'not-running' as const };
      const how = await stopProcess(rec.pid, opts.graceMs ?? 20_000);
      removeRecord(record);
      return { service, state: how === 'killed' ? ('killed' as const) : how === 'terminated' ? ('stopped' as const) : ('not-running' as const), pid: rec.pid };
    },
    opts.log ?? (() => {}),
  );
}
