/**
 * destroy-node: the node is lost with everything on it — its training jobs and
 * its agent are SIGKILLed and its root folder disappears. The folder is moved
 * into the fault's state folder (not deleted), so that revert can put it back
 * when no recovery rebuilt the node (an aborted drill); after a recovery the
 * saved copy is simply removed.
 */
import { cpSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LocalNodeProvider, localNodeRoot } from '../../nodes/local';
import { jobProgress, resumePath, startTrainingJob, stopTrainingJob } from '../../training/jobs';
import type { FaultInjector, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, readFaultState, writeFaultState, type BaseFaultState } from './state';

type Spec = Extract<FaultSpec, { kind: 'destroy-node' }>;
interface State extends BaseFaultState {
  /** the node's jobs that were running, to start again when the drill itself puts the node back */
  jobs: string[];
  moved: boolean;
}

const nodeJobs = (ctx: Parameters<FaultInjector['inject']>[0], node: string) => Object.keys(ctx.config.trainingJobs).filter((j) => ctx.config.trainingJobs[j]!.node === node);
const savedRoot = (stateDir: string) => join(stateDir, 'root');
const hasContent = (dir: string) => existsSync(dir) && readdirSync(dir).length > 0;

function move(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    cpSync(from, to, { recursive: true, preserveTimestamps: true });
    rmSync(from, { recursive: true, force: true });
  }
}

export const destroyNode: FaultInjector<Spec> = {
  kind: 'destroy-node',
  placement: () => ({ on: 'drill' }),
  async inject(ctx, spec, faultId) {
    const root = localNodeRoot(ctx.config, spec.node);
    let st = readFaultState<State>(ctx);
    if (!st) {
      if (!hasContent(root)) throw new FaultNotApplicable(`destroy-node: node ${spec.node} has nothing to destroy (its root is missing or empty)`);
      st = { injectedAt: new Date().toISOString(), jobs: nodeJobs(ctx, spec.node).filter((j) => jobProgress(ctx.config, j).state === 'running'), moved: false };
      writeFaultState(ctx, st);
    }
    // processes first (SIGKILL: no grace) — the agent before its jobs, so no probe answer reports the
    // jobs' deaths as a job failure — then the folder; each step is safe to repeat
    await new LocalNodeProvider(ctx.config, { agentGraceMs: 0 }).stopAgent(spec.node);
    for (const j of nodeJobs(ctx, spec.node)) await stopTrainingJob(ctx.config, j, 0);
    if (!st.moved) {
      if (existsSync(root)) move(root, savedRoot(ctx.stateDir));
      st = { ...st, moved: true };
      writeFaultState(ctx, st);
    }
    return { faultId, kind: 'destroy-node', injectedAt: st.injectedAt, detail: { node: spec.node, jobsKilled: st.jobs.length } };
  },
  async revert(ctx, spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<State>(ctx);
    const now = new Date().toISOString();
    if (!st) return { faultId, reverted: false, revertedAt: now, detail: { node: spec.node, note: 'never injected' } };
    const root = localNodeRoot(ctx.config, spec.node);
    const saved = savedRoot(ctx.stateDir);
    const provider = new LocalNodeProvider(ctx.config);
    let note: string;
    if (!hasContent(root) && existsSync(saved)) {
      // not rebuilt: the drill puts the node back as it was, agent and jobs included
      rmSync(root, { recursive: true, force: true });
      move(saved, root);
      await provider.startAgent(spec.node);
      for (const j of st.jobs) {
        const s = jobProgress(ctx.config, j).state;
        if (s !== 'running' && s !== 'done') await startTrainingJob(ctx.config, j, { runId: `drill-revert-${faultId}`.replace(/[^A-Za-z0-9._-]/g, '_'), resumeFrom: resumePath(ctx.config, j) });
      }
      note = 'node put back by the drill';
    } else {
      // rebuilt by the recovery: the drill's copy of the old root is no longer needed
      rmSync(saved, { recursive: true, force: true });
      if (!(await provider.isAgentUp(spec.node)).up) await provider.startAgent(spec.node);
      note = 'node rebuilt by the recovery';
    }
    writeFaultState(ctx, { ...st, revertedAt: st.revertedAt ?? now });
    return { faultId, reverted: note.startsWith('node put back'), revertedAt: now, detail: { node: spec.node, note } };
  },
  async active(ctx, spec) {
    if (!readFaultState<State>(ctx)) return false;
    return !hasContent(localNodeRoot(ctx.config, spec.node)) || !(await new LocalNodeProvider(ctx.config).isAgentUp(spec.node)).up;
  },
};
