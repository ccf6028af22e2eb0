/**
 * An asset as the backup and restore adapters need it: where it lives (node,
 * absolute root), whose it is (tenant), and how a checkpoint signals that it
 * is complete. Resolved from config on the worker that runs the activity, so
 * workflows only ever carry the asset's name.
 */
import { join, resolve } from 'node:path';
import type { LoadedConfig } from '../config/load';
import { UserError } from '../config/errors';
import { resolveFromRoot } from '../config/root';
import type { AssetKind } from '../engine/manifest';
import { assetConfig } from '../tenancy/repositories';

export interface CheckpointRules {
  completion: 'marker' | 'rename' | 'event';
  /** marker file name (relative to the asset root) for completion: marker */
  marker: string;
  /** names (any path segment) that are never backed up: files still being written */
  temporary: RegExp;
}

export interface ResolvedAsset {
  name: string;
  node: string;
  tenant: string;
  kind: AssetKind;
  /** absolute path on the node */
  root: string;
  labels: Record<string, string>;
  /** only for assets of kind checkpoint */
  checkpoint?: CheckpointRules;
}

export function resolveAsset(config: LoadedConfig, name: string): ResolvedAsset {
  const a = assetConfig(config, name);
  let checkpoint: CheckpointRules | undefined;
  if (a.kind === 'checkpoint') {
    const c = a.checkpoint ?? { completion: 'event' as const, marker: 'COMPLETE', temporaryPattern: '^\\.|\\.tmp$|\\.partial$' };
    let temporary: RegExp;
    try {
      temporary = new RegExp(c.temporaryPattern);
    } catch (err) {
      throw new UserError(`assets.${name}.checkpoint.temporaryPattern: not a valid regular expression (${(err as Error).message})`);
    }
    checkpoint = { completion: c.completion, marker: c.marker, temporary };
  }
  return {
    name,
    node: a.node,
    tenant: a.tenant,
    kind: a.kind,
    root: resolve(resolveFromRoot(a.path, config.source.root)),
    labels: { ...a.labels },
    checkpoint,
  };
}

/**
 * Node-local scratch space of one node agent (scan lists, failure reports):
 * `<devstack.dataDir>/work/node-<id>/`. It never leaves the node.
 */
export function nodeWorkDir(config: LoadedConfig, nodeId: string): string {
  return join(resolveFromRoot(config.devstack.dataDir, config.source.root), 'work', `node-${nodeId}`);
}
