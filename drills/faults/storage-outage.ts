/**
 * `storage-outage`: the embedded MinIO (devstack) is stopped — through its pid
 * record, like `lifeline down`, leaving Temporal running — and started again on
 * revert, which the drill runs after `duration` and in any case when the drill
 * ends or is aborted. Revert waits until MinIO is healthy again.
 *
 * An external storage endpoint cannot be stopped by Lifeline: such scenarios
 * are refused when validated (use a `network` fault with `cut: true` instead).
 */
import type { LoadedConfig } from '../../config/load';
import { minioHealthy } from '../../devstack/health';
import { minioEndpoint, stackLayout, stackSettings, type StackSettings } from '../../devstack/layout';
import { runningRecord, stopService, up } from '../../devstack/stack';
import type { FaultInjector, InjectedFault, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, readFaultState, writeFaultState } from './state';
import { storageOutageProblem } from './storage-problems';

export { storageOutageProblem };

type OutageSpec = Extract<FaultSpec, { kind: 'storage-outage' }>;

interface OutageState {
  faultId: string;
  /** stopping: about to stop (or stopped, the state not yet updated); injected: stopped; reverted: running again */
  phase: 'stopping' | 'injected' | 'reverted';
  endpoint: string;
  stoppedPid?: number;
  /** when the fault was (or is about to be) injected */
  injectedAt: string;
  revertedAt?: string;
  restartSeconds?: number;
}

/** Only MinIO: `up` must not start (or wait for) the embedded Temporal here. */
function minioOnly(config: LoadedConfig): StackSettings {
  const s = stackSettings(config);
  return { ...s, temporal: { ...s.temporal, enabled: false } };
}

export const storageOutageFault: FaultInjector<OutageSpec> = {
  kind: 'storage-outage',
  placement: () => ({ on: 'drill' }),

  async inject(ctx, spec, faultId): Promise<InjectedFault> {
    const problem = storageOutageProblem(ctx.config);
    if (problem) throw new FaultNotApplicable(problem);
    const settings = minioOnly(ctx.config);
    const endpoint = minioEndpoint(settings);
    let st = readFaultState<OutageState>(ctx);
    if (st && st.faultId !== faultId) throw new FaultNotApplicable(`fault state ${ctx.stateDir} belongs to fault ${st.faultId}, not ${faultId}`);
    if (st?.phase === 'reverted') throw new FaultNotApplicable(`fault ${faultId} was already injected and reverted; a new outage needs a new fault id`);
    if (!st) {
      if (!(await minioHealthy(endpoint, 2000))) throw new FaultNotApplicable(`the embedded MinIO at ${endpoint} is not running or not healthy; start it with \`lifeline up\` before the drill`);
      st = { faultId, phase: 'stopping', endpoint, injectedAt: new Date().toISOString() };
      // Recorded before MinIO stops: a revert after a crash from here on starts it again.
      writeFaultState(ctx, st);
    }
    if (st.phase === 'stopping') {
      ctx.progress?.('stopping the embedded MinIO');
      const stopped = await stopService(settings, 'minio', { graceMs: 10_000 });
      st = { ...st, phase: 'injected', stoppedPid: stopped.pid ?? st.stoppedPid, injectedAt: new Date().toISOString() };
      writeFaultState(ctx, st);
      ctx.logger.info({ drill: ctx.drillId, faultId, endpoint, pid: stopped.pid, duration: spec.duration }, 'fault injected: embedded MinIO stopped');
    }
    return { faultId, kind: 'storage-outage', injectedAt: st.injectedAt!, detail: { endpoint: st.endpoint, duration: spec.duration, ...(st.stoppedPid ? { stoppedPid: st.stoppedPid } : {}) } };
  },

  async revert(ctx, _spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<OutageState>(ctx);
    const now = () => new Date().toISOString();
    if (!st || st.faultId !== faultId) return { faultId, reverted: false, revertedAt: now(), detail: {} };
    if (st.phase === 'reverted') return { faultId, reverted: false, revertedAt: st.revertedAt!, detail: { endpoint: st.endpoint } };
    ctx.progress?.('starting the embedded MinIO again');
    const t0 = Date.now();
    // Idempotent: reuses a MinIO that is already back (started by a previous attempt or by hand).
    const result = (await up(minioOnly(ctx.config), { healthTimeoutMs: 180_000, log: (m) => ctx.progress?.(m) })).find((r) => r.service === 'minio');
    const done: OutageState = { ...st, phase: 'reverted', revertedAt: now(), restartSeconds: Math.round((Date.now() - t0) / 100) / 10 };
    writeFaultState(ctx, done);
    ctx.logger.info({ drill: ctx.drillId, faultId, endpoint: st.endpoint, pid: result?.pid, state: result?.state }, 'fault reverted: embedded MinIO running again');
    return { faultId, reverted: true, revertedAt: done.revertedAt!, detail: { endpoint: st.endpoint, restartSeconds: done.restartSeconds!, minio: result?.state ?? 'unknown' } };
  },

  async active(ctx, _spec, faultId): Promise<boolean> {
    const st = readFaultState<OutageState>(ctx);
    if (!st || st.faultId !== faultId || st.phase === 'reverted') return false;
    // In effect while the MinIO we stopped has not been started again (a running one that is slow to answer under load is not an outage).
    return runningRecord(stackLayout(stackSettings(ctx.config).dataDir).minioRecord) === null;
  },
};
