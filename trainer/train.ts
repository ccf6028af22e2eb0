/**
 * Lifeline's demo training program: trains a small MLP on a spiral data set,
 * checkpoints it, and resumes it exactly. See trainer/README.md.
 *
 *   node --import tsx trainer/train.ts --steps 600 --checkpoint-dir ckpt [--resume <checkpoint>] …
 *
 * Progress goes to stdout (and --log) as JSON lines, one object per event, so
 * a supervisor (the node agent) can follow it without parsing prose.
 * Exit codes: 0 done · 1 unexpected failure · 2 bad arguments ·
 * 3 checkpoint or data refused · 128+n stopped by signal n (after a checkpoint).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CheckpointError,
  pruneCheckpoints,
  readCheckpoint,
  removeStaleTemporaries,
  resolveResumePath,
  tensorBytesSha256,
  writeCheckpoint,
} from './checkpoint';
import { DatasetError, DEFAULT_SPIRAL, makeSpiral, readDataset, validateSpiralParams, type Dataset } from './dataset';
import { encodeSafetensors } from './safetensors';
import { Training, validateTrainConfig, type TrainConfig } from './training';

export const RESUME_ENV = 'LIFELINE_RESUME_CHECKPOINT';

const USAGE = `usage: node --import tsx trainer/train.ts [options]

  --steps N              total optimiser steps to reach (default 600)
  --checkpoint-dir DIR   write checkpoints here (step-NNNNNN/ folders); none if omitted
  --checkpoint-every M   checkpoint every M steps (default 100); the last step is always checkpointed
  --keep K               keep the K newest complete checkpoints (default 3)
  --resume PATH          continue from a checkpoint folder, or the latest complete one in a folder of them
                         (or set ${RESUME_ENV}; the flag wins)
  --data DIR             read the data set written by trainer/make-dataset.ts (default: generate it in memory)
  --data-seed S          seed of the in-memory data set (default ${DEFAULT_SPIRAL.seed})
  --samples N            size of the in-memory data set (default ${DEFAULT_SPIRAL.samples})
  --seed S               seed for weights, shuffling and dropout (default 42)
  --lr X                 Adam learning rate (default 0.01)
  --batch-size B         mini-batch size (default 32)
  --hidden W[,W…]        hidden layer widths (default 32,32)
  --dropout P            dropout on hidden layers (default 0.1)
  --step-delay-ms D      sleep D ms after each step (demos and tests that stop it mid-run)
  --log-every N          emit a step event every N steps (default 10)
  --log FILE             append the JSON-line events to FILE as well as stdout
`;

class UsageError extends Error {}

function int(name: string, v: string | undefined, dflt: number, min = 0): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got "${v}"`);
  }
  return Number(v);
}

function num(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}

interface Options {
  steps: number;
  checkpointDir: string | null;
  checkpointEvery: number;
  keep: number;
  resume: string | null;
  data: string | null;
  dataSeed: number;
  samples: number;
  seed: number;
  config: TrainConfig;
  stepDelayMs: number;
  logEvery: number;
  log: string | null;
}

function parseOptions(argv: string[]): Options | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        steps: { type: 'string' },
        'checkpoint-dir': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        keep: { type: 'string' },
        resume: { type: 'string' },
        data: { type: 'string' },
        'data-seed': { type: 'string' },
        samples: { type: 'string' },
        seed: { type: 'string' },
        lr: { type: 'string' },
        'batch-size': { type: 'string' },
        hidden: { type: 'string' },
        dropout: { type: 'string' },
        'step-delay-ms': { type: 'string' },
        'log-every': { type: 'string' },
        log: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return 'help';
  const hiddenText = values.hidden ?? '32,32';
  if (!/^\d+(,\d+)*$/.test(hiddenText)) throw new UsageError(`--hidden must be widths like 32,32, got "${hiddenText}"`);
  const envResume = process.env[RESUME_ENV];
  const seed = int('seed', values.seed, 42);
  if (seed >= 2 ** 32) throw new UsageError('--seed must be below 2^32');
  const dataSeed = int('data-seed', values['data-seed'], DEFAULT_SPIRAL.seed);
  if (dataSeed >= 2 ** 32) throw new UsageError('--data-seed must be below 2^32');
  if (values.data !== undefined && (values['data-seed'] !== undefined || values.samples !== undefined)) {
    throw new UsageError('--data-seed and --samples describe the in-memory data set; they cannot be used with --data');
  }
  const samples = int('samples', values.samples, DEFAULT_SPIRAL.samples, 1);
  try {
    validateSpiralParams({ ...DEFAULT_SPIRAL, seed: dataSeed, samples });
  } catch (e) {
    throw new UsageError(`--samples: ${(e as Error).message}`);
  }
  return {
    steps: int('steps', values.steps, 600),
    checkpointDir: values['checkpoint-dir'] ? resolve(values['checkpoint-dir']) : null,
    checkpointEvery: int('checkpoint-every', values['checkpoint-every'], 100, 1),
    keep: int('keep', values.keep, 3, 1),
    resume: values.resume ?? (envResume ? envResume : null),
    data: values.data ? resolve(values.data) : null,
    dataSeed,
    samples,
    seed,
    config: {
      model: {
        inputs: 2,
        hidden: hiddenText.split(',').map(Number),
        classes: DEFAULT_SPIRAL.classes,
        activation: 'tanh',
        dropout: num('dropout', values.dropout, 0.1),
      },
      batchSize: int('batch-size', values['batch-size'], 32, 1),
      optimizer: { name: 'adam', lr: num('lr', values.lr, 0.01), beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    },
    stepDelayMs: int('step-delay-ms', values['step-delay-ms'], 0),
    logEvery: int('log-every', values['log-every'], 10, 1),
    log: values.log ? resolve(values.log) : null,
  };
}

type Emit = (event: string, fields: Record<string, unknown>) => void;

function makeEmitter(logFile: string | null): Emit {
  if (logFile) mkdirSync(dirname(logFile), { recursive: true });
  return (event, fields) => {
    const line = `${JSON.stringify({ event, ...fields, ts: new Date().toISOString() })}\n`;
    // Synchronous writes: a SIGKILL right after an event must not lose it (the agent reads these as progress).
    process.stdout.write(line);
    if (logFile) appendFileSync(logFile, line);
  };
}

/** Reports an unexpected failure as an event too, once the emitter exists (else on stdout only). */
let emitFailure = (message: string) => {
  process.stdout.write(`${JSON.stringify({ event: 'error', kind: 'failure', message, ts: new Date().toISOString() })}\n`);
};

const round = (x: number | null) => (x === null ? null : Number(x.toPrecision(6)));

async function run(argv: string[]): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`trainer: ${e.message} (--help lists the options)\n`);
    return 2;
  }
  if (opts === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = opts;
  const emit = makeEmitter(o.log);
  emitFailure = (message) => emit('error', { kind: 'failure', message });

  // A stop request lets the current step finish, then checkpoints and exits; a second one changes nothing
  // (a supervisor that cannot wait sends SIGKILL, and the last complete checkpoint is still there).
  let stopSignal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    stopSignal ??= sig;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let data: Dataset;
  let training: Training;
  let resumedFrom: string | null = null;
  try {
    data = o.data ? await readDataset(o.data) : makeSpiral({ ...DEFAULT_SPIRAL, seed: o.dataSeed, samples: o.samples });
    // The network's ends follow the data (a folder may hold, say, a 4-arm spiral).
    o.config.model.inputs = data.features;
    o.config.model.classes = data.classes;
    try {
      validateTrainConfig(o.config, data);
    } catch (e) {
      // Widths, batch size or learning rate that cannot work: a usage mistake, not a refused checkpoint.
      process.stderr.write(`trainer: ${(e as Error).message}\n`);
      return 2;
    }
    if (o.resume) {
      resumedFrom = await resolveResumePath(o.resume);
      training = Training.resume(o.config, data, await readCheckpoint(resumedFrom));
    } else {
      training = Training.fresh(o.config, data, o.seed);
    }
  } catch (e) {
    if (!(e instanceof CheckpointError || e instanceof DatasetError)) throw e;
    process.stderr.write(`trainer: ${e.message}\n`);
    emit('error', { kind: e instanceof CheckpointError ? 'checkpoint-refused' : 'data-refused', message: e.message });
    return 3;
  }

  if (o.checkpointDir) {
    mkdirSync(o.checkpointDir, { recursive: true });
    await removeStaleTemporaries(o.checkpointDir);
  }
  const start = training.evaluate();
  emit('start', {
    step: training.step,
    totalSteps: o.steps,
    resumedFrom,
    seed: training.seed,
    configHash: training.configHash,
    datasetSha256: data.sha256,
    checkpointDir: o.checkpointDir,
    evalLoss: round(start.loss),
    evalAccuracy: round(start.accuracy),
    pid: process.pid,
  });

  interface Written {
    step: number;
    path: string;
    weightsSha256: string;
  }
  const progress: { lastCheckpoint: Written | null; trained: number } = { lastCheckpoint: null, trained: 0 };
  const checkpoint = async () => {
    const content = training.checkpointContent();
    const written = await writeCheckpoint(o.checkpointDir!, content);
    const removed = await pruneCheckpoints(o.checkpointDir!, o.keep);
    progress.lastCheckpoint = written;
    emit('checkpoint', {
      step: written.step,
      path: written.path,
      loss: round(training.lastLoss),
      evalLoss: round(content.state.evalLoss as number),
      evalAccuracy: round(content.state.evalAccuracy as number),
      weightsSha256: written.weightsSha256,
      removed,
    });
  };

  while (training.step < o.steps && !stopSignal) {
    const loss = training.trainStep();
    progress.trained += 1;
    const step = training.step;
    if (step % o.logEvery === 0 || step === o.steps) emit('step', { step, epoch: training.epoch, loss: round(loss) });
    if (o.checkpointDir && (step % o.checkpointEvery === 0 || step === o.steps)) await checkpoint();
    // Always yield to the event loop, so a stop signal is seen after this step even with no delay.
    if (o.stepDelayMs > 0) await new Promise((r) => setTimeout(r, o.stepDelayMs));
    else await new Promise((r) => setImmediate(r));
  }

  if (stopSignal) {
    // Checkpoint what this process trained since its last checkpoint; with nothing trained, the state
    // is the checkpoint it resumed from (or the seed's initial weights), which already exists.
    if (o.checkpointDir && progress.trained > 0 && progress.lastCheckpoint?.step !== training.step) await checkpoint();
    emit('stopped', { step: training.step, signal: stopSignal, checkpoint: progress.lastCheckpoint?.path ?? null });
    return 128 + (constants.signals[stopSignal] ?? 0);
  }

  // The last step was checkpointed in the loop, unless there was nothing to train (resumed at or past --steps).
  const final = training.evaluate();
  const last = progress.lastCheckpoint;
  emit('done', {
    step: training.step,
    totalSteps: o.steps,
    // Same digest as a checkpoint records: the tensor bytes as model.safetensors lays them out.
    weightsSha256: last?.step === training.step ? last.weightsSha256 : tensorBytesSha256(encodeSafetensors(training.modelTensors())),
    loss: round(training.lastLoss),
    evalLoss: round(final.loss),
    evalAccuracy: round(final.accuracy),
    checkpoint: last?.path ?? null,
  });
  return 0;
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const message = e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`trainer: unexpected failure: ${message}\n`);
    emitFailure(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
