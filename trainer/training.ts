/**
 * The training state machine, without any I/O: one `trainStep()` is one
 * mini-batch Adam update. Everything a future step depends on is part of the
 * state that `checkpointContent()` hands out and `resume()` takes back:
 *
 *   weights            model.safetensors
 *   Adam m, v          optimizer.safetensors (`exp_avg.*`, `exp_avg_sq.*`)
 *   Adam t, step       state.json
 *   RNG state          state.json (`rng`): the stream for dropout masks and shuffles continues exactly
 *   sample order       state.json (`epochStartRng`): the RNG state the current epoch was shuffled from,
 *                      so a resume mid-epoch rebuilds the very same permutation
 *
 * and everything else is a pure function of the config and the data set,
 * whose hashes a resume checks. Hence: resumed from step k, a run takes the
 * same steps, bit for bit, as one that was never interrupted.
 */
import { createHash } from 'node:crypto';
import { CheckpointError, type CheckpointContent, type LoadedCheckpoint } from './checkpoint';
import type { Dataset } from './dataset';
import {
  Adam,
  drawDropoutMasks,
  evaluate,
  initParams,
  lossAndGrads,
  paramSpecs,
  validateModelConfig,
  zerosLike,
  type AdamConfig,
  type ModelConfig,
  type Param,
} from './model';
import { Xoshiro128 } from './rng';
import { toFloat32, type Tensor, type TensorInput } from './safetensors';

export interface TrainConfig {
  model: ModelConfig;
  batchSize: number;
  optimizer: { name: 'adam' } & AdamConfig;
}

/** Everything in a config changes the trajectory, so all of it is hashed (keys sorted: order-independent). */
export function configHash(cfg: TrainConfig): string {
  return createHash('sha256').update(canonicalJson(cfg)).digest('hex');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** "a.b: x → y" lines for the fields that differ, so a refusal says what changed. */
function configDiff(saved: unknown, current: unknown, prefix = ''): string[] {
  if (saved && current && typeof saved === 'object' && typeof current === 'object' && !Array.isArray(saved) && !Array.isArray(current)) {
    const s = saved as Record<string, unknown>;
    const c = current as Record<string, unknown>;
    return [...new Set([...Object.keys(s), ...Object.keys(c)])]
      .sort()
      .flatMap((k) => configDiff(s[k], c[k], prefix ? `${prefix}.${k}` : k));
  }
  return canonicalJson(saved) === canonicalJson(current)
    ? []
    : [`${prefix}: checkpoint ${canonicalJson(saved)}, this run ${canonicalJson(current)}`];
}

export function validateTrainConfig(cfg: TrainConfig, data: Dataset): void {
  validateModelConfig(cfg.model);
  if (cfg.model.inputs !== data.features || cfg.model.classes !== data.classes) {
    throw new Error(`the model (${cfg.model.inputs} inputs, ${cfg.model.classes} classes) does not fit the data (${data.features} features, ${data.classes} classes)`);
  }
  if (!Number.isInteger(cfg.batchSize) || cfg.batchSize < 1 || cfg.batchSize > data.samples) {
    throw new Error(`batch size must be 1..${data.samples}, got ${cfg.batchSize}`);
  }
  const o = cfg.optimizer;
  if (!(o.lr > 0 && o.lr < 10) || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0)) {
    throw new Error(`invalid Adam settings lr ${o.lr}, betas ${o.beta1}/${o.beta2}, eps ${o.eps}`);
  }
}

export class Training {
  /** Mini-batches per epoch; the last partial batch is dropped so every step has the same shape. */
  readonly batchesPerEpoch: number;
  readonly configHash: string;
  private readonly grads: Float32Array[];
  private readonly order: Int32Array;

  private constructor(
    readonly config: TrainConfig,
    readonly data: Dataset,
    readonly seed: number,
    readonly params: Param[],
    readonly adam: Adam,
    private rng: Xoshiro128,
    private epochStartRng: Xoshiro128,
    /** Completed updates. */
    public step: number,
    /** Loss of the last mini-batch trained, or null before the first. */
    public lastLoss: number | null,
  ) {
    this.batchesPerEpoch = Math.floor(data.samples / config.batchSize);
    this.configHash = configHash(config);
    this.grads = zerosLike(params);
    this.order = new Int32Array(data.samples);
    if (step % this.batchesPerEpoch !== 0) this.rebuildOrder();
  }

  /** A new run: weights drawn from `seed`, the same RNG stream then drives shuffles and dropout. */
  static fresh(config: TrainConfig, data: Dataset, seed: number): Training {
    validateTrainConfig(config, data);
    const rng = Xoshiro128.fromSeed(seed);
    const params = initParams(config.model, rng);
    return new Training(config, data, seed, params, Adam.fresh(config.optimizer, params), rng, rng.clone(), 0, null);
  }

  /**
   * Continue from a verified checkpoint (see checkpoint.ts readCheckpoint). Refuses —
   * CheckpointError — a checkpoint of another config or data set, or whose tensors
   * do not have exactly the shapes this config needs.
   */
  static resume(config: TrainConfig, data: Dataset, ckpt: LoadedCheckpoint): Training {
    validateTrainConfig(config, data);
    const refuse = (why: string) => new CheckpointError(`checkpoint ${ckpt.path} refused: ${why}`);
    const s = ckpt.state;

    const hash = configHash(config);
    if (s.configHash !== hash) {
      const diff = configDiff(s.config, config);
      throw refuse(
        `it was written with another training config (${diff.length ? diff.join('; ') : `hash ${String(s.configHash)}`}); resuming would not continue the same run`,
      );
    }
    if (typeof s.config !== 'object' || configHash(s.config as TrainConfig) !== hash) {
      throw refuse('its config does not match its configHash');
    }
    const ds = s.dataset as { sha256?: unknown } | undefined;
    if (ds?.sha256 !== data.sha256) {
      throw refuse(`it was trained on data set ${String(ds?.sha256)}, this run has ${data.sha256}`);
    }

    let rng: Xoshiro128;
    let epochStartRng: Xoshiro128;
    try {
      rng = Xoshiro128.restore(s.rng);
      epochStartRng = Xoshiro128.restore(s.epochStartRng);
    } catch (e) {
      throw refuse((e as Error).message);
    }
    const opt = s.optimizer as { name?: unknown; t?: unknown } | undefined;
    if (opt?.name !== 'adam' || opt.t !== ckpt.step) {
      throw refuse(`optimizer state ${JSON.stringify(opt)} is not Adam at step ${ckpt.step}`);
    }
    const seed = s.seed;
    if (!Number.isSafeInteger(seed)) throw refuse('no seed');

    const take = (tensors: Map<string, Tensor>, name: string, shape: number[], file: string, nonNegative = false) => {
      const t = tensors.get(name);
      if (!t) throw refuse(`${file} has no tensor "${name}"`);
      if (t.dtype !== 'F32' || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw refuse(`${file} tensor "${name}" is ${t.dtype} [${t.shape.join(', ')}], this model needs F32 [${shape.join(', ')}]`);
      }
      const data = toFloat32(t);
      for (let i = 0; i < data.length; i++) {
        const v = data[i]!;
        if (!Number.isFinite(v) || (nonNegative && v < 0)) throw refuse(`${file} tensor "${name}" holds ${v} at index ${i}`);
      }
      return data;
    };
    const specs = paramSpecs(config.model);
    const expectModel = new Set(specs.map((p) => p.name));
    const expectOpt = new Set(specs.flatMap((p) => [`exp_avg.${p.name}`, `exp_avg_sq.${p.name}`]));
    for (const n of ckpt.model.keys()) if (!expectModel.has(n)) throw refuse(`model.safetensors has an unexpected tensor "${n}"`);
    for (const n of ckpt.optimizer.keys()) if (!expectOpt.has(n)) throw refuse(`optimizer.safetensors has an unexpected tensor "${n}"`);
    const params = specs.map((p) => ({ ...p, data: take(ckpt.model, p.name, p.shape, 'model.safetensors') }));
    const m = specs.map((p) => take(ckpt.optimizer, `exp_avg.${p.name}`, p.shape, 'optimizer.safetensors'));
    const v = specs.map((p) => take(ckpt.optimizer, `exp_avg_sq.${p.name}`, p.shape, 'optimizer.safetensors', true));
    const loss = typeof s.loss === 'number' ? s.loss : null;
    return new Training(config, data, seed as number, params, new Adam(config.optimizer, m, v, ckpt.step), rng, epochStartRng, ckpt.step, loss);
  }

  get epoch(): number {
    return Math.floor(this.step / this.batchesPerEpoch);
  }

  /** This epoch's sample order, from the RNG state saved when the epoch began. */
  private rebuildOrder(): void {
    for (let i = 0; i < this.order.length; i++) this.order[i] = i;
    this.epochStartRng.clone().shuffle(this.order);
  }

  /** One mini-batch update; returns the batch's loss (before the update). */
  trainStep(): number {
    const b = this.step % this.batchesPerEpoch;
    if (b === 0) {
      // New epoch: remember where the RNG stood, then shuffle with it (rebuildOrder replays exactly this).
      this.epochStartRng = this.rng.clone();
      for (let i = 0; i < this.order.length; i++) this.order[i] = i;
      this.rng.shuffle(this.order);
    }
    const B = this.config.batchSize;
    const rows = this.order.subarray(b * B, (b + 1) * B);
    const masks = drawDropoutMasks(this.config.model, B, this.rng);
    const loss = lossAndGrads(this.config.model, this.params, this.data.x, this.data.y, rows, masks, this.grads);
    if (!Number.isFinite(loss)) throw new Error(`loss is ${loss} at step ${this.step + 1}: training diverged`);
    this.adam.step(this.params, this.grads);
    this.step += 1;
    this.lastLoss = loss;
    return loss;
  }

  /** Loss and accuracy over the whole data set without dropout (does not touch the RNG). */
  evaluate(): { loss: number; accuracy: number } {
    return evaluate(this.config.model, this.params, this.data.x, this.data.y);
  }

  modelTensors(): Record<string, TensorInput> {
    return Object.fromEntries(this.params.map((p) => [p.name, { dtype: 'F32' as const, shape: p.shape, data: p.data }]));
  }

  /** Everything `resume` needs, for checkpoint.ts writeCheckpoint. State JSON has no timestamps: identical runs write identical checkpoints. */
  checkpointContent(): CheckpointContent {
    const optimizer: Record<string, TensorInput> = {};
    this.params.forEach((p, i) => {
      optimizer[`exp_avg.${p.name}`] = { dtype: 'F32', shape: p.shape, data: this.adam.m[i]! };
      optimizer[`exp_avg_sq.${p.name}`] = { dtype: 'F32', shape: p.shape, data: this.adam.v[i]! };
    });
    const ev = this.evaluate();
    const { name, ...hyper } = this.config.optimizer;
    return {
      step: this.step,
      model: this.modelTensors(),
      optimizer,
      state: {
        epoch: this.epoch,
        batchInEpoch: this.step % this.batchesPerEpoch,
        loss: this.lastLoss,
        evalLoss: ev.loss,
        evalAccuracy: ev.accuracy,
        seed: this.seed,
        rng: this.rng.save(),
        epochStartRng: this.epochStartRng.save(),
        optimizer: { name, t: this.adam.t, ...hyper },
        config: this.config,
        configHash: this.configHash,
        dataset: { sha256: this.data.sha256, samples: this.data.samples, features: this.data.features, classes: this.data.classes },
      },
    };
  }
}
