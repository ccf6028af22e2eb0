/**
 * crash-orchestrator: SIGKILLs the supervised orchestrator worker (started
 * with `lifeline worker --role orchestrator --detach`, recorded in
 * `<dataDir>/run/orchestrator-worker.json`). The drill workflow waits
 * `restartAfter`, then reverts: the worker is started again with the same
 * arguments. Work in flight is not lost: Temporal hands it to the new worker.
 */
import { restartFromRecord, supervisedWorker } from '../../workers/supervised';
import type { ProcessRecord } from '../../nodes/processes';
import type { FaultInjector, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, killGroup, readFaultState, sleep, writeFaultState, type BaseFaultState } from './state';

type Spec = Extract<FaultSpec, { kind: 'crash-orchestrator' }>;
interface State extends BaseFaultState {
  record: ProcessRecord;
}

export const crashOrchestrator: FaultInjector<Spec> = {
  kind: 'crash-orchestrator',
  placement: () => ({ on: 'drill' }),
  async inject(ctx, spec, faultId) {
    const done = readFaultState<State>(ctx);
    if (done) return { faultId, kind: 'crash-orchestrator', injectedAt: done.injectedAt, detail: { restartAfter: spec.restartAfter } };
    const w = supervisedWorker(ctx.config, 'orchestrator');
    if (!w.record || !w.alive) {
      throw new FaultNotApplicable('crash-orchestrator: no supervised orchestrator worker runs (start it with `lifeline worker --role orchestrator --detach`)');
    }
    const state: State = { injectedAt: new Date().toISOString(), record: w.record };
    writeFaultState(ctx, state);
    killGroup(w.record.pid);
    for (let i = 0; i < 100 && supervisedWorker(ctx.config, 'orchestrator').alive; i++) await sleep(100);
    return { faultId, kind: 'crash-orchestrator', injectedAt: state.injectedAt, detail: { restartAfter: spec.restartAfter } };
  },
  async revert(ctx, _spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<State>(ctx);
    const now = new Date().toISOString();
    if (!st) return { faultId, reverted: false, revertedAt: now, detail: { note: 'never injected' } };
    const alive = supervisedWorker(ctx.config, 'orchestrator').alive;
    const rec = alive ? null : await restartFromRecord(ctx.config, 'orchestrator', st.record);
    writeFaultState(ctx, { ...st, revertedAt: st.revertedAt ?? now });
    return { faultId, reverted: rec !== null, revertedAt: now, detail: { note: rec ? 'orchestrator worker started again' : 'orchestrator worker running' } };
  },
  async active(ctx) {
    if (!readFaultState<State>(ctx)) return false;
    return !supervisedWorker(ctx.config, 'orchestrator').alive;
  },
};
