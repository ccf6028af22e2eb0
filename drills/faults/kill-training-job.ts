/**
 * kill-training-job: SIGKILLs a training job's process group, as a crash
 * would (no `stopped` event in its log). Revert: if the job is neither running
 * nor done (no recovery restarted it), it is started again, resuming from its
 * checkpoint folder on the node.
 */
import { jobProgress, resumePath, startTrainingJob, trainingJob } from '../../training/jobs';
import type { FaultInjector, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, killGroup, readFaultState, sleep, writeFaultState, type BaseFaultState } from './state';

type Spec = Extract<FaultSpec, { kind: 'kill-training-job' }>;
interface State extends BaseFaultState {
  pid: number;
  runId: string;
  step: number | null;
}

export const killTrainingJob: FaultInjector<Spec> = {
  kind: 'kill-training-job',
  placement: () => ({ on: 'drill' }),
  async inject(ctx, spec, faultId) {
    const node = trainingJob(ctx.config, spec.job).node;
    const done = readFaultState<State>(ctx);
    if (done) return { faultId, kind: 'kill-training-job', injectedAt: done.injectedAt, detail: { job: spec.job, node, step: done.step ?? -1 } };
    const p = jobProgress(ctx.config, spec.job);
    if (p.state !== 'running' || !p.pid) throw new FaultNotApplicable(`kill-training-job: training job ${spec.job} on node ${node} is not running (${p.state}); start it before the drill`);
    const state: State = { injectedAt: new Date().toISOString(), pid: p.pid, runId: p.runId ?? '', step: p.step ?? null };
    writeFaultState(ctx, state);
    killGroup(p.pid);
    for (let i = 0; i < 100 && jobProgress(ctx.config, spec.job).state === 'running'; i++) await sleep(100);
    return { faultId, kind: 'kill-training-job', injectedAt: state.injectedAt, detail: { job: spec.job, node, step: state.step ?? -1 } };
  },
  async revert(ctx, spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<State>(ctx);
    const now = new Date().toISOString();
    if (!st) return { faultId, reverted: false, revertedAt: now, detail: { job: spec.job, note: 'never injected' } };
    const p = jobProgress(ctx.config, spec.job);
    if (p.state === 'running' || p.state === 'done') {
      writeFaultState(ctx, { ...st, revertedAt: st.revertedAt ?? now });
      return { faultId, reverted: false, revertedAt: now, detail: { job: spec.job, note: p.runId === st.runId ? 'job running' : 'restarted by the recovery' } };
    }
    const started = await startTrainingJob(ctx.config, spec.job, { runId: `drill-revert-${faultId}`.replace(/[^A-Za-z0-9._-]/g, '_'), resumeFrom: resumePath(ctx.config, spec.job) });
    writeFaultState(ctx, { ...st, revertedAt: now });
    return { faultId, reverted: true, revertedAt: now, detail: { job: spec.job, note: 'restarted by the drill', pid: started.pid } };
  },
  async active(ctx, spec) {
    if (!readFaultState<State>(ctx)) return false;
    const s = jobProgress(ctx.config, spec.job).state;
    return s !== 'running' && s !== 'done';
  },
};
