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
import { EventValidationError, parseEvent, type CheckpointEvent } from './schema';

export interface DispatchTarget {
  client: Client;
  config: LoadedConfig;
  /** orchestrator task queue */
  taskQueue: string;
  /** passed to the coordinator when it starts (tests use small values) */
  backupOptions?: BackupTuning;
  idleSeconds?: number;
}

export interface DispatchResult {
  accepted: true;
  type: string;
  asset: string;
  step: string;
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
  }
}
