/** Training jobs as real child processes of the demo trainer: start (idempotent), progress from its JSON lines, stop, resume. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { jobProgress, parseJobLog, resumePath, startTrainingJob, stopTrainingJob } from '../../training/jobs';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-jobs-test-'));
const ckpt = join(dir, 'n1', 'ckpt');
const trainer = (extra: string[]) => [process.execPath, '--import', 'tsx', 'trainer/train.ts', '--steps', '120', '--checkpoint-dir', ckpt, '--checkpoint-every', '20', '--log-every', '5', ...extra];
const config = configFromObject(
  {
    devstack: { dataDir: join(dir, 'data') },
    tenants: { t: { identity: { env: 'HOME' }, signingKey: { env: 'HOME' } } },
    nodes: { n1: { root: join(dir, 'n1') } },
    assets: { ckpt: { node: 'n1', tenant: 't', kind: 'checkpoint', path: ckpt } },
    trainingJobs: {
      slow: { node: 'n1', command: trainer(['--step-delay-ms', '40']), workingDir: LIFELINE_ROOT, checkpointAsset: 'ckpt' },
      fast: { node: 'n1', command: trainer([]), workingDir: LIFELINE_ROOT, checkpointAsset: 'ckpt', resume: { arg: '--resume' } },
      broken: { node: 'n1', command: [join(dir, 'no-such-trainer')], checkpointAsset: 'ckpt' },
    },
  },
  { checkSecrets: false },
);

afterAll(async () => {
  for (const job of ['slow', 'fast']) await stopTrainingJob(config, job, 1000).catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, f: () => T | undefined, timeoutMs = 120_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('parseJobLog', () => {
  it('takes the newest step and checkpoint, the final hash and how the run ended; skips stderr and torn lines', () => {
    const log = [
      '{"event":"start","step":40,"totalSteps":120,"resumedFrom":"/x/step-000040","ts":"t"}',
      'trainer: some warning on stderr',
      '{"event":"step","step":50,"loss":0.5,"ts":"t"}',
      '{"event":"checkpoint","step":60,"path":"/x/step-000060","ts":"t"}',
      '{"event":"step","step":70,"loss":0.4,"ts":"t"}',
      '{"event":"done","step":120,"weightsSha256":"abc","ts":"t"}',
      '{"event":"step","st',
    ].join('\n');
    expect(parseJobLog(log)).toEqual({ startStep: 40, step: 120, totalSteps: 120, checkpointStep: 60, weightsSha256: 'abc', ended: 'done' });
    expect(parseJobLog('{"event":"error","kind":"checkpoint-refused","message":"m"}\n')).toEqual({ errorKind: 'checkpoint-refused', ended: 'failed' });
    expect(parseJobLog('')).toEqual({});
  });
});

describe('training jobs on a node', () => {
  it('starts once, reports progress, stops with SIGTERM (the trainer checkpoints), and resumes from the checkpoint folder to the end', async () => {
    expect(jobProgress(config, 'slow')).toEqual({ job: 'slow', state: 'never-started' });
    const a = await startTrainingJob(config, 'slow', { runId: 'r1' });
    expect(a).toMatchObject({ job: 'slow', runId: 'r1', alreadyRunning: false });
    const again = await startTrainingJob(config, 'slow', { runId: 'r2' });
    expect(again).toEqual({ ...a, alreadyRunning: true });

    const p = await until('step 20 checkpointed', () => {
      const q = jobProgress(config, 'slow');
      return (q.checkpointStep ?? 0) >= 20 ? q : undefined;
    });
    expect(p).toMatchObject({ state: 'running', runId: 'r1', pid: a.pid, startStep: 0, totalSteps: 120 });
    expect(await stopTrainingJob(config, 'slow', 30_000)).toEqual({ job: 'slow', stopped: 'terminated' });
    const stopped = jobProgress(config, 'slow');
    expect(stopped.state).toBe('stopped');
    expect(stopped.step).toBeLessThan(120);
    expect(stopped.checkpointStep).toBe(stopped.step);
    expect(await stopTrainingJob(config, 'slow', 1000)).toEqual({ job: 'slow', stopped: 'not-running' });

    // resume through --resume <checkpoint asset folder>
    expect(resumePath(config, 'fast')).toBe(ckpt);
    const b = await startTrainingJob(config, 'fast', { runId: 'r3', resumeFrom: resumePath(config, 'fast') });
    expect(b.alreadyRunning).toBe(false);
    const done = await until('the resumed run to end', () => {
      const q = jobProgress(config, 'fast');
      return q.state === 'running' ? undefined : q;
    });
    expect(done).toMatchObject({ state: 'done', startStep: stopped.step, step: 120, checkpointStep: 120 });
    expect(done.weightsSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(readdirSync(join(dir, 'data', 'work', 'node-n1', 'jobs', 'fast'))).toEqual(['process.json', 'run-r3.log']);
  }, 300_000);

  it('a command that does not exist is refused with ENOENT', async () => {
    await expect(startTrainingJob(config, 'broken', { runId: 'x' })).rejects.toMatchObject({ code: 'ENOENT' });
    expect(() => jobProgress(config, 'nope')).toThrow(/not declared under trainingJobs/);
  });
});
