import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError, readCheckpoint, writeCheckpoint, type LoadedCheckpoint } from '../../trainer/checkpoint';
import { DatasetError, makeSpiral, readDataset, writeDataset } from '../../trainer/dataset';
import { Training, type TrainConfig } from '../../trainer/training';

const data = makeSpiral({ seed: 3, samples: 300, classes: 3, noise: 0.2 });
const config: TrainConfig = {
  model: { inputs: 2, hidden: [8], classes: 3, activation: 'tanh', dropout: 0.2 },
  batchSize: 16,
  optimizer: { name: 'adam', lr: 0.02, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
};
const TOTAL = 50; // 300 / 16 = 18 batches per epoch: ~3 epochs

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'trainer-training-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const bytesOf = (t: Training) => Buffer.concat(t.params.map((p) => Buffer.from(p.data.buffer.slice(0))));
const momentsOf = (t: Training) =>
  Buffer.concat([...t.adam.m, ...t.adam.v].map((a) => Buffer.from(a.buffer.slice(0))));

function trainTo(t: Training, steps: number): Training {
  while (t.step < steps) t.trainStep();
  return t;
}

async function checkpointAt(k: number, name: string): Promise<LoadedCheckpoint> {
  const t = trainTo(Training.fresh(config, data, 11), k);
  const w = await writeCheckpoint(join(root, name), t.checkpointContent());
  return readCheckpoint(w.path);
}

describe('Training resume', () => {
  const reference = trainTo(Training.fresh(config, data, 11), TOTAL);

  it('is deterministic: two fresh runs with the same seed end bit-identical, another seed differs', () => {
    const again = trainTo(Training.fresh(config, data, 11), TOTAL);
    expect(bytesOf(again).equals(bytesOf(reference))).toBe(true);
    const other = trainTo(Training.fresh(config, data, 12), TOTAL);
    expect(bytesOf(other).equals(bytesOf(reference))).toBe(false);
  });

  for (const [k, where] of [
    [25, 'mid-epoch'],
    [36, 'at an epoch boundary'],
    [1, 'after the first step'],
  ] as const) {
    it(`resumed from a checkpoint ${where} (step ${k}), reaches the same weights, moments and RNG as the uninterrupted run`, async () => {
      expect(reference.batchesPerEpoch).toBe(18);
      const ckpt = await checkpointAt(k, `resume-${k}`);
      const resumed = Training.resume(config, data, ckpt);
      expect(resumed.step).toBe(k);
      trainTo(resumed, TOTAL);
      expect(bytesOf(resumed).equals(bytesOf(reference))).toBe(true);
      expect(momentsOf(resumed).equals(momentsOf(reference))).toBe(true);
      expect(resumed.adam.t).toBe(TOTAL);
      // The whole checkpoint content (RNG, epoch order RNG, loss…) matches too.
      expect(JSON.stringify(resumed.checkpointContent().state)).toBe(JSON.stringify(reference.checkpointContent().state));
    });
  }

  it('needs the saved RNG and optimizer state: without either, the run diverges', async () => {
    const ckpt = await checkpointAt(25, 'needs-state');
    const otherRng = { ...ckpt, state: { ...ckpt.state, rng: { algorithm: 'xoshiro128**', state: [1, 2, 3, 4] } } };
    expect(bytesOf(trainTo(Training.resume(config, data, otherRng), TOTAL)).equals(bytesOf(reference))).toBe(false);

    const zeroMoments = new Map(ckpt.optimizer);
    for (const [name, t] of zeroMoments) zeroMoments.set(name, { ...t, bytes: new Uint8Array(t.bytes.byteLength) });
    const noAdam = { ...ckpt, optimizer: zeroMoments };
    expect(bytesOf(trainTo(Training.resume(config, data, noAdam), TOTAL)).equals(bytesOf(reference))).toBe(false);

    const otherOrder = { ...ckpt, state: { ...ckpt.state, epochStartRng: { algorithm: 'xoshiro128**', state: [5, 6, 7, 8] } } };
    expect(bytesOf(trainTo(Training.resume(config, data, otherOrder), TOTAL)).equals(bytesOf(reference))).toBe(false);
  });

  it('refuses a checkpoint of another config, naming the fields that differ', async () => {
    const ckpt = await checkpointAt(5, 'other-config');
    expect(() => Training.resume({ ...config, model: { ...config.model, hidden: [9] } }, data, ckpt)).toThrow(
      /another training config \(model\.hidden: checkpoint \[8\], this run \[9\]\)/,
    );
    expect(() => Training.resume({ ...config, batchSize: 8 }, data, ckpt)).toThrow(/batchSize: checkpoint 16, this run 8/);
    expect(() => Training.resume({ ...config, optimizer: { ...config.optimizer, lr: 0.1 } }, data, ckpt)).toThrow(
      CheckpointError,
    );
  });

  it('refuses a checkpoint of another data set', async () => {
    const ckpt = await checkpointAt(5, 'other-data');
    const other = makeSpiral({ seed: 4, samples: 300, classes: 3, noise: 0.2 });
    expect(() => Training.resume(config, other, ckpt)).toThrow(/trained on data set [0-9a-f]{64}, this run has [0-9a-f]{64}/);
  });

  it('refuses tensors that are missing, extra, misshapen or not finite', async () => {
    const ckpt = await checkpointAt(5, 'bad-tensors');
    const without = new Map(ckpt.model);
    without.delete('fc2.bias');
    expect(() => Training.resume(config, data, { ...ckpt, model: without })).toThrow(/has no tensor "fc2\.bias"/);

    const extra = new Map(ckpt.model);
    extra.set('fc9.weight', ckpt.model.get('fc1.bias')!);
    expect(() => Training.resume(config, data, { ...ckpt, model: extra })).toThrow(/unexpected tensor "fc9\.weight"/);

    const misshapen = new Map(ckpt.model);
    misshapen.set('fc1.bias', { ...ckpt.model.get('fc1.bias')!, shape: [2, 4] });
    expect(() => Training.resume(config, data, { ...ckpt, model: misshapen })).toThrow(/"fc1\.bias" is F32 \[2, 4\], this model needs F32 \[8\]/);

    const nan = new Map(ckpt.model);
    const bytes = new Uint8Array(new Float32Array(8).fill(Number.NaN).buffer);
    nan.set('fc1.bias', { ...ckpt.model.get('fc1.bias')!, bytes });
    expect(() => Training.resume(config, data, { ...ckpt, model: nan })).toThrow(/holds NaN/);

    expect(() => Training.resume(config, data, { ...ckpt, state: { ...ckpt.state, rng: { algorithm: 'x', state: [] } } })).toThrow(
      /RNG state/,
    );
  });

  it('really learns: full-data loss falls well below chance and accuracy rises far above it', () => {
    // The CLI's default network (two hidden layers of 32); one layer of 8 is too small for three arms.
    const t = Training.fresh({ ...config, model: { ...config.model, hidden: [32, 32], dropout: 0.1 } }, data, 11);
    const before = t.evaluate();
    expect(before.loss).toBeGreaterThan(0.9); // ~ln 3 for a fresh net on 3 balanced classes
    trainTo(t, 400);
    const after = t.evaluate();
    expect(after.loss).toBeLessThan(before.loss * 0.6);
    expect(after.accuracy).toBeGreaterThan(0.7);
  });
});

describe('spiral data set', () => {
  it('is generated deterministically, balanced, and hashed by content', () => {
    const a = makeSpiral({ seed: 3, samples: 300, classes: 3, noise: 0.2 });
    expect(a.sha256).toBe(data.sha256);
    expect(Buffer.from(a.x.buffer).equals(Buffer.from(data.x.buffer))).toBe(true);
    expect([0, 1, 2].map((c) => a.y.filter((v) => v === c).length)).toEqual([100, 100, 100]);
    expect(makeSpiral({ seed: 3, samples: 300, classes: 3, noise: 0.3 }).sha256).not.toBe(a.sha256);
    expect(() => makeSpiral({ seed: 3, samples: 301, classes: 3, noise: 0.2 })).toThrow(/multiple of classes/);
  });

  it('writes a data folder that reads back to the same content and hash, and refuses it once damaged', async () => {
    const dir = join(root, 'data');
    await writeDataset(dir, data);
    const back = await readDataset(dir);
    expect(back.sha256).toBe(data.sha256);
    expect(back.params).toEqual(data.params);
    expect(Buffer.from(back.y.buffer).equals(Buffer.from(data.y.buffer))).toBe(true);

    const file = join(dir, 'data.safetensors');
    const bytes = await readFile(file);
    bytes[bytes.byteLength - 10] = bytes[bytes.byteLength - 10]! ^ 0x40;
    await writeFile(file, bytes);
    await expect(readDataset(dir)).rejects.toThrow(DatasetError);
    await expect(readDataset(dir)).rejects.toThrow(/does not match dataset\.json .*corrupt or was replaced/);
    await expect(readDataset(join(root, 'nowhere'))).rejects.toThrow(/cannot read dataset\.json/);
  });
});
