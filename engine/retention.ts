/**
 * Retention: which snapshots a keep-policy keeps (pure), forgetting the rest,
 * and collecting packs no snapshot references — safely while backups run.
 *
 * Collection is two-phase (FORMAT.md, "Garbage collection"):
 *   mark:  packs referenced by no snapshot, older than the grace period and
 *          older than every live backup lease, are named in a tombstone.
 *          Backups that start afterwards treat them as absent.
 *   sweep: a tombstone older than the grace period, with no live lease that
 *          started before it, has its packs deleted — after re-checking every
 *          snapshot, and after writing an index without those packs.
 * A backup that started before a tombstone and reused blobs from its packs
 * copies those blobs into a new pack before committing (archiver).
 */
import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { Repository } from './repository';
import { keys, type Tombstone } from './repository';
import { Lease, liveLeases, LEASE_TTL_MS } from './leases';

export interface KeepPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
}

export interface RetentionCandidate {
  id: string;
  time: string;
}

export interface RetentionDecision {
  keep: Array<{ id: string; reasons: string[] }>;
  forget: string[];
}

/**
 * restic-style selection: newest first, keep the newest snapshot of each of
 * the last N hours/days/weeks/months, plus the last N snapshots, plus every
 * protected snapshot (under hold, newest verified, …). An empty policy keeps all.
 */
export function applyKeepPolicy(snapshots: RetentionCandidate[], policy: KeepPolicy, protect: ReadonlyMap<string, string> = new Map()): RetentionDecision {
  const sorted = [...snapshots].sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  const empty = !policy.keepLast && !policy.keepHourly && !policy.keepDaily && !policy.keepWeekly && !policy.keepMonthly;
  const reasons = new Map<string, string[]>();
  const add = (id: string, why: string) => {
    const r = reasons.get(id) ?? [];
    r.push(why);
    reasons.set(id, r);
  };
  const bucket = (name: string, n: number | undefined, keyOf: (d: Date) => string) => {
    if (!n) return;
    const seen = new Set<string>();
    for (const s of sorted) {
      if (seen.size >= n) break;
      const k = keyOf(new Date(s.time));
      if (seen.has(k)) continue;
      seen.add(k);
      add(s.id, `${name} ${k}`);
    }
  };
  sorted.slice(0, policy.keepLast ?? 0).forEach((s, i) => add(s.id, `last ${i + 1}`));
  bucket('hourly', policy.keepHourly, (d) => d.toISOString().slice(0, 13));
  bucket('daily', policy.keepDaily, (d) => d.toISOString().slice(0, 10));
  bucket('weekly', policy.keepWeekly, isoWeek);
  bucket('monthly', policy.keepMonthly, (d) => d.toISOString().slice(0, 7));
  for (const s of sorted) {
    const why = protect.get(s.id);
    if (why) add(s.id, why);
    if (empty) add(s.id, 'no keep policy');
  }
  return {
    keep: sorted.filter((s) => reasons.has(s.id)).map((s) => ({ id: s.id, reasons: reasons.get(s.id)! })),
    forget: sorted.filter((s) => !reasons.has(s.id)).map((s) => s.id),
  };
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = new Date(Date.UTC(t.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((t.getTime() - yearStart.getTime()) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** Deletes snapshot manifests. Their data stays until garbage collection. */
export async function forgetSnapshots(repo: Repository, ids: string[]): Promise<void> {
  for (const id of ids) await repo.store.delete(keys.snapshot(id));
}

export interface GcOptions {
  /** Packs younger than this are never condemned, and tombstones younger than this are not swept. */
  graceMs: number;
  leaseTtlMs?: number;
  now?: () => number;
  signal?: AbortSignal;
}

export interface GcReport {
  /** packs named in the new tombstone (phase 1) */
  condemned: number;
  /** packs deleted from tombstones old enough (phase 2) */
  deleted: number;
  deletedBytes: number;
  /** condemned packs found referenced again and kept */
  rescued: number;
  /** tombstones left for a later run, and why */
  deferred: Array<{ tombstone: string; reason: string }>;
  /** packs kept because some of their blobs are still referenced */
  partiallyUsedPacks: number;
}

/** Blob ids referenced by every snapshot in the repository (trees and data). */
async function referencedBlobs(repo: Repository): Promise<Set<string>> {
  const used = new Set<string>();
  for (const id of await repo.snapshotIds()) {
    const m = await repo.loadSnapshot(id);
    for (const t of m.body.tree) used.add(t);
    for (const e of await repo.loadTree(m)) if (e.type === 'file') for (const c of e.chunks) used.add(c);
  }
  return used;
}

/** Lease purposes of key operations rewriting a repository's objects (tenancy/key-rotation.ts). */
export const KEY_REVOCATION_LEASE = 'key-revocation';
export const KEY_ROTATION_LEASE = 'key-rotation';
/** Lease purpose of garbage collection, so a key revocation waits for a collection that started first. */
export const GC_LEASE = 'garbage-collection';

export async function collectGarbage(repo: Repository, opts: GcOptions): Promise<GcReport> {
  // Both collection and a key revocation rewrite index objects: they never run at once. The one that
  // started later gives way (collection defers; a revocation waits for older leases).
  const own = await Lease.acquire(repo.store, GC_LEASE);
  try {
    return await collect(repo, opts, own.record.id);
  } finally {
    await own.release();
  }
}

async function collect(repo: Repository, opts: GcOptions, ownLease: string): Promise<GcReport> {
  const now = opts.now ?? Date.now;
  const ttl = opts.leaseTtlMs ?? LEASE_TTL_MS;
  const report: GcReport = { condemned: 0, deleted: 0, deletedBytes: 0, rescued: 0, deferred: [], partiallyUsedPacks: 0 };

  const live = (await liveLeases(repo.store, ttl, now())).filter((l) => l.id !== ownLease);
  const rekeying = live.find((l) => l.purpose === KEY_REVOCATION_LEASE || l.purpose === KEY_ROTATION_LEASE);
  if (rekeying) {
    report.deferred.push({ tombstone: '*', reason: `a ${rekeying.purpose.replace('-', ' ')} (lease ${rekeying.id}) is re-encrypting this repository; collection runs next time` });
    return report;
  }

  // ---- phase 2 first: sweep old tombstones (so one run makes progress on both)
  await repo.loadIndex();
  const tombstones: Array<{ key: string; t: Tombstone }> = [];
  for await (const obj of repo.store.list('tombstones/')) tombstones.push({ key: obj.key, t: await repo.readTombstone(obj.key) });

  let used: Set<string> | undefined;
  for (const { key, t } of tombstones) {
    const created = Date.parse(t.createdAt);
    if (now() - created < opts.graceMs) {
      report.deferred.push({ tombstone: key, reason: 'younger than the grace period' });
      continue;
    }
    const blocking = live.filter((l) => Date.parse(l.startedAt) <= created);
    if (blocking.length > 0) {
      report.deferred.push({ tombstone: key, reason: `backup ${blocking[0]!.id} (${blocking[0]!.purpose}) started before it and is still running` });
      continue;
    }
    used ??= await referencedBlobs(repo);
    await sweep(repo, key, t, used, report);
  }

  // ---- phase 1: mark packs no snapshot references
  used ??= await referencedBlobs(repo);
  const oldestLease = Math.min(...live.map((l) => Date.parse(l.startedAt)), Infinity);
  const cutoff = Math.min(now() - opts.graceMs, oldestLease);
  const packUse = new Map<string, { used: number; total: number }>();
  for (const [blobId, loc] of repo.index.blobEntries()) {
    const u = packUse.get(loc.packId) ?? { used: 0, total: 0 };
    u.total++;
    if (used.has(blobId)) u.used++;
    packUse.set(loc.packId, u);
  }
  const candidates: string[] = [];
  for (const packId of repo.index.packIds()) {
    const u = packUse.get(packId);
    if (u && u.used > 0) {
      if (u.used < u.total) report.partiallyUsedPacks++;
      continue;
    }
    candidates.push(packId);
  }
  // Only packs older than the cutoff: a running backup's fresh packs are not yet referenced.
  const condemned: string[] = [];
  const limit = pLimit(8);
  await Promise.all(
    candidates.map((packId) =>
      limit(async () => {
        const head = await repo.store.head(keys.pack(packId));
        if (head && head.lastModified.getTime() < cutoff) condemned.push(packId);
      }),
    ),
  );
  if (condemned.length > 0) {
    const t: Tombstone = { format: 'lifeline-tombstone', createdAt: new Date(now()).toISOString(), packs: condemned.sort() };
    const id = `${t.createdAt.replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}`;
    await repo.store.put(keys.tombstone(id), Buffer.from(JSON.stringify(t)), { ifNoneMatch: true, contentType: 'application/json' });
    report.condemned = condemned.length;
  }
  return report;
}

async function sweep(repo: Repository, key: string, t: Tombstone, used: Set<string>, report: GcReport): Promise<void> {
  // Rescue: a pack holding any blob that some snapshot now references is kept.
  const condemnedNow = new Set(t.packs);
  const blobsByPack = new Map<string, string[]>();
  for (const [blobId, loc] of repo.condemnedBlobEntries()) {
    if (!condemnedNow.has(loc.packId)) continue;
    const list = blobsByPack.get(loc.packId) ?? [];
    list.push(blobId);
    blobsByPack.set(loc.packId, list);
  }
  // Rescue only what is referenced and has no other, live copy (a backup may have stored one).
  const toDelete = t.packs.filter((p) => !(blobsByPack.get(p) ?? []).some((b) => used.has(b) && !repo.index.has(b)));
  report.rescued += t.packs.length - toDelete.length;
  const deleting = new Set(toDelete);

  // 1. A fresh index without the deleted packs, 2. drop the index objects it replaces,
  // 3. delete the packs, 4. drop the tombstone. Readers in between see the packs condemned.
  await repo.rewriteIndexWithout(deleting);
  for (const packId of toDelete) {
    const info = repo.condemnedPack(packId);
    await repo.store.delete(keys.pack(packId));
    report.deleted++;
    report.deletedBytes += info?.ciphertextBytes ?? 0;
  }
  // Rescued packs stay listed in their (kept or rewritten) index and become usable once the tombstone is gone.
  await repo.store.delete(key);
}
