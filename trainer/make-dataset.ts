/**
 * Write the spiral data set to a folder, for `train.ts --data <dir>` (and for
 * Lifeline to back up as an asset of its own).
 *
 *   node --import tsx trainer/make-dataset.ts --out data/spiral [--seed 7] [--samples 3000] [--classes 3] [--noise 0.2]
 *
 * Prints one JSON line: {"event":"dataset","path",…,"sha256"}. The same
 * parameters always give byte-identical files, so the sha256 equals that of
 * the in-memory data set train.ts builds from the same seed and size.
 */
import { readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SPIRAL, makeSpiral, writeDataset, type SpiralParams } from './dataset';

async function main(argv: string[]): Promise<number> {
  let params: SpiralParams;
  let out: string;
  let force: boolean;
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        out: { type: 'string' },
        seed: { type: 'string' },
        samples: { type: 'string' },
        classes: { type: 'string' },
        noise: { type: 'string' },
        force: { type: 'boolean' },
      },
    });
    if (!values.out) throw new Error('--out <dir> is required');
    const n = (name: string, v: string | undefined, d: number) => {
      if (v === undefined) return d;
      const x = Number(v);
      if (v.trim() === '' || !Number.isFinite(x)) throw new Error(`--${name} must be a number, got "${v}"`);
      return x;
    };
    params = {
      seed: n('seed', values.seed, DEFAULT_SPIRAL.seed),
      samples: n('samples', values.samples, DEFAULT_SPIRAL.samples),
      classes: n('classes', values.classes, DEFAULT_SPIRAL.classes),
      noise: n('noise', values.noise, DEFAULT_SPIRAL.noise),
    };
    out = resolve(values.out);
    force = values.force ?? false;
  } catch (e) {
    process.stderr.write(`make-dataset: ${(e as Error).message}\n`);
    return 2;
  }
  let ds;
  try {
    ds = makeSpiral(params);
  } catch (e) {
    process.stderr.write(`make-dataset: ${(e as Error).message}\n`);
    return 2;
  }
  const existing = await readdir(out).catch(() => [] as string[]);
  if (existing.length > 0 && !force) {
    process.stderr.write(`make-dataset: ${out} is not empty (use --force to overwrite its data set)\n`);
    return 2;
  }
  await writeDataset(out, ds);
  process.stdout.write(
    `${JSON.stringify({ event: 'dataset', path: out, name: 'spiral', ...params, features: ds.features, sha256: ds.sha256 })}\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`make-dataset: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);
