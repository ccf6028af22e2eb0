/**
 * Training jobs on a node: start one (detached, its stdout JSON lines in a
 * log file), stop it (SIGTERM, then SIGKILL), and read its progress from those
 * JSON lines (the demo trainer's events: start/step/checkpoint/done/stopped/
 * error). Records live in the node's work folder:
 * `<devstack.dataDir>/work/node-<id>/jobs/<job>/` (`process.json`,
 * `run-<runId>.log`). Plain domain code, no Temporal.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeWorkDir, resolveAsset } from '../backups/asset';
import type { LoadedConfig } from '../config/load';
import { resolveFromRoot } from '../config/root';
import type { TrainingJobConfig } from '../config/training-jobs';
import { readProcessRecord, recordAlive, groupAlive, startRecordedProcess, stopRecordedProcess, type ProcessRecord } from '../nodes/processes';

export class TrainingJobConfigError extends Error {
  override name = 'TrainingJobConfigError';
}

export function trainingJob(config: LoadedConfig, job: string): TrainingJobConfig {
  const j = config.trainingJobs[job];
  if (!j) throw new TrainingJobConfigError(`training job ${job} is not declared under trainingJobs (declared: ${Object.keys(config.trainingJobs).join(', ') || 'none'})`);
  return j;
}

export function jobDir(config: LoadedConfig, job: string): string {
  return join(nodeWorkDir(config, trainingJob(config, job).node), 'jobs', job);
}
const recordFile = (config: LoadedConfig, job: string) => join(jobDir(config, job), 'process.json');

export type JobState = 'running' | 'done' | 'stopped' | 'failed' | 'exited' | 'never-started';

export interface JobProgress {
  job: string;
  state: JobState;
  runId?: string;
  pid?: number;
  /** the step the run started from (0, or the resumed checkpoint's step) */
  startStep?: number;
  /** newest step logged (step, checkpoint, done or stopped event) */
  step?: number;
  /** newest checkpointed step */
  checkpointStep?: number;
  totalSteps?: number;
  /** of the `done` event */
  weightsSha256?: string;
  /** kind of an `error` event (checkpoint-refused, data-refused, failure) */
  errorKind?: string;
}

export interface StartedJob {
  job: string;
  runId: string;
  pid: number;
  startedAt: string;
  /** true when the job was already running (this call started nothing) */
  alreadyRunning: boolean;
}

/** What a JSON-lines log says about a run. Non-JSON lines (stderr) are ignored. */
export function parseJobLog(text: string): Omit<JobProgress, 'job' | 'state' | 'runId' | 'pid'> & { ended?: 'done' | 'stopped' | 'failed' } {
  const out: ReturnType<typeof parseJobLog> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line cut by a kill
    }
    const step = typeof e.step === 'number' ? e.step : undefined;
    switch (e.event) {
      case 'start':
        out.startStep = step;
        if (step !== undefined) out.step = Math.max(out.step ?? 0, step);
        if (typeof e.totalSteps === 'number') out.totalSteps = e.totalSteps;
        break;
      case 'step':
        if (step !== undefined) out.step = Math.max(out.step ?? 0, step);
        break;
      case 'checkpoint':
        if (step !== undefined) {
          out.step = Math.max(out.step ?? 0, step);
          out.checkpointStep = Math.max(out.checkpointStep ?? 0, step);
        }
        break;
      case 'done':
        if (step !== undefined) out.step = Math.max(out.step ?? 0, step);
        if (typeof e.weightsSha256 === 'string') out.weightsSha256 = e.weightsSha256;
        out.ended = 'done';
        break;
      case 'stopped':
        if (step !== undefined) out.step = Math.max(out.step ?? 0, step);
        out.ended = 'stopped';
        break;
      case 'error':
        if (typeof e.kind === 'string') out.errorKind = e.kind;
        out.ended = 'failed';
        break;
    }
  }
  return out;
}

export function jobProgress(config: LoadedConfig, job: string): JobProgress {
  const rec = readProcessRecord(recordFile(config, job));
  if (!rec) return { job, state: 'never-started' };
  let text = '';
  try {
    text = readFileSync(rec.logFile, 'utf8');
  } catch {
    // no output yet
  }
  const { ended, ...p } = parseJobLog(text);
  const running = recordAlive(rec) || groupAlive(rec);
  const state: JobState = running ? 'running' : (ended ?? 'exited');
  return { job, state, runId: rec.info.runId, pid: rec.pid, ...p };
}

/**
 * Starts the job (idempotent: a running job is returned as it is). With
 * `resumeFrom`, the path goes to the job as its resume env variable or option.
 */
export async function startTrainingJob(config: LoadedConfig, job: string, opts: { runId: string; resumeFrom?: string; env?: NodeJS.ProcessEnv }): Promise<StartedJob> {
  const j = trainingJob(config, job);
  const file = recordFile(config, job);
  const rec = readProcessRecord(file);
  if (rec && (recordAlive(rec) || groupAlive(rec))) {
    return { job, runId: rec.info.runId ?? '', pid: rec.pid, startedAt: rec.startedAt, alreadyRunning: true };
  }
  const argv = [...j.command];
  const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env) };
  if (opts.resumeFrom !== undefined) {
    if ('env' in j.resume) env[j.resume.env] = opts.resumeFrom;
    else argv.push(j.resume.arg, opts.resumeFrom);
  }
  const started: ProcessRecord = await startRecordedProcess({
    argv,
    cwd: resolveFromRoot(j.workingDir, config.source.root),
    env,
    logFile: join(jobDir(config, job), `run-${opts.runId}.log`),
    recordFile: file,
    info: { job, runId: opts.runId, node: j.node },
  });
  return { job, runId: opts.runId, pid: started.pid, startedAt: started.startedAt, alreadyRunning: false };
}

/** Stops the job's process group: SIGTERM, then SIGKILL after graceMs. */
export async function stopTrainingJob(config: LoadedConfig, job: string, graceMs: number): Promise<{ job: string; stopped: 'not-running' | 'terminated' | 'killed' }> {
  const file = recordFile(config, job);
  const rec = readProcessRecord(file);
  if (!rec) return { job, stopped: 'not-running' };
  // The record stays: progress keeps reading the run's log after the stop.
  return { job, stopped: await stopRecordedProcess(rec, graceMs) };
}

/** Where a recovered job resumes from: its checkpoint asset's folder on the node. */
export function resumePath(config: LoadedConfig, job: string): string {
  return resolveAsset(config, trainingJob(config, job).checkpointAsset).root;
}
