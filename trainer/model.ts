/**
 * A multilayer perceptron classifier (tanh hidden layers, inverted dropout,
 * softmax cross-entropy) and the Adam optimiser, in plain TypeScript.
 *
 * Numerics: every parameter, moment buffer and activation lives in a
 * Float32Array, so each stored value is rounded to float32; sums inside one
 * dot product are accumulated in float64 and rounded when stored. Every loop
 * runs in a fixed order (no threads, no reordering), so the same inputs give
 * bit-identical outputs — the basis of the trainer's resume guarantee.
 *
 * Parameter names and layouts follow PyTorch's nn.Linear (`fc1.weight` is
 * [out, in], row-major), so a checkpoint reads naturally in other tools.
 */
import type { Xoshiro128 } from './rng';

export interface ModelConfig {
  /** Input features. */
  inputs: number;
  /** Width of each hidden layer, in order. */
  hidden: number[];
  /** Output classes. */
  classes: number;
  activation: 'tanh';
  /** Probability of zeroing a hidden unit during training (0 = no dropout). */
  dropout: number;
}

export interface ParamSpec {
  name: string;
  shape: number[];
}

export interface Param extends ParamSpec {
  data: Float32Array;
}

/** Layer widths from input to output. */
function widths(cfg: ModelConfig): number[] {
  return [cfg.inputs, ...cfg.hidden, cfg.classes];
}

/** The parameters a config implies, in canonical order: fc1.weight, fc1.bias, fc2.weight, … */
export function paramSpecs(cfg: ModelConfig): ParamSpec[] {
  const w = widths(cfg);
  const specs: ParamSpec[] = [];
  for (let l = 0; l + 1 < w.length; l++) {
    specs.push({ name: `fc${l + 1}.weight`, shape: [w[l + 1]!, w[l]!] });
    specs.push({ name: `fc${l + 1}.bias`, shape: [w[l + 1]!] });
  }
  return specs;
}

export function validateModelConfig(cfg: ModelConfig): void {
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 4096;
  if (!ok(cfg.inputs) || !ok(cfg.classes) || cfg.classes < 2 || cfg.hidden.length === 0 || !cfg.hidden.every(ok)) {
    throw new Error(`invalid model shape: inputs ${cfg.inputs}, hidden [${cfg.hidden.join(',')}], classes ${cfg.classes}`);
  }
  if (!(cfg.dropout >= 0 && cfg.dropout < 1)) throw new Error(`dropout must be in [0, 1), got ${cfg.dropout}`);
}

/** PyTorch's nn.Linear default: weights and biases uniform in ±1/sqrt(fan_in). */
export function initParams(cfg: ModelConfig, rng: Xoshiro128): Param[] {
  const w = widths(cfg);
  return paramSpecs(cfg).map((spec, k) => {
    const bound = 1 / Math.sqrt(w[k >> 1]!); // fan_in of layer k/2, for its weight and its bias alike
    const data = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = (rng.nextFloat() * 2 - 1) * bound;
    return { ...spec, data };
  });
}

export function zerosLike(params: readonly Param[]): Float32Array[] {
  return params.map((p) => new Float32Array(p.data.length));
}

/**
 * Dropout masks for one batch: one Float32Array per hidden layer, entries 0
 * (dropped) or 1/(1-p) (kept, scaled so the expected activation is unchanged).
 * Drawn from the RNG in a fixed order — layer, sample, unit — so the number of
 * draws per step is constant and the RNG state after a step is reproducible.
 */
export function drawDropoutMasks(cfg: ModelConfig, batch: number, rng: Xoshiro128): Float32Array[] | null {
  if (cfg.dropout === 0) return null;
  const keep = 1 / (1 - cfg.dropout);
  return cfg.hidden.map((h) => {
    const m = new Float32Array(batch * h);
    for (let i = 0; i < m.length; i++) m[i] = rng.nextFloat() < cfg.dropout ? 0 : keep;
    return m;
  });
}

/**
 * Mean softmax cross-entropy of the batch `rows` (indices into x/y), and its
 * gradient with respect to every parameter written into `grads` (same order as
 * params). `masks` null means no dropout (evaluation, or dropout 0).
 */
export function lossAndGrads(
  cfg: ModelConfig,
  params: readonly Param[],
  x: Float32Array,
  y: Int32Array,
  rows: ArrayLike<number>,
  masks: Float32Array[] | null,
  grads: Float32Array[],
): number {
  const w = widths(cfg);
  const L = w.length - 1; // linear layers
  const B = rows.length;

  // Forward. acts[l] is the input of layer l (acts[0] = the batch); pre[l] the tanh outputs before dropout.
  const acts: Float32Array[] = [];
  const tanhOut: Float32Array[] = [];
  const input = new Float32Array(B * w[0]!);
  for (let n = 0; n < B; n++) {
    const r = rows[n]!;
    for (let i = 0; i < w[0]!; i++) input[n * w[0]! + i] = x[r * w[0]! + i]!;
  }
  acts.push(input);
  let logits = input;
  for (let l = 0; l < L; l++) {
    const I = w[l]!;
    const O = w[l + 1]!;
    const W = params[2 * l]!.data;
    const b = params[2 * l + 1]!.data;
    const a = acts[l]!;
    const z = new Float32Array(B * O);
    for (let n = 0; n < B; n++) {
      for (let o = 0; o < O; o++) {
        let s = b[o]!;
        for (let i = 0; i < I; i++) s += a[n * I + i]! * W[o * I + i]!;
        z[n * O + o] = s;
      }
    }
    if (l === L - 1) {
      logits = z;
    } else {
      const t = new Float32Array(B * O);
      const next = new Float32Array(B * O);
      const mask = masks?.[l];
      for (let k = 0; k < t.length; k++) {
        t[k] = Math.tanh(z[k]!);
        next[k] = mask ? t[k]! * mask[k]! : t[k]!;
      }
      tanhOut.push(t);
      acts.push(next);
    }
  }

  // Softmax cross-entropy (max-shifted for stability); dz = (softmax - onehot) / B.
  const C = w[L]!;
  let loss = 0;
  let dz = new Float32Array(B * C);
  for (let n = 0; n < B; n++) {
    let max = -Infinity;
    for (let c = 0; c < C; c++) max = Math.max(max, logits[n * C + c]!);
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(logits[n * C + c]! - max);
    const label = y[rows[n]!]!;
    loss += Math.log(sum) + max - logits[n * C + label]!;
    for (let c = 0; c < C; c++) {
      const p = Math.exp(logits[n * C + c]! - max) / sum;
      dz[n * C + c] = (p - (c === label ? 1 : 0)) / B;
    }
  }

  // Backward, last layer first.
  for (let l = L - 1; l >= 0; l--) {
    const I = w[l]!;
    const O = w[l + 1]!;
    const W = params[2 * l]!.data;
    const gW = grads[2 * l]!;
    const gb = grads[2 * l + 1]!;
    const a = acts[l]!;
    for (let o = 0; o < O; o++) {
      let sb = 0;
      for (let n = 0; n < B; n++) sb += dz[n * O + o]!;
      gb[o] = sb;
      for (let i = 0; i < I; i++) {
        let s = 0;
        for (let n = 0; n < B; n++) s += dz[n * O + o]! * a[n * I + i]!;
        gW[o * I + i] = s;
      }
    }
    if (l > 0) {
      // Through this layer's input: the previous hidden layer's dropout and tanh.
      const t = tanhOut[l - 1]!;
      const mask = masks?.[l - 1];
      const prev = new Float32Array(B * I);
      for (let n = 0; n < B; n++) {
        for (let i = 0; i < I; i++) {
          let s = 0;
          for (let o = 0; o < O; o++) s += dz[n * O + o]! * W[o * I + i]!;
          const k = n * I + i;
          const ti = t[k]!;
          prev[k] = s * (mask ? mask[k]! : 1) * (1 - ti * ti);
        }
      }
      dz = prev;
    }
  }
  return loss / B;
}

/** Mean loss and accuracy over the whole data set, without dropout. Reads params, changes nothing. */
export function evaluate(
  cfg: ModelConfig,
  params: readonly Param[],
  x: Float32Array,
  y: Int32Array,
): { loss: number; accuracy: number } {
  const w = widths(cfg);
  const L = w.length - 1;
  const C = w[L]!;
  let loss = 0;
  let correct = 0;
  const samples = y.length;
  for (let r = 0; r < samples; r++) {
    let a = new Float32Array(w[0]!);
    for (let i = 0; i < w[0]!; i++) a[i] = x[r * w[0]! + i]!;
    for (let l = 0; l < L; l++) {
      const I = w[l]!;
      const O = w[l + 1]!;
      const W = params[2 * l]!.data;
      const b = params[2 * l + 1]!.data;
      const z = new Float32Array(O);
      for (let o = 0; o < O; o++) {
        let s = b[o]!;
        for (let i = 0; i < I; i++) s += a[i]! * W[o * I + i]!;
        z[o] = l === L - 1 ? s : Math.tanh(s);
      }
      a = z;
    }
    let max = -Infinity;
    let arg = 0;
    for (let c = 0; c < C; c++) {
      if (a[c]! > max) {
        max = a[c]!;
        arg = c;
      }
    }
    let sum = 0;
    for (let c = 0; c < C; c++) sum += Math.exp(a[c]! - max);
    const label = y[r]!;
    loss += Math.log(sum) + max - a[label]!;
    if (arg === label) correct++;
  }
  return { loss: loss / samples, accuracy: correct / samples };
}

export interface AdamConfig {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

/**
 * Adam (Kingma & Ba) with PyTorch's update: bias-corrected first and second
 * moments. Its state — m, v and the step count t — is part of every
 * checkpoint: without it a resumed run would take different steps.
 */
export class Adam {
  constructor(
    readonly cfg: AdamConfig,
    readonly m: Float32Array[],
    readonly v: Float32Array[],
    public t: number,
  ) {}

  static fresh(cfg: AdamConfig, params: readonly Param[]): Adam {
    return new Adam(cfg, zerosLike(params), zerosLike(params), 0);
  }

  step(params: Param[], grads: readonly Float32Array[]): void {
    this.t += 1;
    const { lr, beta1, beta2, eps } = this.cfg;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    for (let p = 0; p < params.length; p++) {
      const data = params[p]!.data;
      const g = grads[p]!;
      const m = this.m[p]!;
      const v = this.v[p]!;
      for (let i = 0; i < data.length; i++) {
        const gi = g[i]!;
        m[i] = beta1 * m[i]! + (1 - beta1) * gi;
        v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
        data[i] = data[i]! - (lr * (m[i]! / bc1)) / (Math.sqrt(v[i]! / bc2) + eps);
      }
    }
  }
}
