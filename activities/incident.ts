/**
 * Incident activities: thin, idempotent adapters from the IncidentWorkflow to
 * the repositories (legal holds, quarantine marks, restore points) and to the
 * configured webhooks. Only ids, times and counts cross the workflow boundary;
 * webhook header secrets are read here and never returned.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { durationMs } from '../config/platform';
import { readSecret } from '../config/secrets';
import { lastVerifiedSnapshot, listHolds, listQuarantined, placeHold, quarantine, releaseHold } from '../engine/verification';
import { incidentTrigger, openIncident } from '../events/dispatch';
import { parseEvent, type IncidentEvent } from '../events/schema';
import { suspectSnapshots, type ContainedAsset, type IncidentNotice } from '../incidents/model';
import type { Logger } from '../logging/logger';
import { assetConfig, type TenantRepositories } from '../tenancy/repositories';
import { jobProgress } from '../training/jobs';
import { permanentFailures } from './engine-failures';
import { InputError } from '../engine/errors';
import type { Repository } from '../engine/repository';

export interface IncidentActivityDeps {
  config: LoadedConfig;
  repositories: TenantRepositories;
  logger: Logger;
  /** the node this worker runs on (node agents only) */
  nodeId?: string;
}

/** A training job found dead by the node's probe: it ended without `done` or `stopped`. */
export interface DeadJob {
  job: string;
  runId: string;
  step: number | null;
}

export interface PlanIncidentInput {
  nodes: string[];
  assets: string[];
}

export interface IncidentPlan {
  /** affected assets: the named ones plus every asset living on an affected node */
  assets: Array<{ asset: string; tenant: string; node: string }>;
  approvalTimeoutMs: number;
  autoApprove: boolean;
  recovery: 'manual' | 'recover-node';
  webhooks: number;
}

export interface ContainInput {
  incidentId: string;
  /** the incident's run: a reopened incident (same id, new run) cannot reuse the hold id its earlier run released */
  runId?: string;
  assets: string[];
  /** quarantine snapshots taken after this time */
  compromisedAt?: string;
  /** quarantine this snapshot (integrity failure) */
  corruptSnapshot?: string;
  reason: string;
}

/**
 * The hold / mark id an incident uses on every snapshot (≤ 64 characters, stable per incident).
 * With `runId`: the id a later run of the same incident id uses where the first id's hold was
 * already released (released hold ids cannot be placed again).
 */
export function incidentMarkId(incidentId: string, runId?: string): string {
  return `incident-${createHash('sha256').update(runId ? `${incidentId}/${runId}` : incidentId).digest('hex').slice(0, 24)}`;
}

/** Places the incident's hold, under the per-run id when an earlier run of the same incident released the usual one. */
async function placeIncidentHold(repo: Repository, input: { snapshotId: string; incidentId: string; runId?: string; reason: string }): Promise<void> {
  const hold = (id: string) => placeHold(repo, { snapshotId: input.snapshotId, id, reason: input.reason, by: input.incidentId });
  try {
    await hold(incidentMarkId(input.incidentId));
  } catch (err) {
    if (!(err instanceof InputError && /was released/.test(err.message) && input.runId)) throw err;
    await hold(incidentMarkId(input.incidentId, input.runId));
  }
}

const NOTICE_TIMEOUT_MS = 10_000;

export function createIncidentActivities(deps: IncidentActivityDeps) {
  const { config } = deps;
  const repoOf = (asset: string) => deps.repositories.repository(assetConfig(config, asset).tenant);

  return {
    async planIncident(input: PlanIncidentInput): Promise<IncidentPlan> {
      return permanentFailures(async () => {
        for (const n of input.nodes) {
          if (!(n in config.nodes)) throw new UserError(`unknown node ${JSON.stringify(n)} (declared: ${Object.keys(config.nodes).join(', ') || 'none'})`);
        }
        const names = new Set(input.assets);
        for (const a of input.assets) assetConfig(config, a);
        for (const [name, a] of Object.entries(config.assets)) if (input.nodes.includes(a.node)) names.add(name);
        const inc = config.incident;
        return {
          assets: [...names].sort().map((asset) => ({ asset, tenant: config.assets[asset]!.tenant, node: config.assets[asset]!.node })),
          approvalTimeoutMs: durationMs(inc.approvalTimeout),
          autoApprove: inc.autoApprove && inc.environment === 'staging',
          recovery: inc.recovery,
          webhooks: inc.webhooks.length,
        };
      });
    },

    /**
     * Places the incident's legal hold on every snapshot of the affected assets
     * and quarantines the suspect ones; idempotent (same mark id on a retry).
     * Returns each asset's restore point after containment.
     */
    async containIncident(input: ContainInput): Promise<ContainedAsset[]> {
      return permanentFailures(async () => {
        const id = incidentMarkId(input.incidentId);
        const by = input.incidentId;
        const out: ContainedAsset[] = [];
        for (const asset of input.assets) {
          const repo = await repoOf(asset);
          const snapshots = await repo.listSnapshots({ asset });
          const suspects = new Set<string>();
          if (input.compromisedAt) for (const s of suspectSnapshots(snapshots, input.compromisedAt)) suspects.add(s.id);
          if (input.corruptSnapshot) for (const s of snapshots) if (s.id.startsWith(input.corruptSnapshot)) suspects.add(s.id);
          const held: string[] = [];
          for (const s of snapshots) {
            await placeIncidentHold(repo, { snapshotId: s.id, incidentId: input.incidentId, runId: input.runId, reason: `incident ${input.incidentId}: ${input.reason}` });
            held.push(s.id);
            Context.current().heartbeat();
          }
          const quarantined: string[] = [];
          for (const s of snapshots) {
            if (!suspects.has(s.id)) continue;
            await quarantine(repo, { snapshotId: s.id, id, reason: `incident ${input.incidentId}: ${input.reason}`, by });
            quarantined.push(s.id);
          }
          const last = await lastVerifiedSnapshot(repo, asset);
          out.push({ asset, tenant: assetConfig(config, asset).tenant, held, quarantined, restorePoint: last ? { snapshot: last.id, time: last.time } : null });
        }
        return out;
      });
    },

    /** Releases the incident's holds (quarantine marks stay: suspect data remains evidence). Returns how many were released. */
    async releaseIncidentHolds(input: { incidentId: string; runId?: string; assets: string[]; reason: string }): Promise<number> {
      return permanentFailures(async () => {
        const ids = new Set([incidentMarkId(input.incidentId), ...(input.runId ? [incidentMarkId(input.incidentId, input.runId)] : [])]);
        let released = 0;
        const tenants = new Set(input.assets.map((a) => assetConfig(config, a).tenant));
        for (const tenant of tenants) {
          const repo = await deps.repositories.repository(tenant);
          for (const h of await listHolds(repo)) {
            if (!ids.has(h.id)) continue;
            await releaseHold(repo, { snapshotId: h.snapshotId, id: h.id, reason: input.reason, by: input.incidentId });
            released++;
          }
        }
        return released;
      });
    },

    /** How many of the incident's quarantine marks are in force (for the timeline and tests). */
    async countIncidentQuarantine(input: { incidentId: string; assets: string[] }): Promise<number> {
      const id = incidentMarkId(input.incidentId);
      const tenants = new Set(input.assets.map((a) => assetConfig(config, a).tenant));
      let n = 0;
      for (const tenant of tenants) n += (await listQuarantined(await deps.repositories.repository(tenant))).filter((m) => m.id === id).length;
      return n;
    },

    /**
     * Node agents only: proves the agent of `node` is running (the workflow
     * routes it to the node's task queue), and reports the node's training jobs
     * that died before finishing (the job watchdog: killed, crashed — not done
     * and not stopped on purpose).
     */
    async probeNode(input: { node: string }): Promise<{ node: string; time: string; deadJobs: DeadJob[] }> {
      if (deps.nodeId !== input.node) throw ApplicationFailure.nonRetryable(`probe for node ${input.node} reached ${deps.nodeId ? `node ${deps.nodeId}` : 'a worker without a node'}`, 'WrongNode');
      const deadJobs: DeadJob[] = [];
      for (const [job, j] of Object.entries(config.trainingJobs)) {
        if (j.node !== input.node) continue;
        const p = jobProgress(config, job);
        if ((p.state === 'exited' || p.state === 'failed') && p.runId) deadJobs.push({ job, runId: p.runId, step: p.step ?? null });
      }
      return { node: input.node, time: new Date().toISOString(), deadJobs };
    },

    /**
     * Opens an incident for a training job that died (reported by the node's
     * health workflow): a high-severity incident about the job's node, whose
     * approved rebuild-node step restarts the job on the intact node
     * (RecoverNodeWorkflow's restart path). Idempotent by the job's run id.
     */
    async reportJobDied(input: { node: string; job: string; runId: string; step: number | null; detectedAt: string; reporter: string }): Promise<string> {
      return permanentFailures(async () => {
        const ctx = Context.current();
        const ev = parseEvent({
          type: 'manual',
          summary: `training job ${input.job} died at step ${input.step ?? 'unknown'} (run ${input.runId}), found by the job watchdog`,
          nodes: [input.node],
          severity: 'high',
        }) as IncidentEvent;
        const trigger = { ...incidentTrigger(config, ev, input.reporter, input.detectedAt), source: 'job-watchdog', detectedAt: input.detectedAt };
        return (await openIncident(ctx.client, ctx.info.taskQueue, trigger, `job-${input.job}-${input.runId}`.slice(0, 60))).workflowId;
      });
    },

    /** Opens (or joins) the node-lost incident of a silent node; returns its id. */
    async reportNodeLost(input: { node: string; lastSeen: string; reporter: string }): Promise<string> {
      return permanentFailures(async () => {
        const ctx = Context.current();
        const ev = parseEvent({ type: 'node-lost', node: input.node, detectedAt: input.lastSeen }) as IncidentEvent;
        const trigger = incidentTrigger(config, ev, input.reporter);
        return (await openIncident(ctx.client, ctx.info.taskQueue, trigger)).workflowId;
      });
    },

    /**
     * POSTs a notice to every configured webhook. Header values come from secret
     * references, read here; the payload holds ids and times only. Any failure
     * fails the activity (Temporal retries it; the notice id lets receivers drop
     * duplicates). A missing secret is not retried.
     */
    async notifyIncident(notice: IncidentNotice): Promise<{ delivered: number }> {
      const hooks = config.incident.webhooks;
      let delivered = 0;
      for (const [i, hook] of hooks.entries()) {
        let headers: Record<string, string>;
        try {
          headers = Object.fromEntries(
            Object.entries(hook.headers).map(([name, ref]) => [name, readSecret(ref, { source: config.source?.file ?? 'config', path: `incident.webhooks.${i}.headers.${name}`, root: config.source?.root })]),
          );
        } catch (err) {
          throw ApplicationFailure.nonRetryable((err as Error).message, 'WebhookSecretMissing');
        }
        const res = await fetch(hook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'lifeline-incident', 'idempotency-key': notice.id, ...headers },
          body: JSON.stringify(notice),
          signal: AbortSignal.timeout(NOTICE_TIMEOUT_MS),
        }).catch((err: Error) => {
          throw new Error(`webhook ${i} (${new URL(hook.url).host}) unreachable: ${err.message}`);
        });
        await res.arrayBuffer().catch(() => undefined);
        if (!res.ok) throw new Error(`webhook ${i} (${new URL(hook.url).host}) answered ${res.status}`);
        delivered++;
      }
      deps.logger.info({ incident: notice.incident, kind: notice.kind, delivered }, 'incident notice sent');
      return { delivered };
    },
  };
}
