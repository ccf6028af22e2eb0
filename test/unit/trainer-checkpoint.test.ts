import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointName,
  CheckpointError,
  latestCompleteCheckpoint,
  listCheckpoints,
  parseCheckpointName,
  pruneCheckpoints,
  readCheckpoint,
  removeStaleTemporaries,
  resolveResumePath,
  writeCheckpoint,
  type CheckpointContent,
} from '../../trainer/checkpoint';
import { decodeSafetensors, toFloat32 } from '../../trainer/safetensors';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'trainer-ckpt-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
const freshDir = async () => {
  const d = join(root, `case-${n++}`);
  await mkdir(d);
  return d;
};

function content(step: number): CheckpointContent {
  return {
    step,
    model: {
      'fc1.weight': { dtype: 'F32', shape: [2, 3], data: Float32Array.from({ length: 6 }, (_, i) => step + i / 8) },
      'fc1.bias': { dtype: 'F32', shape: [2], data: new Float32Array([step, -step]) },
    },
    optimizer: { 'exp_avg.fc1.bias': { dtype: 'F32', shape: [2], data: new Float32Array([0.5, 0.25]) } },
    state: { epoch: 1, note: 'unit' },
  };
}

async function flipByte(path: string, at: number) {
  const b = await readFile(path);
  b[at] = b[at]! ^ 0x01;
  await writeFile(path, b);
}

describe('checkpoint names', () => {
  it('pads the step to six digits and parses it back', () => {
    expect(checkpointName(120)).toBe('step-000120');
    expect(checkpointName(1_234_567)).toBe('step-1234567');
    expect(parseCheckpointName('step-000120')).toBe(120);
    expect(parseCheckpointName('step-1234567')).toBe(1_234_567);
    expect(parseCheckpointName('.tmp-step-000120')).toBeNull();
    expect(parseCheckpointName('step-12')).toBeNull();
  });
});

describe('writeCheckpoint / readCheckpoint', () => {
  it('lays out model.safetensors, optimizer.safetensors, state.json and COMPLETE, and reads them back verified', async () => {
    const dir = await freshDir();
    const w = await writeCheckpoint(dir, content(120));
    expect(w.path).toBe(join(dir, 'step-000120'));
    expect((await readdir(dir)).sort()).toEqual(['step-000120']); // no .tmp left behind
    expect((await readdir(w.path)).sort()).toEqual(['COMPLETE', 'model.safetensors', 'optimizer.safetensors', 'state.json']);

    const raw = decodeSafetensors(await readFile(join(w.path, 'model.safetensors')));
    expect(raw.metadata.format).toBe('lifeline-trainer-checkpoint/1');
    expect(raw.metadata['sha256.fc1.bias']).toMatch(/^[0-9a-f]{64}$/);
    expect(raw.tensors.get('fc1.weight')!.dtype).toBe('F32');

    const state = JSON.parse(await readFile(join(w.path, 'state.json'), 'utf8')) as Record<string, unknown>;
    expect(state).toMatchObject({ format: 'lifeline-trainer-checkpoint/1', step: 120, epoch: 1, note: 'unit' });
    expect(state.weightsSha256).toBe(w.weightsSha256);
    const marker = JSON.parse(await readFile(join(w.path, 'COMPLETE'), 'utf8')) as Record<string, unknown>;
    expect(marker).toMatchObject({ step: 120, stateSha256: expect.stringMatching(/^[0-9a-f]{64}$/) });

    const r = await readCheckpoint(w.path);
    expect(r.step).toBe(120);
    expect(r.weightsSha256).toBe(w.weightsSha256);
    expect([...toFloat32(r.model.get('fc1.bias')!)]).toEqual([120, -120]);
    expect([...toFloat32(r.optimizer.get('exp_avg.fc1.bias')!)]).toEqual([0.5, 0.25]);
    expect(r.state.note).toBe('unit');
  });

  it('writes identical bytes for identical content (no timestamps), and replaces an existing folder of the same step', async () => {
    const a = await freshDir();
    const b = await freshDir();
    const wa = await writeCheckpoint(a, content(7));
    await writeCheckpoint(b, content(7));
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'state.json', 'COMPLETE']) {
      expect((await readFile(join(a, 'step-000007', f))).equals(await readFile(join(b, 'step-000007', f))), f).toBe(true);
    }
    const changed = content(7);
    changed.state.note = 'second';
    await writeCheckpoint(a, changed);
    expect((await readdir(a)).sort()).toEqual(['step-000007']);
    expect((await readCheckpoint(wa.path)).state.note).toBe('second');
  });

  it('refuses reserved state fields', async () => {
    const c = content(1);
    c.state.files = {};
    await expect(writeCheckpoint(await freshDir(), c)).rejects.toThrow(/reserved/);
  });

  const corruptions: [string, (p: string) => Promise<void>, RegExp][] = [
    [
      'a flipped bit in a weight',
      async (p) => {
        const b = await readFile(join(p, 'model.safetensors'));
        await flipByte(join(p, 'model.safetensors'), b.byteLength - 3);
      },
      /model\.safetensors tensor "fc1\.(weight|bias)" is corrupt: sha256/,
    ],
    [
      'a flipped bit in an optimizer moment',
      async (p) => {
        const b = await readFile(join(p, 'optimizer.safetensors'));
        await flipByte(join(p, 'optimizer.safetensors'), b.byteLength - 1);
      },
      /optimizer\.safetensors tensor "exp_avg\.fc1\.bias" is corrupt/,
    ],
    [
      'a truncated model file',
      async (p) => truncate(join(p, 'model.safetensors'), (await readFile(join(p, 'model.safetensors'))).byteLength - 5),
      /model\.safetensors is not a valid safetensors file: .*truncated\?.*state\.json says/,
    ],
    [
      'an empty model file',
      async (p) => truncate(join(p, 'model.safetensors'), 0),
      /model\.safetensors is not a valid safetensors file: file is 0 bytes/,
    ],
    [
      'an edited header (still a valid safetensors file, tensors intact)',
      async (p) => {
        const b = await readFile(join(p, 'model.safetensors'));
        const at = b.indexOf('checkpoint/1');
        expect(at).toBeGreaterThan(8);
        b.write('checkpoint/2', at, 'latin1'); // the format metadata, same length
        decodeSafetensors(b); // still parses
        await writeFile(join(p, 'model.safetensors'), b);
      },
      /model\.safetensors sha256 .* does not match state\.json/,
    ],
    [
      'an edited state.json',
      async (p) => {
        const s = await readFile(join(p, 'state.json'), 'utf8');
        await writeFile(join(p, 'state.json'), s.replace('"epoch": 1', '"epoch": 2'));
      },
      /state\.json does not match the digest in COMPLETE/,
    ],
    ['a missing COMPLETE marker', async (p) => rm(join(p, 'COMPLETE')), /no COMPLETE marker: its writer never finished it/],
    ['a missing optimizer file', async (p) => rm(join(p, 'optimizer.safetensors')), /cannot read optimizer\.safetensors/],
  ];
  for (const [what, damage, message] of corruptions) {
    it(`refuses a checkpoint with ${what}`, async () => {
      const dir = await freshDir();
      const w = await writeCheckpoint(dir, content(40));
      await readCheckpoint(w.path); // fine before the damage
      await damage(w.path);
      const err = await readCheckpoint(w.path).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as Error).message).toMatch(/^checkpoint .*step-000040 refused: /);
      expect((err as Error).message).toMatch(message);
    });
  }

  it('refuses a folder renamed to another step', async () => {
    const dir = await freshDir();
    const w = await writeCheckpoint(dir, content(40));
    const { rename } = await import('node:fs/promises');
    await rename(w.path, join(dir, 'step-000050'));
    await expect(readCheckpoint(join(dir, 'step-000050'))).rejects.toThrow(/named for step 50 but holds step 40/);
    // Restored under a name that is not a step name (e.g. /restore/ckpt): accepted, the content says the step.
    await rename(join(dir, 'step-000050'), join(dir, 'restored'));
    expect((await readCheckpoint(join(dir, 'restored'))).step).toBe(40);
  });
});

describe('listing, latest, pruning', () => {
  it('lists step folders by step, the latest complete ignores incomplete and temporary ones', async () => {
    const dir = await freshDir();
    await writeCheckpoint(dir, content(10));
    await writeCheckpoint(dir, content(20));
    await mkdir(join(dir, 'step-000030')); // renamed but never marked COMPLETE (killed in between)
    await mkdir(join(dir, '.tmp-step-000040')); // killed while writing
    await mkdir(join(dir, 'unrelated'));
    const list = await listCheckpoints(dir);
    expect(list.map((c) => [c.step, c.complete])).toEqual([
      [10, true],
      [20, true],
      [30, false],
    ]);
    expect((await latestCompleteCheckpoint(dir))!.path).toBe(join(dir, 'step-000020'));
    expect(await resolveResumePath(dir)).toBe(join(dir, 'step-000020'));
    expect(await resolveResumePath(join(dir, 'step-000010'))).toBe(join(dir, 'step-000010'));
    await expect(resolveResumePath(join(dir, 'unrelated'))).rejects.toThrow(/no state\.json, and no complete step-\* checkpoint/);
    await expect(resolveResumePath(join(dir, 'absent'))).rejects.toThrow(/does not exist/);
    expect(await latestCompleteCheckpoint(join(dir, 'absent'))).toBeNull();

    expect(await removeStaleTemporaries(dir)).toEqual([join(dir, '.tmp-step-000040')]);
    expect(existsSync(join(dir, 'unrelated'))).toBe(true);
  });

  it('keeps the K newest complete checkpoints, drops older incomplete ones, never a newer incomplete one', async () => {
    const dir = await freshDir();
    for (const s of [100, 200, 300, 400]) await writeCheckpoint(dir, content(s));
    await mkdir(join(dir, 'step-000250')); // stale incomplete, older than the newest complete
    await mkdir(join(dir, 'step-000500')); // newer than everything complete: not ours to judge
    const removed = await pruneCheckpoints(dir, 2);
    expect(removed).toEqual([join(dir, 'step-000100'), join(dir, 'step-000200'), join(dir, 'step-000250')]);
    expect((await readdir(dir)).sort()).toEqual(['step-000300', 'step-000400', 'step-000500']);
    await expect(pruneCheckpoints(dir, 0)).rejects.toThrow(/keep/);
  });
});
