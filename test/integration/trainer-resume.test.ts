/**
 * The demo trainer as Lifeline's disaster-recovery workflows will use it: real
 * child processes, killed with SIGKILL mid-run, resumed from a checkpoint
 * folder. A resumed run must end with exactly the weights of an uninterrupted
 * one (same sha256, byte-identical final checkpoint), and a damaged checkpoint
 * must be refused with a clear message and a non-zero exit — never trained from.
 *
 * Needs no services (it only runs `node --import tsx trainer/train.ts`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latestCompleteCheckpoint, readCheckpoint } from '../../trainer/checkpoint';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const STEPS = 400;
const EVERY = 50;
// The runs that get stopped sleep 10 ms a step: after the checkpoint at step 100 that triggers the
// kill, at least 3 s of steps remain, so a busy machine still delivers the signal mid-run.

interface TrainerEvent {
  event: string;
  step?: number;
  [k: string]: unknown;
}

interface Run {
  child: ChildProcess;
  events: TrainerEvent[];
  stderr: () => string;
  /** Resolves with the first event matching `pred` (rejects if the process exits first). */
  waitFor: (pred: (e: TrainerEvent) => boolean) => Promise<TrainerEvent>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

const children: ChildProcess[] = [];

function start(script: string, args: string[], env: Record<string, string> = {}): Run {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join('trainer', script), ...args], {
    cwd: REPO,
    env: { ...process.env, [`LIFELINE_RESUME_CHECKPOINT`]: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const events: TrainerEvent[] = [];
  const waiters: { pred: (e: TrainerEvent) => boolean; resolve: (e: TrainerEvent) => void; reject: (e: Error) => void }[] = [];
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let e: TrainerEvent;
    try {
      e = JSON.parse(line) as TrainerEvent;
    } catch {
      throw new Error(`trainer printed a line that is not JSON: ${line}`);
    }
    events.push(e);
    for (const w of [...waiters]) {
      if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) => {
    child.on('close', (code, signal) => {
      for (const w of waiters.splice(0)) w.reject(new Error(`trainer exited (${code ?? signal}) first; stderr: ${err}`));
      resolve({ code, signal, ms: Date.now() - t0 });
    });
  });
  return {
    child,
    events,
    stderr: () => err,
    exit,
    waitFor: (pred) => {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ pred, resolve, reject }));
    },
  };
}

async function trainToEnd(args: string[], env?: Record<string, string>) {
  const run = start('train.ts', args, env);
  const exit = await run.exit;
  return { ...exit, events: run.events, stderr: run.stderr() };
}

const only = (events: TrainerEvent[], name: string) => events.filter((e) => e.event === name);
const done = (events: TrainerEvent[]) => {
  const d = only(events, 'done');
  expect(d).toHaveLength(1);
  return d[0]!;
};
const FINAL_FILES = ['model.safetensors', 'optimizer.safetensors', 'state.json', 'COMPLETE'];

let root: string;
let dataDir: string;
let dataSha: string;
/** The uninterrupted run's final weights hash. */
let H: string;
let referenceDir: string;
let killedDir: string;
let killedAt: number;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'trainer-resume-'));
  dataDir = join(root, 'data');
  referenceDir = join(root, 'reference');
  killedDir = join(root, 'killed');
  const made = start('make-dataset.ts', ['--out', dataDir]);
  const exit = await made.exit;
  expect(exit.code, made.stderr()).toBe(0);
  const ev = made.events[0]!;
  expect(ev).toMatchObject({ event: 'dataset', path: dataDir, samples: 3000, classes: 3 });
  dataSha = ev.sha256 as string;
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(root, { recursive: true, force: true });
});

describe('trainer: checkpoint, SIGKILL, resume', () => {
  it('an uninterrupted run checkpoints every 50 steps, keeps the newest 3, logs JSON lines, and really learns', async () => {
    const log = join(root, 'reference.log');
    const r = await trainToEnd(['--steps', String(STEPS), '--checkpoint-every', String(EVERY), '--checkpoint-dir', referenceDir, '--data', dataDir, '--log', log]);
    console.log(`[trainer] uninterrupted ${STEPS} steps: ${r.ms} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');

    const startEv = only(r.events, 'start')[0]!;
    expect(startEv).toMatchObject({ step: 0, totalSteps: STEPS, resumedFrom: null, datasetSha256: dataSha });
    expect(only(r.events, 'checkpoint').map((e) => e.step)).toEqual([50, 100, 150, 200, 250, 300, 350, 400]);
    const d = done(r.events);
    expect(d.step).toBe(STEPS);
    H = d.weightsSha256 as string;
    expect(H).toMatch(/^[0-9a-f]{64}$/);

    // The final checkpoint holds those weights; only the newest 3 remain; nothing temporary is left.
    expect((await readdir(referenceDir)).sort()).toEqual(['step-000300', 'step-000350', 'step-000400']);
    const final = await readCheckpoint(join(referenceDir, 'step-000400'));
    expect(final.weightsSha256).toBe(H);
    expect(d.checkpoint).toBe(final.path);

    // --log gets the same lines as stdout.
    const logged = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as TrainerEvent);
    expect(logged).toEqual(r.events);

    // Real training: full-data loss from ~ln 3 to a fraction of it; batch losses fall too.
    const startLoss = startEv.evalLoss as number;
    expect(startLoss).toBeGreaterThan(1.0);
    expect(d.evalLoss as number).toBeLessThan(startLoss * 0.5);
    expect(d.evalAccuracy as number).toBeGreaterThan(0.8);
    const stepLosses = only(r.events, 'step').map((e) => e.loss as number);
    expect(stepLosses).toHaveLength(STEPS / 10);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(stepLosses.slice(-5))).toBeLessThan(mean(stepLosses.slice(0, 5)) * 0.6);
  });

  it('killed with SIGKILL after a checkpoint, resumed (LIFELINE_RESUME_CHECKPOINT) from the latest complete one: same final weights, byte-identical final checkpoint', async () => {
    expect(H).toBeDefined();
    const run = start('train.ts', [
      '--steps', String(STEPS), '--checkpoint-every', String(EVERY), '--checkpoint-dir', killedDir,
      '--data', dataDir, '--keep', '10', '--step-delay-ms', '10',
    ]);
    const ck = await run.waitFor((e) => e.event === 'checkpoint' && (e.step ?? 0) >= 100);
    run.child.kill('SIGKILL');
    const exit = await run.exit;
    expect(exit.signal).toBe('SIGKILL');
    expect(only(run.events, 'done')).toHaveLength(0);

    const latest = await latestCompleteCheckpoint(killedDir);
    expect(latest).not.toBeNull();
    killedAt = latest!.step;
    expect(killedAt).toBeGreaterThanOrEqual(ck.step!);
    expect(killedAt).toBeLessThan(STEPS);
    console.log(`[trainer] killed after the checkpoint at step ${ck.step}; latest complete: ${killedAt} (${exit.ms} ms)`);

    const r = await trainToEnd(
      ['--steps', String(STEPS), '--checkpoint-every', String(EVERY), '--checkpoint-dir', killedDir, '--data', dataDir, '--keep', '10'],
      { LIFELINE_RESUME_CHECKPOINT: latest!.path },
    );
    console.log(`[trainer] resumed from step ${killedAt}: ${r.ms} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(only(r.events, 'start')[0]).toMatchObject({ step: killedAt, resumedFrom: latest!.path });
    // It went on from k, not from the beginning.
    expect(Math.min(...only(r.events, 'step').map((e) => e.step!))).toBe(killedAt + 10);
    expect(done(r.events).weightsSha256).toBe(H);
    for (const f of FINAL_FILES) {
      const a = await readFile(join(referenceDir, 'step-000400', f));
      const b = await readFile(join(killedDir, 'step-000400', f));
      expect(a.equals(b), f).toBe(true);
    }
    expect((await readdir(killedDir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it("resumed from an earlier checkpoint k' < k (with the data set built in memory from the same seed): same final weights", async () => {
    expect(killedAt).toBeGreaterThan(50);
    const earlier = join(killedDir, 'step-000050');
    const r = await trainToEnd(['--steps', String(STEPS), '--checkpoint-dir', join(root, 'from-50'), '--resume', earlier]);
    expect(r.code, r.stderr).toBe(0);
    expect(only(r.events, 'start')[0]).toMatchObject({ step: 50, resumedFrom: earlier, datasetSha256: dataSha });
    expect(done(r.events).weightsSha256).toBe(H);
  });

  it('stopped with SIGTERM: finishes the step, checkpoints it, exits 143; resuming from that checkpoint gives the same weights', async () => {
    const dir = join(root, 'terminated');
    const run = start('train.ts', ['--steps', String(STEPS), '--checkpoint-dir', dir, '--data', dataDir, '--step-delay-ms', '10']);
    await run.waitFor((e) => e.event === 'checkpoint' && (e.step ?? 0) >= 100);
    run.child.kill('SIGTERM');
    const exit = await run.exit;
    expect(exit.code, run.stderr()).toBe(143);
    const stopped = only(run.events, 'stopped');
    expect(stopped).toHaveLength(1);
    const s = stopped[0]!;
    expect(s).toMatchObject({ signal: 'SIGTERM' });
    expect(s.step!).toBeGreaterThanOrEqual(100);
    expect(s.step!).toBeLessThan(STEPS);
    expect((await latestCompleteCheckpoint(dir))!.path).toBe(s.checkpoint);

    const r = await trainToEnd(['--steps', String(STEPS), '--data', dataDir, '--resume', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(only(r.events, 'start')[0]).toMatchObject({ step: s.step, resumedFrom: s.checkpoint });
    expect(done(r.events).weightsSha256).toBe(H);
  });
});

describe('trainer: refuses what it must not train from', () => {
  async function refused(args: string[]) {
    const r = await trainToEnd(['--steps', String(STEPS), '--data', dataDir, ...args]);
    expect(r.code).toBe(3);
    // Nothing was trained: the only event is the error, and it says why.
    expect(r.events.map((e) => e.event)).toEqual(['error']);
    expect(r.events[0]!.message).toBe(r.stderr.replace(/^trainer: /, '').trim());
    return r.stderr;
  }

  it('a checkpoint with a flipped byte in model.safetensors', async () => {
    const dir = join(root, 'flipped', 'step-000400');
    await cp(join(referenceDir, 'step-000400'), dir, { recursive: true });
    const file = join(dir, 'model.safetensors');
    const b = await readFile(file);
    b[b.byteLength - 100] = b[b.byteLength - 100]! ^ 0x10;
    await writeFile(file, b);
    expect(await refused(['--resume', dir])).toMatch(/checkpoint .*step-000400 refused: model\.safetensors tensor "fc\d\.(weight|bias)" is corrupt: sha256/);
  });

  it('a truncated model.safetensors', async () => {
    const dir = join(root, 'truncated', 'step-000400');
    await cp(join(referenceDir, 'step-000400'), dir, { recursive: true });
    await truncate(join(dir, 'model.safetensors'), 4000);
    expect(await refused(['--resume', dir])).toMatch(/refused: model\.safetensors is not a valid safetensors file: .*\(truncated\?\)/);
  });

  it('a checkpoint of another model config, or of another data set', async () => {
    const dir = join(referenceDir, 'step-000400');
    expect(await refused(['--resume', dir, '--hidden', '16,16'])).toMatch(/another training config \(model\.hidden: checkpoint \[32,32\], this run \[16,16\]\)/);
    const r = await trainToEnd(['--steps', String(STEPS), '--resume', dir, '--data-seed', '8']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`trained on data set ${dataSha}, this run has [0-9a-f]{64}`));
  });

  it('bad arguments: exit 2 with a one-line message', async () => {
    const r = await trainToEnd(['--steps', 'many']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(['trainer: --steps must be an integer >= 0, got "many" (--help lists the options)']);
  });
});
