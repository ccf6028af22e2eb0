import { randomBytes } from 'node:crypto';
import { open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { addBatchStats, backup, backupBatch, beginBackup, commitBackup, emptyBatchStats, loadParentFiles, sizeItems, walkAsset } from '../../engine/archiver';
import { Lease } from '../../engine/leases';
import { checkSnapshots } from '../../engine/checker';
import { AgeNoIdentityMatchError } from '../../engine/crypto/errors';
import { Repository } from '../../engine/repository';
import { restore } from '../../engine/restorer';
import { describeTree, makeAsset, makeKeys, makeRepository, tempDir } from '../support/engine-fixtures';

const asset = { name: 'llama-ft', kind: 'model' as const, tenant: 'acme' };
const dirs: string[] = [];
const dir = async (label: string) => {
  const d = await tempDir(label);
  dirs.push(d);
  return d;
};
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('backup and restore (engine, in-memory store)', () => {
  let store: MemoryObjectStore;
  beforeEach(() => {
    store = new MemoryObjectStore();
  });

  it('restores a snapshot byte-identical, with modes, mtimes, empty files and folders and symlinks', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src);
    const res = await backup(repo, { root: src, asset, labels: { run: 'r1', step: '100' } });
    expect(res.snapshotId).toMatch(/^[0-9a-f]{64}$/);
    expect(res.stats.files).toBe(55);
    expect(res.stats.symlinks).toBe(1);
    expect(res.stats.newBlobs).toBeGreaterThan(40);

    const dst = await dir('dst');
    const r = await restore(repo, res.snapshotId, { target: dst });
    expect(r.files).toBe(55);
    expect(await describeTree(dst)).toEqual(await describeTree(src));

    // Packs, not one object per file: 50 small files share packs.
    const packs = [...store.keys()].filter((k) => k.startsWith('data/'));
    expect(packs.length).toBeLessThan(10);
    // Object names never contain plaintext hashes or file names.
    expect([...store.keys()].join('\n')).not.toMatch(/img-|weights|config\.json/);
  });

  it('a second backup of an unchanged asset stores nothing new and reads nothing', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src);
    const first = await backup(repo, { root: src, asset });
    const objectsBefore = store.keys().length;
    const second = await backup(repo, { root: src, asset });
    expect(second.parent).toBe(first.snapshotId);
    expect(second.stats.newBytes).toBe(0);
    expect(second.stats.readBytes).toBe(0);
    // Only the new manifest appears (the lease is removed again).
    expect(store.keys().length).toBe(objectsBefore + 1);
  });

  it('an edit in the middle of a large file re-uploads only the chunks around it', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    const big = join(src, 'ckpt.bin');
    await writeFile(big, randomBytes(8 * 1024 * 1024));
    await backup(repo, { root: src, asset });
    const fh = await open(big, 'r+');
    await fh.write(randomBytes(64 * 1024), 0, 64 * 1024, 4 * 1024 * 1024);
    await fh.close();
    const second = await backup(repo, { root: src, asset });
    expect(second.stats.readBytes).toBe(8 * 1024 * 1024);
    expect(second.stats.newBytes).toBeGreaterThan(0);
    expect(second.stats.newBytes).toBeLessThan(0.1 * 8 * 1024 * 1024);
    const dst = await dir('dst');
    await restore(repo, second.snapshotId, { target: dst });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('restores a subset of paths', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src);
    const { snapshotId } = await backup(repo, { root: src, asset });
    const dst = await dir('dst');
    await restore(repo, snapshotId, { target: dst, include: ['weights/shards'] });
    expect(await readdir(dst)).toEqual(['weights']);
    expect((await readdir(join(dst, 'weights', 'shards'))).sort()).toEqual(['a.bin', 'b.bin']);
    await expect(restore(repo, snapshotId, { target: dst, include: ['nope'] })).rejects.toThrow(/not in the snapshot: "nope"/);
  });

  it('a repository opened with another tenant identity cannot read anything', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 2 });
    await backup(repo, { root: src, asset });
    const other = await makeKeys();
    await expect(Repository.open(store, { identities: other.identities })).rejects.toBeInstanceOf(AgeNoIdentityMatchError);
  });

  it('works with post-quantum hybrid recipients', async () => {
    const { repo } = await makeRepository(store, { kind: 'hybrid' });
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 5 });
    const { snapshotId } = await backup(repo, { root: src, asset });
    const dst = await dir('dst');
    await restore(repo, snapshotId, { target: dst });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('shallow and deep checks pass on an intact repository and name the file when a pack is damaged', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 3 });
    const { snapshotId } = await backup(repo, { root: src, asset });
    const ok = await checkSnapshots(repo, { snapshotIds: [snapshotId], mode: 'deep' });
    expect(ok.problems).toEqual([]);
    expect(ok.snapshots).toEqual([{ id: snapshotId, ok: true }]);

    // Flip one byte in the pack holding the large file's first chunk.
    const tree = await repo.loadTree(await repo.loadSnapshot(snapshotId));
    const model = tree.find((e) => e.path === 'weights/model.safetensors');
    if (model?.type !== 'file') throw new Error('fixture lacks the model file');
    const packKey = `data/${repo.index.lookup(model.chunks[0]!)!.packId.slice(0, 2)}/${repo.index.lookup(model.chunks[0]!)!.packId}`;
    store.corrupt(packKey, 5000);

    const deep = await checkSnapshots(repo, { snapshotIds: [snapshotId], mode: 'deep' });
    expect(deep.snapshots).toEqual([{ id: snapshotId, ok: false }]);
    expect(deep.problems.some((p) => p.path === 'weights/model.safetensors' && p.object === packKey)).toBe(true);
  });

  it('a backup split into batches across "processes" commits one snapshot equal to the asset', async () => {
    const { repo, keys } = await makeRepository(store);
    const src = await dir('src');
    await makeAsset(src, { smallFiles: 30 });
    const items = await walkAsset(src, []);
    await sizeItems(items);
    const { plan, lease } = await beginBackup(repo, { asset, labels: { step: '7' } });
    lease.detach();
    let tree: string[] = [];
    let stats = emptyBatchStats();
    for (const slice of [items.slice(0, 20), items.slice(20)]) {
      // Each batch opens the repository afresh, like a retried or rescheduled activity.
      const r = await Repository.open(store, { identities: keys.identities, signingKey: keys.signingKey });
      const l = await Lease.resume(store, plan.backupId);
      const b = await backupBatch(r, { items: slice, parentFiles: await loadParentFiles(r, plan.parentId) });
      l.detach();
      tree = tree.concat(b.tree);
      stats = addBatchStats(stats, b.stats);
    }
    const r = await Repository.open(store, { identities: keys.identities, signingKey: keys.signingKey });
    const res = await commitBackup(r, plan, await Lease.resume(store, plan.backupId), { tree, stats, durationMs: 1 });
    expect(tree.length).toBe(2);
    expect(res.stats.files).toBe(35);
    expect(store.keys().filter((k) => k.startsWith('locks/'))).toEqual([]);
    const dst = await dir('dst');
    await restore(r, res.snapshotId, { target: dst });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('refuses to resume a lapsed lease, so a stalled backup cannot commit', async () => {
    const { repo } = await makeRepository(store);
    const { plan, lease } = await beginBackup(repo, { asset });
    lease.detach();
    await expect(Lease.resume(store, plan.backupId, { ttlMs: -1 })).rejects.toThrow(/lapsed/);
  });

  it('backs up and restores an empty folder (one empty tree blob)', async () => {
    const { repo } = await makeRepository(store);
    const src = await dir('empty');
    const res = await backup(repo, { root: src, asset });
    expect(res.stats.files).toBe(0);
    const m = await repo.loadSnapshot(res.snapshotId);
    expect(m.body.tree).toHaveLength(1);
    const dst = await dir('dst');
    await restore(repo, res.snapshotId, { target: dst });
    expect(await readdir(dst)).toEqual([]);
  });
});
