import { appendFile, chmod, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ResolvedAsset } from '../../backups/asset';
import { changedSince, isTemporary, markerState, newerThanMarker, planBackupBatches, planBatches, planSlices, scanEntries, ScanStore, type Scan } from '../../backups/scan';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function temp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'lifeline-scan-'));
  dirs.push(d);
  return d;
}
const asset = (root: string, checkpoint?: ResolvedAsset['checkpoint']): ResolvedAsset => ({ name: 'a', node: 'n', tenant: 't', kind: checkpoint ? 'checkpoint' : 'dataset', root, labels: {}, checkpoint });
const file = (size: number) => ({ kind: 'file', size });

describe('batches', () => {
  it('cuts at the entry limit and at the byte limit; a file larger than the limit gets a batch of its own', () => {
    expect(planBatches([file(1), file(1), file(1), file(1), file(1)], { maxEntries: 2, maxBytes: 100 })).toEqual([[0, 2], [2, 4], [4, 5]]);
    expect(planBatches([file(60), file(60), file(500), file(10), { kind: 'dir', size: 0 }], { maxEntries: 100, maxBytes: 100 })).toEqual([[0, 1], [1, 2], [2, 3], [3, 5]]);
    expect(planBatches([], { maxEntries: 10, maxBytes: 10 })).toEqual([]);
  });

  it('a backup always has at least one batch (an empty asset still gets its empty tree)', () => {
    expect(planBackupBatches([], { maxEntries: 10, maxBytes: 10 })).toEqual([[0, 0]]);
  });

  it('slices a batch by bytes only', () => {
    expect(planSlices([file(300), file(300), file(300)], 512)).toEqual([[0, 1], [1, 2], [2, 3]]);
    expect(planSlices(Array.from({ length: 7000 }, () => file(10)), 1e9)).toEqual([[0, 7000]]);
  });
});

describe('checkpoint rules', () => {
  const pattern = /^\.|\.tmp$|\.partial$/;
  it('a temporary name anywhere in the path hides the entry', () => {
    expect(isTemporary('step-2.tmp', pattern)).toBe(true);
    expect(isTemporary('step-2.tmp/shard-0.bin', pattern)).toBe(true);
    expect(isTemporary('runs/.writing/x', pattern)).toBe(true);
    expect(isTemporary('latest.json.partial', pattern)).toBe(true);
    expect(isTemporary('step-2/shard.tmpl', pattern)).toBe(false);
    expect(isTemporary('anything.tmp', undefined)).toBe(false);
  });

  it('scan leaves temporary entries out and records identities', async () => {
    const root = await temp();
    await mkdir(join(root, 'step-1'));
    await writeFile(join(root, 'step-1', 'w.bin'), 'abc');
    await mkdir(join(root, 'step-2.tmp'));
    await writeFile(join(root, 'step-2.tmp', 'w.bin'), 'partial');
    await writeFile(join(root, 'latest.partial'), 'x');
    const { items, problems } = await scanEntries(asset(root, { completion: 'rename', marker: 'COMPLETE', temporary: pattern }));
    expect(items.map((i) => i.rel)).toEqual(['step-1', 'step-1/w.bin']);
    expect(problems.excluded).toBe(3);
    expect(items[1]).toMatchObject({ kind: 'file', size: 3 });
    expect(items[1]!.mtimeNs).toMatch(/^\d+$/);
  });

  it('marker mode: ready only with the marker; files newer than the marker are found', async () => {
    const root = await temp();
    const a = asset(root, { completion: 'marker', marker: 'COMPLETE', temporary: pattern });
    await writeFile(join(root, 'w.bin'), 'abc');
    expect(await markerState(a)).toMatchObject({ ready: false, reason: expect.stringContaining('does not exist yet') });
    await writeFile(join(root, 'COMPLETE'), '');
    await utimes(join(root, 'COMPLETE'), new Date('2030-01-01'), new Date('2030-01-01'));
    const state = await markerState(a);
    expect(state.ready).toBe(true);
    const { items } = await scanEntries(a);
    expect(newerThanMarker(items, (state as { marker: NonNullable<Scan['marker']> }).marker, 'COMPLETE')).toEqual([]);
    await utimes(join(root, 'w.bin'), new Date('2031-01-01'), new Date('2031-01-01'));
    const again = await scanEntries(a);
    expect(newerThanMarker(again.items, (state as { marker: NonNullable<Scan['marker']> }).marker, 'COMPLETE').map((i) => i.rel)).toEqual(['w.bin']);
  });

  it('files the node agent cannot read are reported by the scan, not midway through the backup', async () => {
    if (process.getuid?.() === 0) {
      // root reads everything: check the other half (nothing reported) instead of skipping.
      const root = await temp();
      await writeFile(join(root, 'x'), 'x', { mode: 0o000 });
      expect((await scanEntries(asset(root))).problems.unreadable).toEqual([]);
      return;
    }
    const root = await temp();
    await writeFile(join(root, 'locked.bin'), 'x');
    await chmod(join(root, 'locked.bin'), 0o000);
    expect((await scanEntries(asset(root))).problems.unreadable).toEqual([{ path: 'locked.bin', code: 'EACCES' }]);
  });
});

describe('changes since the scan', () => {
  it('finds modified, resized, replaced and removed files; folders may change', async () => {
    const root = await temp();
    for (const n of ['a', 'b', 'c', 'd', 'e']) await writeFile(join(root, n), n);
    await mkdir(join(root, 'sub'));
    const { items, rootIsFile } = await scanEntries(asset(root));
    const scan: Scan = { asset: 'a', backupId: 'b1', root, rootIsFile, createdAt: '', marker: null, items, batches: [] };
    expect(await changedSince(scan)).toEqual([]);
    await appendFile(join(root, 'a'), 'more');
    await utimes(join(root, 'b'), new Date('2001-01-01'), new Date('2001-01-01'));
    await rm(join(root, 'c'));
    await writeFile(join(root, 'd.new'), 'd');
    await rm(join(root, 'd'));
    await (await import('node:fs/promises')).rename(join(root, 'd.new'), join(root, 'd'));
    await writeFile(join(root, 'sub', 'new-file'), 'x'); // a new entry changes the folder only
    expect(await changedSince(scan)).toEqual([
      { path: 'a', what: 'size changed' },
      { path: 'b', what: 'modified' },
      { path: 'c', what: 'removed' },
      { path: 'd', what: 'replaced' },
    ]);
  });
});

describe('scan work files', () => {
  it('round-trips a scan, returns null for an unknown backup, and prunes old files', async () => {
    const dir = await temp();
    const store = new ScanStore(join(dir, 'work'));
    const scan: Scan = {
      asset: 'a',
      backupId: 'abc123',
      root: '/r',
      rootIsFile: false,
      createdAt: 'now',
      marker: null,
      items: [{ rel: 'x', kind: 'file', size: 1, mtimeNs: '1', ctimeNs: '2', ino: '3' }],
      batches: [[0, 1]],
    };
    await store.write(scan);
    expect(await new ScanStore(join(dir, 'work')).read('abc123')).toEqual(scan);
    expect(await store.read('other')).toBeNull();
    expect(() => store.path('../escape')).toThrow(/invalid backup id/);
    expect(await store.prune(60_000)).toBe(0);
    const old = new Date(Date.now() - 3600_000);
    await utimes(store.path('abc123'), old, old);
    expect(await store.prune(60_000)).toBe(1);
    expect(await new ScanStore(join(dir, 'work')).read('abc123')).toBeNull();
  });
});
