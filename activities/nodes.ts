/**
 * Node-provider activities: rebuild a node (provision, start its agent, tear
 * it down) through its NodeProvider — run by the orchestrator — plus
 * `nodeAgentHello`, which runs on the node agent itself and so proves that it
 * polls its task queue. Idempotent: keyed by node id and provisioning id.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { resolveAsset } from '../backups/asset';
import { nodeRecoveryPlan, type RestoreStage } from '../config/training-jobs';
import { nodeProvider, type LocalProviderOptions } from '../nodes/local';
import { NodeConfigError, NodeNotEmptyError, type AgentState, type ProvisionResult } from '../nodes/provider';
import { RecoveryFailureTypes } from '../workflows/recovery-types';
import type { ActivityDeps } from './index';

export interface NodeRecoveryPlanResult {
  node: string;
  /** restore order; target = the asset's folder on the node (from config) */
  assets: { asset: string; kind: string; stage: RestoreStage; target: string }[];
  jobs: { job: string; checkpointAsset: string }[];
}

export function createNodeActivities(deps: ActivityDeps, opts: LocalProviderOptions = {}) {
  const provider = (node: string) => {
    try {
      return nodeProvider(deps.config, node, opts);
    } catch (err) {
      throw mapNodeError(err);
    }
  };
  const mapped = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      throw mapNodeError(err);
    }
  };
  return {
    /** What rebuilding the node restores (in order, each into its asset folder) and which jobs it restarts. */
    async nodeRecoveryPlan(input: { node: string }): Promise<NodeRecoveryPlanResult> {
      try {
        const plan = nodeRecoveryPlan(deps.config, input.node);
        return { node: plan.node, assets: plan.assets.map((a) => ({ ...a, target: resolveAsset(deps.config, a.asset).root })), jobs: plan.jobs };
      } catch (err) {
        throw ApplicationFailure.nonRetryable(`plan the recovery of node ${input.node}: ${(err as Error).message}`, RecoveryFailureTypes.Config);
      }
    },
    async nodeProvision(input: { node: string; provisionId: string }): Promise<Omit<ProvisionResult, 'root'>> {
      // the root path stays out of the workflow history
      const { root: _root, ...r } = await mapped(() => provider(input.node).provision(input.node, input.provisionId));
      return r;
    },
    async nodeTeardown(input: { node: string; provisionId: string }): Promise<{ node: string; removed: boolean }> {
      return mapped(() => provider(input.node).teardown(input.node, input.provisionId));
    },
    async nodeAgentStart(input: { node: string }): Promise<Omit<AgentState, 'log'>> {
      const { log: _log, ...r } = await mapped(() => provider(input.node).startAgent(input.node));
      return r;
    },
    async nodeAgentStop(input: { node: string }): Promise<Omit<AgentState, 'log'> & { stopped: string }> {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 2000);
      try {
        const { log: _log, ...r } = await mapped(() => provider(input.node).stopAgent(input.node));
        return r;
      } finally {
        clearInterval(beat);
      }
    },
    async nodeAgentStatus(input: { node: string }): Promise<Omit<AgentState, 'log'>> {
      const { log: _log, ...r } = await mapped(() => provider(input.node).isAgentUp(input.node));
      return r;
    },
    /** intact: the root and every asset folder of the node are there (only its processes were lost); missing/empty/partial otherwise. */
    async nodeRootState(input: { node: string }): Promise<{ node: string; state: 'missing' | 'empty' | 'intact' | 'partial' }> {
      return { node: input.node, state: await mapped(() => provider(input.node).rootState(input.node)) };
    },
    /** Moves a compromised root aside (evidence); the path stays out of the history. */
    async nodeSetAside(input: { node: string; id: string }): Promise<{ node: string; setAside: boolean }> {
      const r = await mapped(() => provider(input.node).setAside(input.node, input.id));
      return { node: input.node, setAside: r.movedTo !== null };
    },
    /** Runs on the node agent: answering proves it polls `lifeline-node-<id>`. */
    async nodeAgentHello(): Promise<{ node: string; pid: number }> {
      if (!deps.nodeId) throw ApplicationFailure.nonRetryable('nodeAgentHello reached a worker without a node id (task queue routing is wrong)', RecoveryFailureTypes.Config);
      return { node: deps.nodeId, pid: process.pid };
    },
  };
}

function mapNodeError(err: unknown): unknown {
  if (err instanceof NodeNotEmptyError) return ApplicationFailure.nonRetryable(err.message, RecoveryFailureTypes.NodeNotEmpty);
  if (err instanceof NodeConfigError) return ApplicationFailure.nonRetryable(err.message, RecoveryFailureTypes.Config);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT' || code === 'EACCES') return ApplicationFailure.nonRetryable(`node agent cannot be started (${code}): ${(err as Error).message}`, RecoveryFailureTypes.StartFailed);
  return err;
}

export type NodeActivities = ReturnType<typeof createNodeActivities>;
