/**
 * The fault registry: fault kind → its injector. A scenario naming a kind
 * without an injector in this build is refused before anything is injected.
 */
import { join } from 'node:path';
import type { LoadedConfig } from '../../config/load';
import { resolveFromRoot } from '../../config/root';
import type { FaultInjector } from '../fault';
import type { FaultKind, FaultSpec } from '../scenario';
import { crashOrchestrator } from './crash-orchestrator';
import { destroyNode } from './destroy-node';
import { killNodeAgent } from './kill-node-agent';
import { killTrainingJob } from './kill-training-job';
import { networkFault } from './network';
import { ransomware } from './ransomware';
import { storageOutageFault } from './storage-outage';
import { corruptObjectFault, deleteObjectFault } from './stored-object';

type Injectors = { [K in FaultKind]?: FaultInjector<Extract<FaultSpec, { kind: K }>> };

export const FAULT_INJECTORS: Injectors = {
  'kill-training-job': killTrainingJob,
  'kill-node-agent': killNodeAgent,
  'destroy-node': destroyNode,
  'crash-orchestrator': crashOrchestrator,
  ransomware,
  'corrupt-object': corruptObjectFault,
  'delete-object': deleteObjectFault,
  'storage-outage': storageOutageFault,
  network: networkFault,
};

export function faultInjector(kind: FaultKind): FaultInjector {
  const i = FAULT_INJECTORS[kind];
  if (!i) throw new Error(`fault kind ${kind} has no injector in this build (available: ${Object.keys(FAULT_INJECTORS).join(', ')})`);
  return i as unknown as FaultInjector;
}

/** The kinds among `kinds` that this build cannot inject. */
export function missingInjectors(kinds: FaultKind[]): FaultKind[] {
  return [...new Set(kinds)].filter((k) => !FAULT_INJECTORS[k]);
}

/** `<dataDir>/drills/<drillId>/`: everything a drill keeps (fault state, report). */
export function drillDir(config: LoadedConfig, drillId: string): string {
  return join(resolveFromRoot(config.devstack.dataDir, config.source.root), 'drills', drillId);
}

export function faultStateDir(config: LoadedConfig, drillId: string, faultId: string): string {
  return join(drillDir(config, drillId), 'faults', faultId);
}

/** A fault's id within its drill: its position and kind (`f0-destroy-node`). */
export function faultId(index: number, kind: FaultKind): string {
  return `f${index}-${kind}`;
}
