/** `lifeline status`: health of Temporal and object storage, and the workers polling Lifeline's task queues. */
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { resolveStorage } from '../config/storage';
import type { LoadedConfig } from '../config/load';
import { minioHealthy, temporalHealthy } from '../devstack/health';
import { minioEndpoint, stackLayout, stackSettings, temporalUiUrl } from '../devstack/layout';
import { embeddedStatus } from '../devstack/stack';
import { createS3Client } from '../activities/s3';
import { scrubString } from '../logging/redact';
import { ORCHESTRATOR_TASK_QUEUE, nodeTaskQueue } from '../workflows/task-queues';
import { temporalTarget } from '../workers/temporal';

export interface ServiceReport {
  service: 'temporal' | 'storage';
  /** embedded: started by `lifeline up` from the data folder; external: configured elsewhere. */
  mode: 'embedded' | 'external';
  healthy: boolean;
  /** embedded only: whether the process we started is running. */
  running?: boolean;
  pid?: number;
  address: string;
  detail?: string;
  logFile?: string;
  [key: string]: unknown;
}

export interface PollerReport {
  identity: string;
  lastAccessTime: string | null;
}

export interface TaskQueueReport {
  name: string;
  workflowPollers: PollerReport[];
  activityPollers: PollerReport[];
}

export interface StatusReport {
  healthy: boolean;
  dataDir: string;
  services: ServiceReport[];
  taskQueues: TaskQueueReport[];
}

// temporal.api.enums.v1 values (TaskQueueKind / TaskQueueType)
const TASK_QUEUE_KIND_NORMAL = 1;
const TASK_QUEUE_TYPE_WORKFLOW = 1;
const TASK_QUEUE_TYPE_ACTIVITY = 2;

function toIso(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | null {
  if (!ts?.seconds) return null;
  const s = Number(ts.seconds.toString());
  return new Date(s * 1000 + Math.floor((ts.nanos ?? 0) / 1e6)).toISOString();
}

async function describeQueues(address: string, namespace: string, names: { name: string; workflows: boolean }[]): Promise<TaskQueueReport[]> {
  const conn = await Connection.connect({ address, connectTimeout: '5 seconds' });
  try {
    const out: TaskQueueReport[] = [];
    for (const q of names) {
      const ask = async (type: number) => {
        const res = await conn.workflowService.describeTaskQueue({
          namespace,
          taskQueue: { name: q.name, kind: TASK_QUEUE_KIND_NORMAL },
          taskQueueType: type,
        });
        return (res.pollers ?? []).map((p) => ({ identity: p.identity ?? '', lastAccessTime: toIso(p.lastAccessTime) }));
      };
      out.push({
        name: q.name,
        workflowPollers: q.workflows ? await ask(TASK_QUEUE_TYPE_WORKFLOW) : [],
        activityPollers: await ask(TASK_QUEUE_TYPE_ACTIVITY),
      });
    }
    return out;
  } finally {
    await conn.close().catch(() => {});
  }
}

async function storageReport(config: LoadedConfig): Promise<ServiceReport> {
  const s = config.storage;
  const settings = stackSettings(config);
  if (!s.endpoint) {
    const emb = (await embeddedStatus(settings)).find((x) => x.service === 'minio')!;
    const healthy = emb.running ? await minioHealthy(minioEndpoint(settings)) : false;
    return {
      service: 'storage',
      mode: 'embedded',
      healthy,
      running: emb.running,
      pid: emb.pid,
      address: emb.address,
      bucket: s.bucket,
      console: `http://${settings.host}:${settings.minio.consolePort}`,
      credentialsFile: stackLayout(settings.dataDir).minioCredentials,
      logFile: emb.logFile,
      detail: emb.running ? (healthy ? undefined : 'running but not answering /minio/health/live') : 'not running (lifeline up starts it)',
    };
  }
  // External S3: reachable with these credentials and the bucket visible?
  const resolved = resolveStorage(config);
  const client = createS3Client(resolved);
  try {
    await client.send(new HeadBucketCommand({ Bucket: s.bucket }), { abortSignal: AbortSignal.timeout(10_000) });
    return { service: 'storage', mode: 'external', healthy: true, address: s.endpoint, bucket: s.bucket };
  } catch (e) {
    const code = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const detail =
      code === 404
        ? `bucket ${s.bucket} does not exist yet (it is created on first use)`
        : code === 403
          ? `access denied to bucket ${s.bucket} with the configured credentials`
          : `unreachable: ${scrubString((e as Error).message)}`;
    return { service: 'storage', mode: 'external', healthy: code === 404, address: s.endpoint, bucket: s.bucket, detail };
  } finally {
    client.destroy();
  }
}

export async function collectStatus(config: LoadedConfig, opts: { nodes?: string[]; taskQueues?: string[] } = {}): Promise<StatusReport> {
  const settings = stackSettings(config);
  const target = temporalTarget(config);
  let temporalReport: ServiceReport;
  if (target.embedded) {
    const emb = (await embeddedStatus(settings)).find((x) => x.service === 'temporal')!;
    temporalReport = {
      service: 'temporal',
      mode: 'embedded',
      healthy: emb.healthy,
      running: emb.running,
      pid: emb.pid,
      address: target.address,
      namespace: target.namespace,
      ui: temporalUiUrl(settings),
      logFile: emb.logFile,
      detail: emb.running ? (emb.healthy ? undefined : 'running but not answering') : 'not running (lifeline up starts it)',
    };
  } else {
    const healthy = await temporalHealthy(target.address, target.namespace, 5000);
    temporalReport = {
      service: 'temporal',
      mode: 'external',
      healthy,
      address: target.address,
      namespace: target.namespace,
      detail: healthy ? undefined : `cannot reach namespace ${target.namespace} at ${target.address}`,
    };
  }
  const storage = await storageReport(config);

  let taskQueues: TaskQueueReport[] = [];
  if (temporalReport.healthy) {
    const names = [
      { name: ORCHESTRATOR_TASK_QUEUE, workflows: true },
      ...(opts.nodes ?? []).map((n) => ({ name: nodeTaskQueue(n), workflows: false })),
      ...(opts.taskQueues ?? []).map((n) => ({ name: n, workflows: true })),
    ];
    taskQueues = await describeQueues(target.address, target.namespace, names);
  }
  return { healthy: temporalReport.healthy && storage.healthy, dataDir: settings.dataDir, services: [temporalReport, storage], taskQueues };
}

export function formatStatus(r: StatusReport): string {
  const lines: string[] = [];
  for (const s of r.services) {
    const name = s.service === 'temporal' ? 'Temporal' : 'Storage';
    const state = s.healthy ? 'healthy' : 'DOWN';
    lines.push(`${name.padEnd(9)}${state.padEnd(9)}${s.mode.padEnd(10)}${s.address}${s.pid ? `  (pid ${s.pid})` : ''}`);
    if (s.service === 'temporal') {
      lines.push(`         namespace ${String(s.namespace)}${s.ui ? `   UI ${String(s.ui)}` : ''}`);
    } else {
      lines.push(`         bucket ${String(s.bucket)}${s.console ? `   console ${String(s.console)}` : ''}`);
      if (s.credentialsFile) lines.push(`         credentials file ${String(s.credentialsFile)}`);
    }
    if (s.detail) lines.push(`         ${s.detail}`);
    if (s.logFile) lines.push(`         log ${s.logFile}`);
  }
  if (r.taskQueues.length) {
    lines.push('Workers');
    for (const q of r.taskQueues) {
      const ids = [...new Set([...q.workflowPollers, ...q.activityPollers].map((p) => p.identity))];
      lines.push(`  ${q.name.padEnd(28)}${ids.length ? ids.join(', ') : 'no workers polling'}`);
    }
  }
  return lines.join('\n');
}
