/**
 * Node-agent activities for training jobs: thin, idempotent adapters over
 * training/jobs.ts. They run on the job's node (`lifeline-node-<id>`); config
 * problems and programs that cannot start are non-retryable. Results carry
 * steps, states and pids only — no paths.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { jobProgress, resumePath, startTrainingJob, stopTrainingJob, trainingJob, TrainingJobConfigError, type JobProgress, type StartedJob } from '../training/jobs';
import { RecoveryFailureTypes } from '../workflows/recovery-types';
import type { ActivityDeps } from './index';

export interface TrainingJobStartInput {
  job: string;
  /** names the run's log file; the same id on a retry finds the same run */
  runId: string;
  /** resume from the job's checkpoint asset folder (the restored checkpoints) */
  resume: boolean;
}

export interface WaitForStepInput {
  job: string;
  /** returns once the job logged a step greater than this; 'start' = the step the run started (resumed) from */
  step: number | 'start';
  timeoutSeconds: number;
  pollMs?: number;
}

export function createTrainingActivities(deps: ActivityDeps) {
  const checkJob = (job: string, op: string) => {
    let node: string;
    try {
      node = trainingJob(deps.config, job).node;
    } catch (err) {
      if (err instanceof TrainingJobConfigError) throw ApplicationFailure.nonRetryable(`${op}: ${err.message}`, RecoveryFailureTypes.Config);
      throw err;
    }
    if (!deps.nodeId) throw ApplicationFailure.nonRetryable(`${op} must run on a node agent, but reached a worker without a node id (task queue routing is wrong)`, RecoveryFailureTypes.Config);
    if (node !== deps.nodeId) {
      throw ApplicationFailure.nonRetryable(`training job ${job} runs on node ${node}, but this node agent is node ${deps.nodeId}: the node agents' configs disagree about trainingJobs.${job}.node`, RecoveryFailureTypes.Config);
    }
  };

  return {
    async trainingJobStart(input: TrainingJobStartInput): Promise<StartedJob> {
      checkJob(input.job, 'start training job');
      try {
        const started = await startTrainingJob(deps.config, input.job, {
          runId: input.runId,
          resumeFrom: input.resume ? resumePath(deps.config, input.job) : undefined,
        });
        deps.logger.info({ job: input.job, runId: started.runId, pid: started.pid, alreadyRunning: started.alreadyRunning, resume: input.resume }, 'training job started');
        return started;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EACCES') {
          throw ApplicationFailure.nonRetryable(`training job ${input.job} on node ${deps.nodeId}: its command cannot be started (${code}); check trainingJobs.${input.job}.command and workingDir`, RecoveryFailureTypes.StartFailed);
        }
        throw err;
      }
    },

    async trainingJobStop(input: { job: string; graceSeconds?: number }): Promise<{ job: string; stopped: 'not-running' | 'terminated' | 'killed' }> {
      checkJob(input.job, 'stop training job');
      const ctx = Context.current();
      const stopping = setInterval(() => ctx.heartbeat(), 2000);
      try {
        const r = await stopTrainingJob(deps.config, input.job, (input.graceSeconds ?? 30) * 1000);
        deps.logger.info({ job: input.job, stopped: r.stopped }, 'training job stopped');
        return r;
      } finally {
        clearInterval(stopping);
      }
    },

    async trainingJobProgress(input: { job: string }): Promise<JobProgress> {
      checkJob(input.job, 'training job progress');
      return jobProgress(deps.config, input.job);
    },

    /** Heartbeats the job's progress until it logs a step beyond `step`; fails at once when the job ends first. */
    async trainingJobWaitForStepBeyond(input: WaitForStepInput): Promise<JobProgress> {
      checkJob(input.job, 'wait for training progress');
      const ctx = Context.current();
      const deadline = Date.now() + input.timeoutSeconds * 1000;
      for (;;) {
        const p = jobProgress(deps.config, input.job);
        ctx.heartbeat({ step: p.step ?? null, state: p.state });
        const beyond = input.step === 'start' ? p.startStep : input.step;
        if (beyond !== undefined && (p.step ?? -1) > beyond) return p;
        if (p.state !== 'running') {
          throw ApplicationFailure.nonRetryable(
            `training job ${input.job} on node ${deps.nodeId} ended (${p.state}${p.errorKind ? `: ${p.errorKind}` : ''}) at step ${p.step ?? 'none'} before passing step ${input.step === 'start' ? `its start step (${p.startStep ?? 'none'})` : input.step}; see its log in the node's work folder`,
            RecoveryFailureTypes.JobExited,
          );
        }
        if (Date.now() > deadline) {
          throw ApplicationFailure.nonRetryable(
            `training job ${input.job} on node ${deps.nodeId} did not pass step ${input.step === 'start' ? `its start step (${p.startStep ?? 'none'})` : input.step} within ${input.timeoutSeconds} s (newest step ${p.step ?? 'none'})`,
            RecoveryFailureTypes.JobNotAdvancing,
          );
        }
        await ctx.sleep(input.pollMs ?? 500);
      }
    },
  };
}

export type TrainingActivities = ReturnType<typeof createTrainingActivities>;
