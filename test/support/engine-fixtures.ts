/**
 * Fixtures for storage-engine tests: a repository with fresh keys on any
 * object store, and asset folders with the awkward cases real assets have.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, readlink, lstat, symlink, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, generateHybridIdentity } from 'age-encryption';
import type { ObjectStore } from '../../engine/backend/object-store';
import { AgeIdentities } from '../../engine/crypto/age';
import { SigningKey } from '../../engine/crypto/signing';
import { Repository } from '../../engine/repository';
import type { ChunkerParams } from '../../engine/chunker';

/** Small chunks and packs, so tests exercise many chunks and packs with little data. */
export const SMALL_CHUNKS: ChunkerParams = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 };

export interface TestKeys {
  identities: AgeIdentities;
  identityStrings: string[];
  signingKey: SigningKey;
}

export async function makeKeys(kind: 'x25519' | 'hybrid' = 'x25519'): Promise<TestKeys> {
  const id = kind === 'x25519' ? await generateX25519Identity() : await generateHybridIdentity();
  return { identities: AgeIdentities.fromStrings([id]), identityStrings: [id], signingKey: SigningKey.generate() };
}

export async function makeRepository(
  store: ObjectStore,
  opts: { kind?: 'x25519' | 'hybrid'; chunker?: ChunkerParams; packSize?: number } = {},
): Promise<{ repo: Repository; keys: TestKeys }> {
  const keys = await makeKeys(opts.kind);
  await Repository.init(store, {
    recipients: await keys.identities.recipients(),
    signingKey: keys.signingKey,
    chunker: opts.chunker ?? SMALL_CHUNKS,
    packSize: opts.packSize ?? 1024 * 1024,
  });
  const repo = await Repository.open(store, { identities: keys.identities, signingKey: keys.signingKey });
  return { repo, keys };
}

export async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `lifeline-${label}-`));
}

/**
 * An asset with nested folders, an empty file, an empty folder, a symlink,
 * odd modes, small files and a few larger random files.
 */
export async function makeAsset(root: string, opts: { smallFiles?: number; largeFileBytes?: number } = {}): Promise<void> {
  await mkdir(join(root, 'weights', 'shards'), { recursive: true });
  await mkdir(join(root, 'empty-folder'), { recursive: true });
  await mkdir(join(root, 'data', 'images'), { recursive: true });
  await writeFile(join(root, 'config.json'), JSON.stringify({ lr: 0.001, layers: 4 }));
  await writeFile(join(root, 'empty.bin'), Buffer.alloc(0));
  await writeFile(join(root, 'weights', 'model.safetensors'), randomBytes(opts.largeFileBytes ?? 3 * 1024 * 1024 + 123));
  await writeFile(join(root, 'weights', 'shards', 'a.bin'), randomBytes(200_000));
  await writeFile(join(root, 'weights', 'shards', 'b.bin'), randomBytes(200_000), { mode: 0o600 });
  for (let i = 0; i < (opts.smallFiles ?? 50); i++) {
    await writeFile(join(root, 'data', 'images', `img-${String(i).padStart(5, '0')}.jpg`), randomBytes(1000 + i * 37));
  }
  await symlink('weights/model.safetensors', join(root, 'latest'));
  await utimes(join(root, 'config.json'), new Date('2024-01-02T03:04:05.678Z'), new Date('2024-01-02T03:04:05.678Z'));
}

export interface TreeSnapshotOfDisk {
  [path: string]: { type: string; mode?: number; size?: number; mtimeMs?: number; content?: string; target?: string };
}

/** Everything restore must reproduce: types, modes, sizes, contents (hashed), mtimes of files, link targets. */
export async function describeTree(root: string): Promise<TreeSnapshotOfDisk> {
  const out: TreeSnapshotOfDisk = {};
  const visit = async (dir: string, rel: string) => {
    for (const name of (await readdir(dir)).sort()) {
      const abs = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', target: await readlink(abs) };
      else if (st.isDirectory()) {
        out[r] = { type: 'dir', mode: st.mode & 0o7777 };
        await visit(abs, r);
      } else {
        const data = await readFile(abs);
        const { createHash } = await import('node:crypto');
        out[r] = { type: 'file', mode: st.mode & 0o7777, size: st.size, mtimeMs: Math.floor(st.mtimeMs), content: createHash('sha256').update(data).digest('hex') };
      }
    }
  };
  await visit(root, '');
  return out;
}
