/**
 * kill-node-agent: SIGKILLs the node agent's process group (the node's files
 * and training jobs stay). Only an agent Lifeline started and recorded (the
 * local node provider's `agent.json`) can be killed. Revert: start the agent
 * again if it is still down.
 */
import { LocalNodeProvider } from '../../nodes/local';
import type { FaultInjector, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, killGroup, readFaultState, sleep, writeFaultState, type BaseFaultState } from './state';

type Spec = Extract<FaultSpec, { kind: 'kill-node-agent' }>;
interface State extends BaseFaultState {
  pid: number;
}

export const killNodeAgent: FaultInjector<Spec> = {
  kind: 'kill-node-agent',
  placement: () => ({ on: 'drill' }),
  async inject(ctx, spec, faultId) {
    const done = readFaultState<State>(ctx);
    if (done) return { faultId, kind: 'kill-node-agent', injectedAt: done.injectedAt, detail: { node: spec.node } };
    const provider = new LocalNodeProvider(ctx.config);
    const agent = await provider.isAgentUp(spec.node);
    if (!agent.up || !agent.pid) throw new FaultNotApplicable(`kill-node-agent: node ${spec.node} has no running node agent started by Lifeline (the local provider's record); start it with the node provider before the drill`);
    const state: State = { injectedAt: new Date().toISOString(), pid: agent.pid };
    writeFaultState(ctx, state);
    killGroup(agent.pid);
    for (let i = 0; i < 100 && (await provider.isAgentUp(spec.node)).up; i++) await sleep(100);
    return { faultId, kind: 'kill-node-agent', injectedAt: state.injectedAt, detail: { node: spec.node } };
  },
  async revert(ctx, spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<State>(ctx);
    const now = new Date().toISOString();
    if (!st) return { faultId, reverted: false, revertedAt: now, detail: { node: spec.node, note: 'never injected' } };
    const provider = new LocalNodeProvider(ctx.config);
    let reverted = false;
    if (!(await provider.isAgentUp(spec.node)).up) {
      await provider.startAgent(spec.node);
      reverted = true;
    }
    writeFaultState(ctx, { ...st, revertedAt: st.revertedAt ?? now });
    return { faultId, reverted, revertedAt: now, detail: { node: spec.node, note: reverted ? 'agent started by the drill' : 'agent running (restarted by the recovery)' } };
  },
  async active(ctx, spec) {
    if (!readFaultState<State>(ctx)) return false;
    return !(await new LocalNodeProvider(ctx.config).isAgentUp(spec.node)).up;
  },
};
