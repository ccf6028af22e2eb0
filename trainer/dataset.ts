/**
 * The training data: a noisy multi-arm spiral (points in 2-D, one class per
 * arm). Not linearly separable, so the network has to learn curved decision
 * boundaries — the loss falls only if training really works — yet small
 * enough (a few thousand points) to train in well under a second.
 *
 * It is generated deterministically from a seed, either in memory or once to a
 * dataset folder by make-dataset.ts (an asset Lifeline can back up):
 *
 *   <dir>/data.safetensors  x: F32 [samples, 2], y: I32 [samples] (no metadata, so its sha256 is a content hash)
 *   <dir>/dataset.json      generator parameters, shapes, and that sha256 (written last: its presence means complete)
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Xoshiro128 } from './rng';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, toFloat32, toInt32 } from './safetensors';

export const DATASET_FORMAT = 'lifeline-trainer-dataset/1';
export const DATA_FILE = 'data.safetensors';
export const DATASET_JSON = 'dataset.json';

export interface SpiralParams {
  seed: number;
  samples: number;
  classes: number;
  /** Standard deviation of the angle noise, in radians. */
  noise: number;
}

export const DEFAULT_SPIRAL: SpiralParams = { seed: 7, samples: 3000, classes: 3, noise: 0.2 };

export interface Dataset {
  x: Float32Array;
  y: Int32Array;
  samples: number;
  features: number;
  classes: number;
  /** sha256 of the canonical data.safetensors bytes: identifies the data, wherever it came from. */
  sha256: string;
  /** Generator parameters, when known. */
  params?: SpiralParams;
}

/** A data folder that is missing, inconsistent or corrupt. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function encode(x: Float32Array, y: Int32Array, samples: number, features: number): Uint8Array {
  return encodeSafetensors({
    x: { dtype: 'F32', shape: [samples, features], data: x },
    y: { dtype: 'I32', shape: [samples], data: y },
  });
}

export function validateSpiralParams(p: SpiralParams): void {
  if (!Number.isInteger(p.classes) || p.classes < 2 || p.classes > 16) throw new Error(`classes must be 2..16, got ${p.classes}`);
  if (!Number.isInteger(p.samples) || p.samples < p.classes || p.samples > 1_000_000 || p.samples % p.classes !== 0) {
    throw new Error(`samples must be a multiple of classes (${p.classes}) up to 1,000,000, got ${p.samples}`);
  }
  if (!(p.noise >= 0 && p.noise <= 10)) throw new Error(`noise must be in [0, 10], got ${p.noise}`);
}

/**
 * Arm c: radius r from 0 to 1, angle c·2π/C + 4r + noise; the point is (r·sin θ, r·cos θ).
 * Samples are stored class by class; the trainer shuffles them.
 */
export function makeSpiral(params: SpiralParams = DEFAULT_SPIRAL): Dataset {
  validateSpiralParams(params);
  const { samples, classes, noise } = params;
  const rng = Xoshiro128.fromSeed(params.seed);
  const perClass = samples / classes;
  const x = new Float32Array(samples * 2);
  const y = new Int32Array(samples);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < perClass; i++) {
      const k = c * perClass + i;
      const r = perClass === 1 ? 1 : i / (perClass - 1);
      const theta = (c * 2 * Math.PI) / classes + 4 * r + noise * rng.nextNormal();
      x[2 * k] = r * Math.sin(theta);
      x[2 * k + 1] = r * Math.cos(theta);
      y[k] = c;
    }
  }
  return { x, y, samples, features: 2, classes, sha256: sha256(encode(x, y, samples, 2)), params };
}

/** Write a data folder; dataset.json is renamed into place last, so a folder with it is complete. */
export async function writeDataset(dir: string, ds: Dataset): Promise<void> {
  await mkdir(dir, { recursive: true });
  const bytes = encode(ds.x, ds.y, ds.samples, ds.features);
  await writeFile(join(dir, `.${DATA_FILE}.tmp`), bytes);
  await rename(join(dir, `.${DATA_FILE}.tmp`), join(dir, DATA_FILE));
  const info = {
    format: DATASET_FORMAT,
    name: 'spiral',
    samples: ds.samples,
    features: ds.features,
    classes: ds.classes,
    ...(ds.params ? { generator: ds.params } : {}),
    sha256: sha256(bytes),
    bytes: bytes.byteLength,
  };
  await writeFile(join(dir, `.${DATASET_JSON}.tmp`), `${JSON.stringify(info, null, 2)}\n`);
  await rename(join(dir, `.${DATASET_JSON}.tmp`), join(dir, DATASET_JSON));
}

/** Read and verify a data folder: digest, shapes, label range. Throws {@link DatasetError}. */
export async function readDataset(dir: string): Promise<Dataset> {
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(await readFile(join(dir, DATASET_JSON), 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new DatasetError(`data folder ${dir}: cannot read ${DATASET_JSON}: ${(e as Error).message}`);
  }
  if (info.format !== DATASET_FORMAT) {
    throw new DatasetError(`data folder ${dir}: ${DATASET_JSON} format is ${JSON.stringify(info.format)}, expected "${DATASET_FORMAT}"`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(dir, DATA_FILE));
  } catch (e) {
    throw new DatasetError(`data folder ${dir}: cannot read ${DATA_FILE}: ${(e as Error).message}`);
  }
  const digest = sha256(bytes);
  if (digest !== info.sha256) {
    throw new DatasetError(
      `data folder ${dir}: ${DATA_FILE} sha256 ${digest} does not match ${DATASET_JSON} (${String(info.sha256)}): the data is corrupt or was replaced`,
    );
  }
  try {
    const { tensors } = decodeSafetensors(bytes);
    const xt = tensors.get('x');
    const yt = tensors.get('y');
    if (!xt || !yt || tensors.size !== 2) throw new DatasetError('expected exactly the tensors "x" and "y"');
    const [samples, features] = xt.shape;
    if (xt.shape.length !== 2 || yt.shape.length !== 1 || yt.shape[0] !== samples || samples === undefined || features === undefined) {
      throw new DatasetError(`shapes x [${xt.shape.join(', ')}] and y [${yt.shape.join(', ')}] do not match`);
    }
    const classes = info.classes;
    if (!Number.isInteger(classes) || (classes as number) < 2) throw new DatasetError(`${DATASET_JSON} classes is not an integer >= 2`);
    if (samples !== info.samples || features !== info.features) {
      throw new DatasetError(`${DATASET_JSON} says ${String(info.samples)}×${String(info.features)}, the tensors are ${samples}×${features}`);
    }
    const x = toFloat32(xt);
    const y = toInt32(yt);
    for (let i = 0; i < y.length; i++) {
      if (y[i]! < 0 || y[i]! >= (classes as number)) throw new DatasetError(`label ${y[i]} of sample ${i} is outside [0, ${String(classes)})`);
    }
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i]!)) throw new DatasetError(`feature ${i % features} of sample ${Math.floor(i / features)} is not finite`);
    }
    const gen = info.generator as SpiralParams | undefined;
    return { x, y, samples, features, classes: classes as number, sha256: digest, ...(gen ? { params: gen } : {}) };
  } catch (e) {
    if (e instanceof DatasetError || e instanceof SafetensorsError) {
      throw new DatasetError(`data folder ${dir}: ${DATA_FILE}: ${e.message}`);
    }
    throw e;
  }
}
