/**
 * What each event does. A checkpoint event finds its asset (by name, or by the
 * path on the node) and signals the asset's checkpoint coordinator with
 * signal-with-start: the coordinator starts a backup at once, or, when one is
 * running, queues exactly one follow-up backup however many events arrive.
 *
 * Only the asset name, node and step reach the workflow; the path is used here
 * to find the asset and is not passed on (it is the tenant's plaintext).
 */
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import type { LoadedConfig } from '../config/load';
import { resolveAsset } from '../backups/asset';
import { checkpointBackupWorkflow, checkpointCoordinatorId, checkpointSignal } from '../workflows/checkpoint';
import type { BackupTuning } from '../workflows/backup';
import { randomBytes } from 'node:crypto';
import { incidentEventSignal, incidentWorkflow } from '../workflows/incident';
import { incidentId, type IncidentTrigger } from '../incidents/model';
import { EventValidationError, parseEvent, type CheckpointEvent, type IncidentEvent } from './schema';
import { tenantAssets, tenantPrefixes, watchedBuckets } from '../alarm/layout';
import { countKinds, locateKey, type KeyKind } from '../alarm/tamper';

export interface DispatchTarget {
  client: Client;
  config: LoadedConfig;
  /** orchestrator task queue */
  taskQueue: string;
  /** passed to the coordinator when it starts (tests use small values) */
  backupOptions?: BackupTuning;
  idleSeconds?: number;
  /** who delivers the event (recorded in an incident's timeline); default `event` */
  actor?: string;
}

export interface DispatchResult {
  accepted: true;
  type: string;
  /** checkpoint events: the asset and step backed up */
  asset?: string;
  step?: string;
  /** incident events: the incident (= its workflow id) */
  incident?: string;
  /** coordinator workflow id */
  workflowId: string;
  /** the run that received the event */
  runId: string;
}

/** The asset a checkpoint event is about; a clear per-field problem when there is none. */
export function checkpointAsset(config: LoadedConfig, ev: CheckpointEvent): string {
  if (!(ev.node in config.nodes)) {
    throw new EventValidationError([{ field: 'node', problem: `unknown node ${JSON.stringify(ev.node)} (declared: ${Object.keys(config.nodes).join(', ') || 'none'})` }]);
  }
  const inside = (path: string, root: string) => path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`);
  const path = resolve(ev.path);
  if (ev.asset !== undefined) {
    if (!(ev.asset in config.assets)) {
      throw new EventValidationError([{ field: 'asset', problem: `unknown asset ${JSON.stringify(ev.asset)} (declared: ${Object.keys(config.assets).join(', ') || 'none'})` }]);
    }
    const a = resolveAsset(config, ev.asset);
    if (a.node !== ev.node) throw new EventValidationError([{ field: 'node', problem: `asset ${ev.asset} lives on node ${a.node}, not ${ev.node}` }]);
    if (!inside(path, a.root)) throw new EventValidationError([{ field: 'path', problem: `${path} is not inside asset ${ev.asset} (${a.root})` }]);
    return ev.asset;
  }
  const candidates = Object.keys(config.assets)
    .map((name) => resolveAsset(config, name))
    .filter((a) => a.node === ev.node && inside(path, a.root))
    .sort((x, y) => y.root.length - x.root.length);
  if (candidates.length === 0) {
    const onNode = Object.keys(config.assets).filter((n) => config.assets[n]!.node === ev.node);
    throw new EventValidationError([{ field: 'path', problem: `no asset on node ${ev.node} contains ${path} (assets on ${ev.node}: ${onNode.join(', ') || 'none'}); give the asset name` }]);
  }
  if (candidates.length > 1 && candidates[0]!.root.length === candidates[1]!.root.length) {
    throw new EventValidationError([{ field: 'asset', problem: `${path} lies in several assets (${candidates.map((c) => c.name).join(', ')}); give the asset name` }]);
  }
  return candidates[0]!.name;
}

/** An incident event reduced to the ids and times the IncidentWorkflow needs; unknown nodes/assets are per-field problems. */
export function incidentTrigger(config: LoadedConfig, ev: IncidentEvent, actor: string, at = new Date().toISOString()): IncidentTrigger {
  const issues: Array<{ field: string; problem: string }> = [];
  const nodeKnown = (n: string, field: string) => {
    if (!(n in config.nodes)) issues.push({ field, problem: `unknown node ${JSON.stringify(n)} (declared: ${Object.keys(config.nodes).join(', ') || 'none'})` });
  };
  const assetKnown = (a: string, field: string) => {
    if (!(a in config.assets)) issues.push({ field, problem: `unknown asset ${JSON.stringify(a)} (declared: ${Object.keys(config.assets).join(', ') || 'none'})` });
  };
  let t: IncidentTrigger;
  switch (ev.type) {
    case 'node-lost':
      nodeKnown(ev.node, 'node');
      t = { type: ev.type, nodes: [ev.node], assets: [], detectedAt: ev.detectedAt ?? at, actor, at };
      break;
    case 'integrity-failure':
      assetKnown(ev.asset, 'asset');
      if (ev.asset in config.assets && config.assets[ev.asset]!.tenant !== ev.tenant) issues.push({ field: 'tenant', problem: `asset ${ev.asset} belongs to tenant ${config.assets[ev.asset]!.tenant}, not ${ev.tenant}` });
      t = { type: ev.type, nodes: [], assets: [ev.asset], snapshot: ev.snapshot, ...(ev.object ? { object: ev.object } : {}), actor, at };
      break;
    case 'suspected-compromise':
      (ev.nodes ?? []).forEach((n, i) => nodeKnown(n, `nodes.${i}`));
      (ev.assets ?? []).forEach((a, i) => assetKnown(a, `assets.${i}`));
      t = { type: ev.type, nodes: [...new Set(ev.nodes ?? [])], assets: [...new Set(ev.assets ?? [])], compromisedAt: ev.compromisedAt, source: ev.source, ...(ev.details ? { summary: ev.details } : {}), actor, at };
      break;
    case 'manual':
      (ev.nodes ?? []).forEach((n, i) => nodeKnown(n, `nodes.${i}`));
      (ev.assets ?? []).forEach((a, i) => assetKnown(a, `assets.${i}`));
      t = { type: ev.type, nodes: [...new Set(ev.nodes ?? [])], assets: [...new Set(ev.assets ?? [])], summary: ev.summary, severity: ev.severity, actor, at };
      break;
    case 'storage-tamper': {
      const buckets = watchedBuckets(config);
      const watched = buckets.find((b) => b.bucket === ev.bucket);
      if (!watched) issues.push({ field: 'bucket', problem: `${ev.bucket} is not a Lifeline bucket (watched: ${buckets.map((b) => b.bucket).join(', ')})` });
      const located = watched ? ev.keys.map((k) => locateKey(k, watched, tenantPrefixes(config))) : [];
      const tenants = [...new Set(located.flatMap((l) => ('tenant' in l && l.tenant ? [l.tenant] : [])))].sort();
      const kinds = ev.kinds ?? countKinds(located.flatMap((l) => (l.kind === 'probe' || l.kind === 'foreign' ? [] : [l.kind as KeyKind])));
      const firstAt = ev.firstAt ?? at;
      t = {
        type: ev.type,
        nodes: [],
        assets: tenantAssets(config, tenants),
        detectedAt: firstAt,
        source: ev.source ?? actor,
        tamper: {
          bucket: ev.bucket,
          count: ev.count ?? ev.keys.length,
          kinds,
          actions: [...new Set(ev.actions)].sort(),
          tenants,
          principals: ev.principals ?? [],
          firstAt,
          lastAt: ev.lastAt ?? firstAt,
          sampleKeys: ev.keys,
        },
        actor,
        at,
      };
      break;
    }
  }
  if (issues.length) throw new EventValidationError(issues);
  return t;
}

/** Opens an incident, or joins the open one about the same subject (signal-with-start). */
export async function openIncident(client: Client, taskQueue: string, trigger: IncidentTrigger, nonce?: string): Promise<{ workflowId: string; runId: string }> {
  // a caller that may retry passes a stable nonce (a manual incident's id is time + nonce)
  const workflowId = incidentId({ ...trigger, nonce: nonce ?? randomBytes(3).toString('hex') });
  const handle = await client.workflow.signalWithStart(incidentWorkflow, {
    workflowId,
    taskQueue,
    args: [{ trigger }],
    signal: incidentEventSignal,
    signalArgs: [trigger],
  });
  return { workflowId, runId: handle.signaledRunId };
}

/** Validates an event (any type) and acts on it. Throws EventValidationError for bad events; starts nothing then. */
export async function dispatchEvent(raw: unknown, target: DispatchTarget): Promise<DispatchResult> {
  const ev = parseEvent(raw);
  switch (ev.type) {
    case 'checkpoint': {
      const asset = checkpointAsset(target.config, ev);
      const workflowId = checkpointCoordinatorId(asset);
      const handle = await target.client.workflow.signalWithStart(checkpointBackupWorkflow, {
        workflowId,
        taskQueue: target.taskQueue,
        args: [{ asset, backupOptions: target.backupOptions, idleSeconds: target.idleSeconds }],
        signal: checkpointSignal,
        signalArgs: [{ step: ev.step, node: ev.node, receivedAt: new Date().toISOString() }],
      });
      return { accepted: true, type: ev.type, asset, step: ev.step, workflowId, runId: handle.signaledRunId };
    }
    case 'node-lost':
    case 'integrity-failure':
    case 'suspected-compromise':
    case 'manual':
    case 'storage-tamper': {
      const trigger = incidentTrigger(target.config, ev, target.actor ?? 'event');
      const { workflowId, runId } = await openIncident(target.client, target.taskQueue, trigger);
      return { accepted: true, type: ev.type, incident: workflowId, workflowId, runId };
    }
  }
}
