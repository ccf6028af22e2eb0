/**
 * Storage faults on one stored object of an asset's snapshot: `corrupt-object`
 * overwrites it with random bytes of the same size, `delete-object` deletes
 * it — both through S3 with the credentials Lifeline has, as bit rot, a buggy
 * tool or an attacker with write access would. The object is one of the
 * snapshot's packs (preferably one no other snapshot of the asset uses, so
 * older snapshots stay good restore points), its manifest, or an index object
 * listing such a pack.
 *
 * Before anything changes, the original bytes and their SHA-256 are saved in
 * the fault's state folder; revert puts them back and checks the stored
 * object's SHA-256 (for packs and index objects that is also their name).
 * Details name the object kind, its key (hashes only) and the snapshot — never
 * file names.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveStorage } from '../../config/storage';
import { ObjectNotFoundError } from '../../engine/backend/object-store';
import type { S3ObjectStore } from '../../engine/backend/s3';
import { keys, type Repository } from '../../engine/repository';
import { TenantRepositories, assetConfig } from '../../tenancy/repositories';
import type { FaultContext, FaultInjector, InjectedFault, RevertedFault } from '../fault';
import type { FaultSpec } from '../scenario';
import { FaultNotApplicable, readFaultState, writeFaultState } from './state';

type ObjectFaultSpec = Extract<FaultSpec, { kind: 'corrupt-object' | 'delete-object' }>;
type ObjectKind = ObjectFaultSpec['target']['object'];

interface ObjectFaultState {
  faultId: string;
  kind: ObjectFaultSpec['kind'];
  /** saved: original bytes on disk, object not changed yet (or the change was interrupted); injected; reverted */
  phase: 'saved' | 'injected' | 'reverted';
  tenant: string;
  asset: string;
  snapshotId: string;
  objectKind: ObjectKind;
  /** key relative to the tenant's repository: data/<xx>/<packId>, index/<id>, snapshots/<id> */
  key: string;
  size: number;
  /** hex SHA-256 of the original bytes */
  sha256: string;
  /** other snapshots of the asset that use the object too (0 for a pack only this snapshot uses) */
  sharedWith: number;
  /** when the fault was (or is about to be) injected */
  injectedAt: string;
  revertedAt?: string;
}

const sha256Hex = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const originalFile = (stateDir: string) => join(stateDir, 'original.bin');

/** The packs holding a snapshot's file data. */
async function dataPacks(repo: Repository, snapshotId: string): Promise<Set<string>> {
  const tree = await repo.loadTree(await repo.loadSnapshot(snapshotId));
  const packs = new Set<string>();
  for (const e of tree) {
    if (e.type !== 'file') continue;
    for (const c of e.chunks) {
      const loc = repo.index.lookup(c);
      if (loc) packs.add(loc.packId);
    }
  }
  return packs;
}

async function pickObject(repo: Repository, asset: string, target: ObjectFaultSpec['target']): Promise<{ snapshotId: string; key: string; sharedWith: number }> {
  await repo.loadIndex();
  const snapshots = await repo.listSnapshots({ asset });
  if (snapshots.length === 0) throw new FaultNotApplicable(`asset ${asset} has no snapshot to damage; back it up first`);
  let snapshotId: string;
  if (target.snapshot === 'newest') snapshotId = snapshots[snapshots.length - 1]!.id;
  else {
    snapshotId = await repo.resolveSnapshotId(target.snapshot).catch((e: Error) => {
      throw new FaultNotApplicable(`target.snapshot: ${e.message}`);
    });
    if (!snapshots.some((s) => s.id === snapshotId)) throw new FaultNotApplicable(`target.snapshot: snapshot ${snapshotId.slice(0, 12)} is not a snapshot of asset ${asset}`);
  }
  if (target.object === 'manifest') return { snapshotId, key: keys.snapshot(snapshotId), sharedWith: 0 };

  const mine = await dataPacks(repo, snapshotId);
  if (mine.size === 0) throw new FaultNotApplicable(`snapshot ${snapshotId.slice(0, 12)} of asset ${asset} stores no file data; target its manifest instead (object: manifest)`);
  const usedBy = new Map<string, number>();
  for (const s of snapshots) {
    if (s.id === snapshotId) continue;
    for (const p of await dataPacks(repo, s.id)) if (mine.has(p)) usedBy.set(p, (usedBy.get(p) ?? 0) + 1);
  }
  // The least shared pack (ideally one only this snapshot uses), ties broken by id for a stable choice.
  const ranked = [...mine].sort((a, b) => (usedBy.get(a) ?? 0) - (usedBy.get(b) ?? 0) || (a < b ? -1 : 1));
  if (target.object === 'pack') return { snapshotId, key: keys.pack(ranked[0]!), sharedWith: usedBy.get(ranked[0]!) ?? 0 };

  // index: an index object listing one of the snapshot's packs (the least shared first)
  for (const pack of ranked) {
    for (const [indexId, packs] of repo.index.indexFiles()) {
      if (packs.includes(pack)) return { snapshotId, key: keys.index(indexId), sharedWith: usedBy.get(pack) ?? 0 };
    }
  }
  throw new FaultNotApplicable(`no index object lists a pack of snapshot ${snapshotId.slice(0, 12)} of asset ${asset}`);
}

function details(st: ObjectFaultState): Record<string, string | number | boolean> {
  return {
    asset: st.asset,
    tenant: st.tenant,
    snapshot: st.snapshotId,
    object: st.objectKind,
    key: st.key,
    bytes: st.size,
    sharedWithSnapshots: st.sharedWith,
  };
}

/**
 * On an Object Lock bucket a put or delete only stacks a version (or a delete
 * marker) on the locked original, and readers fall back to it (FORMAT.md,
 * "Object Lock and overwritten objects"): real damage also removes the older
 * versions, with the admin's governance bypass. Compliance-mode versions
 * cannot be removed: the fault does not apply there.
 */
async function removeOlderVersions(store: S3ObjectStore, key: string): Promise<void> {
  if (!(await store.objectLockEnabled())) return;
  for (const v of await store.listVersions(key)) {
    if (v.latest) continue;
    try {
      await store.deleteVersion(key, v.versionId, { bypassGovernance: true });
    } catch (err) {
      throw new FaultNotApplicable(`${key} is kept by Object Lock (${(err as Error).message}); a compliance-mode or non-bypassable lock cannot be damaged, which is the point of it`);
    }
  }
}

function objectFault(kind: ObjectFaultSpec['kind']): FaultInjector<ObjectFaultSpec> {
  const open = (ctx: FaultContext, tenant: string) => {
    // Direct to storage (never through a drill's proxy): the injector must reach the store to revert.
    const repos = new TenantRepositories(ctx.config, { ...resolveStorage(ctx.config), route: undefined });
    return { repos, repo: repos.repository(tenant), store: repos.store(tenant) };
  };

  return {
    kind,
    placement: () => ({ on: 'drill' }),

    async inject(ctx, spec, faultId): Promise<InjectedFault> {
      let st = readFaultState<ObjectFaultState>(ctx);
      if (st && st.faultId !== faultId) throw new FaultNotApplicable(`fault state ${ctx.stateDir} belongs to fault ${st.faultId}, not ${faultId}`);
      if (st?.phase === 'reverted') throw new FaultNotApplicable(`fault ${faultId} was already injected and reverted; a new injection needs a new fault id`);
      const tenant = assetConfig(ctx.config, spec.target.asset).tenant;
      const { store, repo } = open(ctx, tenant);
      if (!st) {
        const picked = await pickObject(await repo, spec.target.asset, spec.target);
        ctx.progress?.(`saving the original of ${spec.target.object} ${picked.key}`);
        const original = await store.get(picked.key);
        const sha256 = sha256Hex(original);
        const named = /^(data\/[0-9a-f]{2}|index)\/([0-9a-f]{64})$/.exec(picked.key)?.[2];
        if (named && named !== sha256) throw new FaultNotApplicable(`${picked.key} does not match its name already (damaged before the drill); pick another snapshot`);
        mkdirSync(ctx.stateDir, { recursive: true, mode: 0o700 });
        writeFileSync(originalFile(ctx.stateDir), original, { mode: 0o600 });
        st = {
          faultId,
          kind,
          phase: 'saved',
          tenant,
          asset: spec.target.asset,
          snapshotId: picked.snapshotId,
          objectKind: spec.target.object,
          key: picked.key,
          size: original.length,
          sha256,
          sharedWith: picked.sharedWith,
          injectedAt: new Date().toISOString(),
        };
        // Saved before the object changes: a crash from here on can still be reverted.
        writeFaultState(ctx, st);
      }
      if (st.phase === 'saved') {
        if (kind === 'corrupt-object') await store.put(st.key, randomBytes(st.size));
        else await store.delete(st.key);
        await removeOlderVersions(store, st.key);
        st = { ...st, phase: 'injected', injectedAt: new Date().toISOString() };
        writeFaultState(ctx, st);
        ctx.logger.info({ drill: ctx.drillId, faultId, kind, asset: st.asset, snapshot: st.snapshotId, object: st.objectKind }, 'fault injected: stored object damaged');
      }
      return { faultId, kind, injectedAt: st.injectedAt!, detail: details(st) };
    },

    async revert(ctx, _spec, faultId): Promise<RevertedFault> {
      const st = readFaultState<ObjectFaultState>(ctx);
      const now = () => new Date().toISOString();
      if (!st || st.faultId !== faultId) return { faultId, reverted: false, revertedAt: now(), detail: {} };
      if (st.phase === 'reverted') return { faultId, reverted: false, revertedAt: st.revertedAt!, detail: details(st) };
      const original = readFileSync(originalFile(ctx.stateDir));
      if (sha256Hex(original) !== st.sha256) throw new Error(`the saved original of ${st.key} in ${ctx.stateDir} is damaged (SHA-256 differs); cannot revert`);
      const { store } = open(ctx, st.tenant);
      await store.put(st.key, original);
      const back = await store.get(st.key);
      if (sha256Hex(back) !== st.sha256) throw new Error(`${st.key} still differs from its original after it was put back`);
      const done: ObjectFaultState = { ...st, phase: 'reverted', revertedAt: now() };
      writeFaultState(ctx, done);
      rmSync(originalFile(ctx.stateDir), { force: true });
      ctx.logger.info({ drill: ctx.drillId, faultId, kind, asset: st.asset, snapshot: st.snapshotId, object: st.objectKind }, 'fault reverted: stored object restored');
      return { faultId, reverted: true, revertedAt: done.revertedAt!, detail: { ...details(done), sha256Verified: true } };
    },

    async active(ctx, _spec, faultId): Promise<boolean> {
      const st = readFaultState<ObjectFaultState>(ctx);
      if (!st || st.faultId !== faultId || st.phase === 'reverted') return false;
      const { store } = open(ctx, st.tenant);
      try {
        return sha256Hex(await store.get(st.key)) !== st.sha256;
      } catch (e) {
        if (e instanceof ObjectNotFoundError) return true;
        throw e;
      }
    },
  };
}

// One implementation for both kinds; each export only ever sees specs of its own kind (the registry dispatches by kind).
export const corruptObjectFault = objectFault('corrupt-object') as unknown as FaultInjector<Extract<FaultSpec, { kind: 'corrupt-object' }>>;
export const deleteObjectFault = objectFault('delete-object') as unknown as FaultInjector<Extract<FaultSpec, { kind: 'delete-object' }>>;
