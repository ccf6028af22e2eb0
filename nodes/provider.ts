/**
 * NodeProvider: how Lifeline rebuilds a node after a failure — a fresh node
 * root, a node agent (`lifeline worker --role node-agent --node <id>`) for
 * it, and the way back (stop the agent, tear down a half-built node).
 *
 * Plain domain code (no Temporal): activities adapt it. Every operation is
 * idempotent and keyed by ids, so a retried activity — or a compensation after
 * a failure — is safe. A provider for SSH hosts or Kubernetes implements the
 * same interface (provision = prepare the host / create the pod's volume,
 * startAgent = start the agent there); workflows only ever see node ids.
 */
import type { LoadedConfig } from '../config/load';

export interface ProvisionResult {
  node: string;
  /** where the node's data lives (for `local`: the folder) */
  root: string;
  /** this provisioning (the caller's id) owns the root: teardown may remove it */
  provisionId: string;
  /** false when a retry found the root already provisioned by the same id */
  created: boolean;
}

export interface AgentState {
  node: string;
  up: boolean;
  pid?: number;
  startedAt?: string;
  /** where the agent's output goes (provider-specific: a file, a pod's log) */
  log?: string;
}

export interface NodeProvider {
  readonly kind: string;
  /**
   * A fresh, empty node root owned by `provisionId`. Refuses (NodeNotEmptyError)
   * a root that holds anything this provisioning did not create: data is never destroyed.
   */
  provision(node: string, provisionId: string): Promise<ProvisionResult>;
  /** Removes the root built by `provisionId` (and nothing else). */
  teardown(node: string, provisionId: string): Promise<{ node: string; removed: boolean }>;
  /** Starts the node's agent, or returns the one already running. */
  startAgent(node: string): Promise<AgentState>;
  /** Stops the node's agent (SIGTERM, then SIGKILL after the grace period). */
  stopAgent(node: string): Promise<AgentState & { stopped: 'not-running' | 'terminated' | 'killed' }>;
  isAgentUp(node: string): Promise<AgentState>;
  /** What is left of the node's root: missing, empty, intact (every asset folder there: only processes were lost) or partial. */
  rootState(node: string): Promise<'missing' | 'empty' | 'intact' | 'partial'>;
  /** Moves a compromised root aside (kept as evidence, never deleted) so a fresh one can be built; idempotent by id. */
  setAside(node: string, id: string): Promise<{ node: string; movedTo: string | null }>;
}

/** The node's root holds data that this provisioning did not create. */
export class NodeNotEmptyError extends Error {
  override name = 'NodeNotEmptyError';
}

/** The node's config does not allow the operation (no root, unknown provider, undeclared node). */
export class NodeConfigError extends Error {
  override name = 'NodeConfigError';
}

export type NodeProviderFactory = (config: LoadedConfig) => NodeProvider;
