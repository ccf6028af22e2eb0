/**
 * Checkpoint folders: written atomically, read back only after verification.
 *
 *   <checkpoint-dir>/step-000120/
 *     model.safetensors      the weights (F32), each tensor's sha256 in __metadata__ ("sha256.<name>")
 *     optimizer.safetensors  the optimiser's buffers (F32), digests likewise
 *     state.json             step, trainer state (RNG, epoch, config, data set…), and size + sha256 of both files
 *     COMPLETE               written last: {"format", "step", "stateSha256"}
 *
 * Write order: everything goes into `.tmp-step-000120/` (each file fsynced),
 * that folder is renamed to `step-000120/`, then COMPLETE is written inside
 * it. So a backup tool that trusts renames (ignores `.tmp-*`) and one that
 * waits for a completion marker both see only finished checkpoints.
 *
 * Every byte is covered by a digest chain — COMPLETE → state.json → each file
 * → each tensor — so a flipped bit or a truncated file anywhere is refused
 * with a message saying where, instead of training on from garbage.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type Tensor, type TensorInput } from './safetensors';

export const CHECKPOINT_FORMAT = 'lifeline-trainer-checkpoint/1';
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'state.json';
export const COMPLETE_MARKER = 'COMPLETE';
const TMP_PREFIX = '.tmp-';
const OLD_PREFIX = '.old-';
const NAME_RE = /^step-(\d{6,})$/;

/** A checkpoint that must not be trained from (corrupt, incomplete, or not this run's kind). */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

export interface CheckpointContent {
  step: number;
  model: Record<string, TensorInput>;
  optimizer: Record<string, TensorInput>;
  /** The trainer's own fields for state.json (JSON values; `format`, `step`, `files`, `weightsSha256` are reserved). */
  state: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  path: string;
  step: number;
  /** The whole state.json. */
  state: Record<string, unknown>;
  model: Map<string, Tensor>;
  optimizer: Map<string, Tensor>;
  /** sha256 of model.safetensors' tensor bytes (its data section). */
  weightsSha256: string;
}

export interface CheckpointEntry {
  step: number;
  path: string;
  /** Has its COMPLETE marker (content not yet verified: see {@link readCheckpoint}). */
  complete: boolean;
}

const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

export function checkpointName(step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`bad checkpoint step ${step}`);
  return `step-${String(step).padStart(6, '0')}`;
}

export function parseCheckpointName(name: string): number | null {
  const m = NAME_RE.exec(name);
  return m ? Number(m[1]) : null;
}

/** sha256 of the tensor bytes of a safetensors file (everything after the header). */
export function tensorBytesSha256(file: Uint8Array): string {
  return sha256(file.subarray(decodeSafetensors(file).dataStart));
}

async function writeDurable(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync a directory so the names created or renamed in it survive a power cut, not just a process kill. */
async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function withDigests(tensors: Record<string, TensorInput>, extra: Record<string, string>): Uint8Array {
  const metadata: Record<string, string> = { ...extra };
  for (const [name, t] of Object.entries(tensors)) {
    const d = t.data;
    metadata[`sha256.${name}`] = sha256(d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return encodeSafetensors(tensors, metadata);
}

/** Write one checkpoint atomically into `dir` (see the module comment); returns its folder. */
export async function writeCheckpoint(
  dir: string,
  content: CheckpointContent,
): Promise<{ path: string; step: number; weightsSha256: string }> {
  for (const k of ['format', 'step', 'files', 'weightsSha256']) {
    if (k in content.state) throw new Error(`state field "${k}" is reserved`);
  }
  const name = checkpointName(content.step);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `${TMP_PREFIX}${name}`);
  const final = join(dir, name);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);

  const meta = { format: CHECKPOINT_FORMAT, step: String(content.step) };
  const model = withDigests(content.model, meta);
  const optimizer = withDigests(content.optimizer, meta);
  const weightsSha256 = tensorBytesSha256(model);
  const state = {
    format: CHECKPOINT_FORMAT,
    step: content.step,
    ...content.state,
    weightsSha256,
    files: {
      [MODEL_FILE]: { bytes: model.byteLength, sha256: sha256(model) },
      [OPTIMIZER_FILE]: { bytes: optimizer.byteLength, sha256: sha256(optimizer) },
    },
  };
  const stateText = `${JSON.stringify(state, null, 2)}\n`;
  await writeDurable(join(tmp, MODEL_FILE), model);
  await writeDurable(join(tmp, OPTIMIZER_FILE), optimizer);
  await writeDurable(join(tmp, STATE_FILE), stateText);
  await syncDir(tmp);

  // Same step written again (a run resumed from an earlier checkpoint gets here again): a directory
  // cannot be renamed over a non-empty one, so the old folder steps aside first and goes once the new is complete.
  let old: string | null = null;
  if (await exists(final)) {
    old = join(dir, `${OLD_PREFIX}${name}`);
    await rm(old, { recursive: true, force: true });
    await rename(final, old);
  }
  await rename(tmp, final);
  await syncDir(dir);

  // The marker itself appears atomically (written aside, then renamed), so whoever sees it can read it whole.
  const marker = `${JSON.stringify({ format: CHECKPOINT_FORMAT, step: content.step, stateSha256: sha256(stateText) })}\n`;
  await writeDurable(join(final, `.${COMPLETE_MARKER}.tmp`), marker);
  await rename(join(final, `.${COMPLETE_MARKER}.tmp`), join(final, COMPLETE_MARKER));
  await syncDir(final);
  if (old) await rm(old, { recursive: true, force: true });
  return { path: resolve(final), step: content.step, weightsSha256 };
}

function refuse(path: string, why: string): CheckpointError {
  return new CheckpointError(`checkpoint ${path} refused: ${why}`);
}

async function readSafetensorsVerified(
  path: string,
  file: string,
  expected: unknown,
): Promise<{ bytes: Uint8Array; tensors: Map<string, Tensor> }> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(path, file));
  } catch (e) {
    throw refuse(path, `cannot read ${file}: ${(e as Error).message}`);
  }
  const exp = expected as { bytes?: unknown; sha256?: unknown } | undefined;
  if (!exp || typeof exp.sha256 !== 'string' || typeof exp.bytes !== 'number') {
    throw refuse(path, `${STATE_FILE} has no size and sha256 for ${file}`);
  }
  // Structure first (its messages say what is wrong: truncated, bad offsets…), then the digests.
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    const size = bytes.byteLength !== exp.bytes ? ` (file is ${bytes.byteLength} bytes, ${STATE_FILE} says ${exp.bytes})` : '';
    throw refuse(path, `${file} is not a valid safetensors file: ${e.message}${size}`);
  }
  for (const [name, t] of decoded.tensors) {
    const want = decoded.metadata[`sha256.${name}`];
    if (!want) throw refuse(path, `${file} has no sha256 for tensor "${name}"`);
    const got = sha256(t.bytes);
    if (got !== want) {
      throw refuse(path, `${file} tensor "${name}" is corrupt: sha256 ${got.slice(0, 16)}… but ${want.slice(0, 16)}… was recorded`);
    }
  }
  if (bytes.byteLength !== exp.bytes) throw refuse(path, `${file} is ${bytes.byteLength} bytes, ${STATE_FILE} says ${exp.bytes}`);
  const digest = sha256(bytes);
  if (digest !== exp.sha256) {
    throw refuse(path, `${file} sha256 ${digest.slice(0, 16)}… does not match ${STATE_FILE} (${exp.sha256.slice(0, 16)}…)`);
  }
  return { bytes, tensors: decoded.tensors };
}

/**
 * Read one checkpoint folder and verify all of it. Throws {@link CheckpointError}
 * (message: which file, what is wrong) unless every digest and size matches.
 * What the trainer must check on top — config, data set, tensor shapes — is its own business.
 */
export async function readCheckpoint(folder: string): Promise<LoadedCheckpoint> {
  const path = resolve(folder);
  let markerText: string;
  try {
    markerText = await readFile(join(path, COMPLETE_MARKER), 'utf8');
  } catch {
    throw refuse(path, `no ${COMPLETE_MARKER} marker: its writer never finished it`);
  }
  let marker: { format?: unknown; step?: unknown; stateSha256?: unknown };
  try {
    marker = JSON.parse(markerText) as typeof marker;
  } catch {
    throw refuse(path, `${COMPLETE_MARKER} marker is not valid JSON`);
  }
  if (marker.format !== CHECKPOINT_FORMAT) {
    throw refuse(path, `format ${JSON.stringify(marker.format)} is not "${CHECKPOINT_FORMAT}"`);
  }
  let stateText: string;
  try {
    stateText = await readFile(join(path, STATE_FILE), 'utf8');
  } catch (e) {
    throw refuse(path, `cannot read ${STATE_FILE}: ${(e as Error).message}`);
  }
  if (sha256(stateText) !== marker.stateSha256) throw refuse(path, `${STATE_FILE} does not match the digest in ${COMPLETE_MARKER}`);
  let state: Record<string, unknown>;
  try {
    state = JSON.parse(stateText) as Record<string, unknown>;
  } catch {
    throw refuse(path, `${STATE_FILE} is not valid JSON`);
  }
  if (state.format !== CHECKPOINT_FORMAT) throw refuse(path, `${STATE_FILE} format is not "${CHECKPOINT_FORMAT}"`);
  const step = state.step;
  if (!Number.isSafeInteger(step) || (step as number) < 0 || step !== marker.step) {
    throw refuse(path, `${STATE_FILE} step ${String(step)} is invalid or differs from ${COMPLETE_MARKER} (${String(marker.step)})`);
  }
  const named = parseCheckpointName(basename(path));
  if (named !== null && named !== step) throw refuse(path, `the folder is named for step ${named} but holds step ${String(step)}`);

  const files = (state.files ?? {}) as Record<string, unknown>;
  const model = await readSafetensorsVerified(path, MODEL_FILE, files[MODEL_FILE]);
  const optimizer = await readSafetensorsVerified(path, OPTIMIZER_FILE, files[OPTIMIZER_FILE]);
  const weightsSha256 = tensorBytesSha256(model.bytes);
  if (state.weightsSha256 !== weightsSha256) throw refuse(path, `weightsSha256 in ${STATE_FILE} does not match ${MODEL_FILE}`);
  return { path, step: step as number, state, model: model.tensors, optimizer: optimizer.tensors, weightsSha256 };
}

/** The `step-NNNNNN` folders in `dir`, oldest step first (an absent dir has none). */
export async function listCheckpoints(dir: string): Promise<CheckpointEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const out: CheckpointEntry[] = [];
  for (const name of names) {
    const step = parseCheckpointName(name);
    if (step === null) continue;
    const path = resolve(dir, name);
    out.push({ step, path, complete: await exists(join(path, COMPLETE_MARKER)) });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The complete checkpoint with the highest step, or null. */
export async function latestCompleteCheckpoint(dir: string): Promise<CheckpointEntry | null> {
  const complete = (await listCheckpoints(dir)).filter((c) => c.complete);
  return complete.at(-1) ?? null;
}

/**
 * Keep the `keep` complete checkpoints with the highest steps; delete older
 * complete ones, and incomplete ones older than the newest complete (left by a
 * crash between rename and marker). Called only after a new checkpoint is
 * complete, so there is never a moment with fewer good checkpoints than before.
 */
export async function pruneCheckpoints(dir: string, keep: number): Promise<string[]> {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`keep must be >= 1, got ${keep}`);
  const all = await listCheckpoints(dir);
  const complete = all.filter((c) => c.complete);
  const newest = complete.at(-1)?.step ?? -1;
  const doomed = [
    ...complete.slice(0, Math.max(0, complete.length - keep)),
    ...all.filter((c) => !c.complete && c.step < newest),
  ];
  for (const c of doomed) await rm(c.path, { recursive: true, force: true });
  return doomed.map((c) => c.path).sort();
}

/** Remove `.tmp-*` / `.old-*` folders a killed writer left behind (only ever this trainer's own). */
export async function removeStaleTemporaries(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const stale = names.filter(
    (n) => (n.startsWith(TMP_PREFIX) || n.startsWith(OLD_PREFIX)) && parseCheckpointName(n.slice(5)) !== null,
  );
  for (const n of stale) await rm(join(dir, n), { recursive: true, force: true });
  return stale.map((n) => resolve(dir, n));
}

/**
 * What `--resume` names: a checkpoint folder (has state.json), or a folder of
 * checkpoints, meaning its latest complete one. Throws {@link CheckpointError}.
 */
export async function resolveResumePath(path: string): Promise<string> {
  const abs = resolve(path);
  if (!(await exists(abs))) throw new CheckpointError(`checkpoint ${abs} refused: it does not exist`);
  if (await exists(join(abs, STATE_FILE))) return abs;
  const latest = await latestCompleteCheckpoint(abs);
  if (!latest) throw new CheckpointError(`checkpoint ${abs} refused: no ${STATE_FILE}, and no complete step-* checkpoint inside`);
  return latest.path;
}
