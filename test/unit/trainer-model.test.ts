import { describe, expect, it } from 'vitest';
import {
  Adam,
  drawDropoutMasks,
  evaluate,
  initParams,
  lossAndGrads,
  paramSpecs,
  zerosLike,
  type ModelConfig,
} from '../../trainer/model';
import { Xoshiro128 } from '../../trainer/rng';

const cfg: ModelConfig = { inputs: 2, hidden: [5, 4], classes: 3, activation: 'tanh', dropout: 0.25 };

function tinyData(samples: number, seed: number) {
  const r = Xoshiro128.fromSeed(seed);
  const x = Float32Array.from({ length: samples * 2 }, () => r.nextFloat() * 2 - 1);
  const y = Int32Array.from({ length: samples }, (_, i) => i % 3);
  return { x, y };
}

describe('MLP', () => {
  it('has PyTorch-style parameters: fcN.weight [out, in], fcN.bias [out]', () => {
    expect(paramSpecs(cfg)).toEqual([
      { name: 'fc1.weight', shape: [5, 2] },
      { name: 'fc1.bias', shape: [5] },
      { name: 'fc2.weight', shape: [4, 5] },
      { name: 'fc2.bias', shape: [4] },
      { name: 'fc3.weight', shape: [3, 4] },
      { name: 'fc3.bias', shape: [3] },
    ]);
  });

  it('initialises uniformly within ±1/sqrt(fan_in), from the seed', () => {
    const p = initParams(cfg, Xoshiro128.fromSeed(1));
    const fanIn = [2, 2, 5, 5, 4, 4];
    p.forEach((t, k) => {
      const bound = 1 / Math.sqrt(fanIn[k]!);
      for (const v of t.data) expect(Math.abs(v)).toBeLessThanOrEqual(bound);
      expect(new Set(t.data).size).toBe(t.data.length); // no constant init
    });
    const again = initParams(cfg, Xoshiro128.fromSeed(1));
    expect(again.map((t) => [...t.data])).toEqual(p.map((t) => [...t.data]));
  });

  it('back-propagates the exact gradient (checked against central differences, dropout mask fixed)', () => {
    const { x, y } = tinyData(12, 5);
    const params = initParams(cfg, Xoshiro128.fromSeed(9));
    const rows = [0, 3, 4, 7, 8, 11];
    const masks = drawDropoutMasks(cfg, rows.length, Xoshiro128.fromSeed(2));
    expect(masks!.some((m) => m.includes(0))).toBe(true); // the check really goes through dropped units
    const grads = zerosLike(params);
    lossAndGrads(cfg, params, x, y, rows, masks, grads);
    const scratch = zerosLike(params);
    let checked = 0;
    for (let p = 0; p < params.length; p++) {
      const data = params[p]!.data;
      for (let i = 0; i < data.length; i++) {
        const orig = data[i]!;
        data[i] = orig + 1e-2;
        const up = data[i]!;
        const lossUp = lossAndGrads(cfg, params, x, y, rows, masks, scratch);
        data[i] = orig - 1e-2;
        const down = data[i]!;
        const lossDown = lossAndGrads(cfg, params, x, y, rows, masks, scratch);
        data[i] = orig;
        const numeric = (lossUp - lossDown) / (up - down);
        const analytic = grads[p]![i]!;
        expect(Math.abs(numeric - analytic), `${params[p]!.name}[${i}]: ${numeric} vs ${analytic}`).toBeLessThan(
          2e-4 + 1e-2 * Math.abs(analytic),
        );
        checked++;
      }
    }
    expect(checked).toBe(5 * 2 + 5 + 4 * 5 + 4 + 3 * 4 + 3);
  });

  it('evaluates an all-zero network to loss ln(C) and the accuracy of always answering class 0', () => {
    const { x, y } = tinyData(30, 1);
    const params = initParams(cfg, Xoshiro128.fromSeed(1));
    for (const p of params) p.data.fill(0);
    const e = evaluate(cfg, params, x, y);
    expect(e.loss).toBeCloseTo(Math.log(3), 6);
    expect(e.accuracy).toBeCloseTo(1 / 3, 10);
  });

  it('draws dropout masks of 0 and 1/(1-p) at rate p, and none when p = 0', () => {
    const masks = drawDropoutMasks({ ...cfg, hidden: [1000] }, 10, Xoshiro128.fromSeed(4))!;
    const m = masks[0]!;
    const dropped = m.filter((v) => v === 0).length / m.length;
    expect(dropped).toBeGreaterThan(0.22);
    expect(dropped).toBeLessThan(0.28);
    expect(m.every((v) => v === 0 || v === Math.fround(1 / 0.75))).toBe(true);
    expect(drawDropoutMasks({ ...cfg, dropout: 0 }, 10, Xoshiro128.fromSeed(4))).toBeNull();
  });
});

describe('Adam', () => {
  it('follows the bias-corrected update: first step moves each weight by lr against its gradient sign', () => {
    const params = [{ name: 'w', shape: [3], data: new Float32Array([1, -2, 0.5]) }];
    const adam = Adam.fresh({ lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, params);
    adam.step(params, [new Float32Array([0.3, -0.01, 0])]);
    expect(adam.t).toBe(1);
    expect(params[0]!.data[0]).toBeCloseTo(0.9, 6);
    expect(params[0]!.data[1]).toBeCloseTo(-1.9, 5);
    expect(params[0]!.data[2]).toBe(0.5);
    expect(adam.m[0]![0]).toBeCloseTo(0.03, 7);
    expect(adam.v[0]![0]).toBeCloseTo(0.00009, 9);
  });

  it('matches a float64 reference over several steps to float32 precision', () => {
    const c = { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-8 };
    const params = [{ name: 'w', shape: [1], data: new Float32Array([0.7]) }];
    const adam = Adam.fresh(c, params);
    let [p, m, v] = [0.7, 0, 0];
    const gs = [0.5, -0.2, 0.9, 0.1, -0.4];
    gs.forEach((g, k) => {
      adam.step(params, [new Float32Array([g])]);
      const t = k + 1;
      const gf = Math.fround(g);
      m = c.beta1 * m + (1 - c.beta1) * gf;
      v = c.beta2 * v + (1 - c.beta2) * gf * gf;
      p -= (c.lr * (m / (1 - c.beta1 ** t))) / (Math.sqrt(v / (1 - c.beta2 ** t)) + c.eps);
    });
    expect(adam.t).toBe(5);
    expect(Math.abs(params[0]!.data[0]! - p)).toBeLessThan(1e-6);
    expect(Math.abs(adam.m[0]![0]! - m)).toBeLessThan(1e-7);
    expect(Math.abs(adam.v[0]![0]! - v)).toBeLessThan(1e-8);
  });
});
