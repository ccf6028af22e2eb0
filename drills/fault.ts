/**
 * Fault injectors: one per fault kind (drills/faults/<kind>.ts), each able to
 * inject its fault and to revert it. Plain domain code (no Temporal): drill
 * activities adapt them.
 *
 * Rules every injector keeps:
 * - inject and revert are idempotent, keyed by the fault id: a retried
 *   activity neither injects twice nor fails because the fault is already there;
 * - what revert needs (saved original bytes, pids, the proxy's port) is written
 *   to `stateDir` BEFORE the fault takes effect, so a revert works after the
 *   injecting process crashed, and `active` can tell whether anything is left;
 * - nothing secret and no file name goes into the returned details.
 */
import type { LoadedConfig } from '../config/load';
import type { Logger } from '../logging/logger';
import type { FaultKind, FaultSpec } from './scenario';

export interface FaultContext {
  config: LoadedConfig;
  drillId: string;
  /** `<dataDir>/drills/<drillId>/faults/<faultId>/`: the injector's own state, kept until the drill is cleaned up */
  stateDir: string;
  logger: Logger;
  /** called on long work (activities heartbeat) */
  progress?: (detail: string) => void;
}

/** Where a fault must be injected: a drill worker (storage, processes it supervises) or a node's agent (its files). */
export type FaultPlacement = { on: 'drill' } | { on: 'node'; node: string };

export interface InjectedFault {
  faultId: string;
  kind: FaultKind;
  injectedAt: string;
  /** small facts for the report (target node, object kind, proxy port, duration) */
  detail: Record<string, string | number | boolean>;
}

export interface RevertedFault {
  faultId: string;
  /** false: there was nothing to revert (never injected, or already reverted) */
  reverted: boolean;
  revertedAt: string;
  detail: Record<string, string | number | boolean>;
}

export interface FaultInjector<S extends FaultSpec = FaultSpec> {
  readonly kind: S['kind'];
  placement(spec: S): FaultPlacement;
  inject(ctx: FaultContext, spec: S, faultId: string): Promise<InjectedFault>;
  revert(ctx: FaultContext, spec: S, faultId: string): Promise<RevertedFault>;
  /** true while the fault is still in effect (for the "nothing left behind" check) */
  active(ctx: FaultContext, spec: S, faultId: string): Promise<boolean>;
}
