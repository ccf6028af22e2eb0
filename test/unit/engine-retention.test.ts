import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { MemoryObjectStore } from '../../engine/backend/memory';
import { checkSnapshots } from '../../engine/checker';
import { applyKeepPolicy, collectGarbage, forgetSnapshots } from '../../engine/retention';
import { restore } from '../../engine/restorer';
import { describeTree, makeRepository, tempDir } from '../support/engine-fixtures';
import { Repository } from '../../engine/repository';

const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});
const dir = async (l: string) => {
  const d = await tempDir(l);
  cleanup.push(d);
  return d;
};
const asset = { name: 'ckpt', kind: 'checkpoint' as const, tenant: 'acme' };

describe('keep policy', () => {
  const snaps = [
    { id: 'a', time: '2026-01-01T10:00:00Z' },
    { id: 'b', time: '2026-01-01T11:30:00Z' },
    { id: 'c', time: '2026-01-01T11:45:00Z' },
    { id: 'd', time: '2026-01-02T09:00:00Z' },
    { id: 'e', time: '2026-01-09T09:00:00Z' },
  ];

  it('keep-last 2 keeps the two newest', () => {
    const d = applyKeepPolicy(snaps, { keepLast: 2 });
    expect(d.keep.map((k) => k.id)).toEqual(['e', 'd']);
    expect(d.forget.sort()).toEqual(['a', 'b', 'c']);
  });

  it('keeps the newest of each day, hour and week', () => {
    expect(applyKeepPolicy(snaps, { keepDaily: 3 }).keep.map((k) => k.id)).toEqual(['e', 'd', 'c']);
    expect(applyKeepPolicy(snaps, { keepHourly: 10 }).keep.map((k) => k.id)).toEqual(['e', 'd', 'c', 'a']);
    expect(applyKeepPolicy(snaps, { keepWeekly: 2 }).keep.map((k) => k.id)).toEqual(['e', 'd']);
    expect(applyKeepPolicy(snaps, { keepMonthly: 1 }).keep.map((k) => k.id)).toEqual(['e']);
  });

  it('never forgets a protected snapshot, and says why it is kept', () => {
    const d = applyKeepPolicy(snaps, { keepLast: 1 }, new Map([['a', 'legal hold']]));
    expect(d.keep).toEqual([
      { id: 'e', reasons: ['last 1'] },
      { id: 'a', reasons: ['legal hold'] },
    ]);
  });

  it('an empty policy keeps everything', () => {
    expect(applyKeepPolicy(snaps, {}).forget).toEqual([]);
  });
});

describe('garbage collection', () => {
  it('keep-last 2 over 5 snapshots: collects the rest, the kept ones still restore and check clean', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      // Each step rewrites the checkpoint completely: nothing is shared between snapshots.
      await writeFile(join(src, 'step.bin'), randomBytes(700_000));
      ids.push((await backup(repo, { root: src, asset, labels: { step: String(i) } })).snapshotId);
      await new Promise((r) => setTimeout(r, 5));
    }
    const dataBefore = store.keys().filter((k) => k.startsWith('data/')).length;
    const decision = applyKeepPolicy(await repo.listSnapshots({ asset: 'ckpt' }), { keepLast: 2 });
    expect(decision.keep.map((k) => k.id)).toEqual([ids[4], ids[3]]);
    await forgetSnapshots(repo, decision.forget);

    const mark = await collectGarbage(repo, { graceMs: 0 });
    expect(mark.condemned).toBeGreaterThan(0);
    expect(mark.deleted).toBe(0);
    const sweep = await collectGarbage(repo, { graceMs: 0 });
    expect(sweep.deleted).toBe(mark.condemned);
    expect(store.keys().filter((k) => k.startsWith('tombstones/'))).toEqual([]);
    expect(store.keys().filter((k) => k.startsWith('data/')).length).toBeLessThan(dataBefore);

    const check = await checkSnapshots(repo, { snapshotIds: await repo.snapshotIds(), mode: 'deep' });
    expect(check.problems).toEqual([]);
    expect((await repo.snapshotIds()).sort()).toEqual([ids[3], ids[4]].sort());
    const dst = await dir('dst');
    await restore(repo, ids[4]!, { target: dst });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('respects the grace period: young tombstones are not swept', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await writeFile(join(src, 'a.bin'), randomBytes(100_000));
    const { snapshotId } = await backup(repo, { root: src, asset });
    await forgetSnapshots(repo, [snapshotId]);
    let now = Date.now() + 2 * 3600_000;
    const mark = await collectGarbage(repo, { graceMs: 3600_000, now: () => now });
    expect(mark.condemned).toBeGreaterThan(0);
    now += 60_000;
    const early = await collectGarbage(repo, { graceMs: 3600_000, now: () => now });
    expect(early.deleted).toBe(0);
    expect(early.deferred[0]!.reason).toMatch(/grace period/);
    now += 3600_000;
    const late = await collectGarbage(repo, { graceMs: 3600_000, now: () => now });
    expect(late.deleted).toBe(mark.condemned);
  });

  it('a backup running during collection, reusing condemned data, still restores afterwards', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await mkdir(join(src, 'd'));
    await writeFile(join(src, 'd', 'shared.bin'), randomBytes(900_000));
    const old = await backup(repo, { root: src, asset });
    await forgetSnapshots(repo, [old.snapshotId]);

    // The new backup reuses shared.bin's blobs (still indexed); while it runs,
    // collection condemns their packs. Without care, the sweep would delete data
    // the new snapshot references.
    let marked = 0;
    const running = await backup(repo, {
      root: src,
      asset,
      parent: null,
      hooks: {
        afterRead: async () => {
          marked = (await collectGarbage(repo, { graceMs: 0 })).condemned;
        },
      },
    });
    expect(marked).toBeGreaterThan(0);
    const sweep = await collectGarbage(repo, { graceMs: 0 });
    expect(sweep.deleted).toBe(marked);

    const check = await checkSnapshots(repo, { snapshotIds: [running.snapshotId], mode: 'deep' });
    expect(check.problems).toEqual([]);
    const dst = await dir('dst');
    await restore(repo, running.snapshotId, { target: dst });
    expect(await describeTree(dst)).toEqual(await describeTree(src));
  });

  it('does not sweep while a backup that started before the tombstone is alive', async () => {
    const store = new MemoryObjectStore();
    const { repo } = await makeRepository(store);
    const src = await dir('src');
    await writeFile(join(src, 'a.bin'), randomBytes(300_000));
    const { snapshotId } = await backup(repo, { root: src, asset });
    await forgetSnapshots(repo, [snapshotId]);
    let deferred = '';
    await backup(repo, {
      root: src,
      asset,
      parent: null,
      hooks: {
        afterRead: async () => {
          await collectGarbage(repo, { graceMs: 0 }); // mark
          const second = await collectGarbage(repo, { graceMs: 0 }); // try to sweep
          deferred = second.deferred[0]?.reason ?? '';
          expect(second.deleted).toBe(0);
        },
      },
    });
    expect(deferred).toMatch(/started before it and is still running/);
  });

  it('a long-lived repository object stops reusing packs that another process collected', async () => {
    const store = new MemoryObjectStore();
    const { repo, keys } = await makeRepository(store);
    const src = await dir('src');
    await writeFile(join(src, 'a.bin'), randomBytes(400_000));
    const first = await backup(repo, { root: src, asset });
    // Another process (say, the retention worker) forgets the snapshot and collects its data.
    const other = await Repository.open(store, { identities: keys.identities, signingKey: keys.signingKey, cacheRoot: null });
    await forgetSnapshots(other, [first.snapshotId]);
    await collectGarbage(other, { graceMs: 0 });
    const swept = await collectGarbage(other, { graceMs: 0 });
    expect(swept.deleted).toBeGreaterThan(0);
    // The first object still has the old index in memory; the next backup must not reference the deleted packs.
    const again = await backup(repo, { root: src, asset, parent: null });
    expect(again.stats.newBytes).toBeGreaterThanOrEqual(400_000);
    const check = await checkSnapshots(repo, { snapshotIds: [again.snapshotId], mode: 'deep' });
    expect(check.problems).toEqual([]);
  });
});
