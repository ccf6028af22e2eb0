/**
 * Malicious or damaged input: every case is a clear error, and nothing is
 * written outside the restore target (nor, for manifest problems, at all).
 */
import { mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup, BackupSession } from '../../engine/archiver';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { sealBytes } from '../../engine/crypto/age';
import { SigningKey } from '../../engine/crypto/signing';
import { AgeAuthError, AgeNoIdentityMatchError } from '../../engine/crypto/errors';
import { IntegrityError, InputError } from '../../engine/errors';
import { encodeManifest, type ManifestBody } from '../../engine/manifest';
import { keys, Repository } from '../../engine/repository';
import { restore, RestoreIncompleteError } from '../../engine/restorer';
import { encodeTreeBlob, type TreeEntry } from '../../engine/tree';
import { makeAsset, makeKeys, makeRepository, tempDir } from '../support/engine-fixtures';

const asset = { name: 'm', kind: 'model' as const, tenant: 'acme' };
const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});
const dir = async (l: string) => {
  const d = await tempDir(l);
  cleanup.push(d);
  return d;
};

/** Commits a snapshot whose tree is exactly `entries` (data blobs stored for files given content). */
async function craftSnapshot(repo: Repository, entries: TreeEntry[], signer?: SigningKey): Promise<string> {
  const session = new BackupSession(repo, { uploadConcurrency: 1, packsPerIndex: 1 });
  const treeId = await session.addBlob('tree', encodeTreeBlob(entries));
  await session.finish();
  const body: ManifestBody = {
    format: 'lifeline-snapshot',
    version: 1,
    repositoryId: repo.id,
    asset,
    labels: {},
    startedAt: new Date().toISOString(),
    time: new Date().toISOString(),
    hostname: 'attacker',
    parent: null,
    tree: [treeId],
    stats: { files: 0, dirs: 0, symlinks: 0, totalBytes: 0, readBytes: 0, newBytes: 0, newBlobs: 0, uploadedBytes: 0, durationMs: 0 },
  };
  if (!signer) return repo.commitSnapshot(body);
  const { id, bytes } = encodeManifest(body, signer);
  await repo.store.put(keys.snapshot(id), await sealBytes(bytes, repo.recipients));
  return id;
}

const EMPTY_SHA = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const file = (path: string): TreeEntry => ({ type: 'file', path, mode: 0o644, mtimeNs: '0', size: 0, sha256: EMPTY_SHA, chunks: [] });
const folder = (path: string): TreeEntry => ({ type: 'dir', path, mode: 0o755, mtimeNs: '0' });

describe('manifests that fail authentication', () => {
  it('a bit flipped in a stored manifest is rejected', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 1 });
    const { snapshotId } = await backup(repo, { root: src, asset });
    store.corrupt(keys.snapshot(snapshotId), 400);
    await expect(repo.loadSnapshot(snapshotId)).rejects.toThrow(/./);
    const target = await dir('dst');
    await expect(restore(repo, snapshotId, { target })).rejects.toBeInstanceOf(Error);
    expect(await readdir(target)).toEqual([]);
  });

  it('a manifest re-encrypted with altered content but the old signature is rejected', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 1 });
    const { snapshotId } = await backup(repo, { root: src, asset });
    const plain = (await repo.openObject(keys.snapshot(snapshotId))).toString('utf8');
    // The recipients are public: anyone with write access can produce a valid age file.
    const altered = plain.replace('"name":"m"', '"name":"x"');
    store.rawPut(keys.snapshot(snapshotId), await sealBytes(Buffer.from(altered), repo.recipients));
    await expect(repo.loadSnapshot(snapshotId)).rejects.toThrow(/signature is invalid/);
  });

  it('a manifest signed by an unknown key is rejected, naming the signer', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const intruder = SigningKey.generate();
    const id = await craftSnapshot(repo, [file('a')], intruder);
    await expect(repo.loadSnapshot(id)).rejects.toThrow(new RegExp(`untrusted key ${intruder.keyId}`));
  });

  it('a manifest stored under another snapshot id is rejected', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const a = await craftSnapshot(repo, [file('a')]);
    const b = await craftSnapshot(repo, [file('b')]);
    store.rawPut(keys.snapshot(b), (await store.get(keys.snapshot(a))));
    await expect(repo.loadSnapshot(b)).rejects.toThrow(/does not match its id/);
  });

  it('another tenant identity cannot open a manifest', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const id = await craftSnapshot(repo, [file('a')]);
    const other = await makeKeys();
    const { openBytes } = await import('../../engine/crypto/age');
    await expect(openBytes(await store.get(keys.snapshot(id)), other.identities)).rejects.toBeInstanceOf(AgeNoIdentityMatchError);
  });
});

describe('trees that would escape the restore root', () => {
  const cases: Array<[string, TreeEntry[], RegExp]> = [
    ['parent segment', [file('../evil')], /escapes the restore root/],
    ['nested parent segment', [folder('a'), file('a/../../evil')], /escapes the restore root/],
    ['absolute path', [file('/tmp/evil')], /absolute path/],
    ['not normalised', [folder('a'), file('a//b')], /not normalised/],
    [
      'file below a symlink of the same tree',
      [{ type: 'symlink', path: 'link', target: '/tmp', mtimeNs: '0' }, file('link/evil')],
      /below the symlink "link"/,
    ],
    ['duplicate path', [file('a'), file('a')], /not sorted or repeat/],
    ['missing parent folder', [file('nodir/a')], /no parent folder/],
  ];
  for (const [name, entries, why] of cases) {
    it(`rejects ${name} before writing anything`, async () => {
      const store = new MemoryObjectStore();
      const { repo } = await makeRepository(store);
      const id = await craftSnapshot(repo, entries);
      const base = await dir('escape');
      const target = join(base, 'target');
      await mkdir(target);
      const err = await restore(repo, id, { target }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(why);
      expect(await readdir(target)).toEqual([]);
      expect(await readdir(base)).toEqual(['target']);
    });
  }

  it('refuses to write through a symlink that already exists in the target', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await mkdir(join(src, 'sub'));
    await writeFile(join(src, 'sub', 'f.txt'), 'data');
    const { snapshotId } = await backup(repo, { root: src, asset });
    const base = await dir('trap');
    const outside = join(base, 'outside');
    const target = join(base, 'target');
    await mkdir(outside);
    await mkdir(target);
    await symlink(outside, join(target, 'sub'));
    const err = await restore(repo, snapshotId, { target }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/refusing to restore through the existing symlink/);
    expect(await readdir(outside)).toEqual([]);
  });
});

describe('damaged data', () => {
  async function setup() {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 2 });
    const { snapshotId } = await backup(repo, { root: src, asset });
    const tree = await repo.loadTree(await repo.loadSnapshot(snapshotId));
    const model = tree.find((e) => e.path === 'weights/model.safetensors');
    if (model?.type !== 'file') throw new Error('fixture lacks the model');
    const loc = repo.index.lookup(model.chunks[1]!)!;
    return { store, repo, snapshotId, packKey: keys.pack(loc.packId), loc };
  }

  it('a bit-flipped pack fails that file by name, restores the rest, and leaves no partial file', async () => {
    const { store, repo, snapshotId, packKey, loc } = await setup();
    const pack = repo.index.pack(loc.packId)!;
    store.corrupt(packKey, pack.headerBytes + 16 + loc.offset + 10);
    const target = await dir('dst');
    const err = await restore(repo, snapshotId, { target }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreIncompleteError);
    const failures = (err as RestoreIncompleteError).failures;
    expect(failures.map((f) => f.path)).toContain('weights/model.safetensors');
    expect(failures.find((f) => f.path === 'weights/model.safetensors')!.reason).toMatch(/auth|corrupt|tamper/i);
    expect(await readdir(join(target, 'weights'))).toEqual(['shards']);
    expect((await readdir(join(target, 'weights', 'shards'))).sort()).toEqual(['a.bin', 'b.bin']);
  });

  it('a truncated pack is reported as damage, not read as short data', async () => {
    const { store, repo, snapshotId, packKey } = await setup();
    const full = await store.get(packKey);
    store.rawPut(packKey, full.subarray(0, full.length - 70_000));
    const target = await dir('dst');
    const err = await restore(repo, snapshotId, { target }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RestoreIncompleteError);
    expect((err as RestoreIncompleteError).failures.length).toBeGreaterThan(0);
  });

  it('decrypting a damaged chunk raises an authentication error', async () => {
    const { store, repo, packKey, loc } = await setup();
    const pack = repo.index.pack(loc.packId)!;
    store.corrupt(packKey, pack.headerBytes + 16 + loc.offset + 1);
    await expect(repo.readPackRange(loc.packId, loc.offset, loc.length)).rejects.toBeInstanceOf(AgeAuthError);
  });
});
