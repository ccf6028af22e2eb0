/**
 * Verification of stored snapshots.
 *
 * shallow: every manifest and tree authenticates, every referenced blob is
 *          indexed, and every pack it lives in exists with the expected size
 *          and checksum (HEAD requests only; no data is downloaded).
 * deep:    additionally downloads a sample (or all) of the referenced packs,
 *          checks each pack's SHA-256 against its name, decrypts and
 *          authenticates every age chunk and checks each blob's keyed id.
 *
 * Problems are reported by snapshot, file and object, never as a bare count.
 */
import { createHash, randomInt } from 'node:crypto';
import pLimit from 'p-limit';
import { AgePayloadReader, parseAgeHeaderLength } from './crypto/age';
import { sha256Hex } from './manifest';
import { keys, type Repository } from './repository';

export type CheckMode = 'shallow' | 'deep';

export interface CheckProblem {
  snapshotId: string;
  /** file inside the snapshot, when the problem affects one */
  path?: string;
  /** storage key of the object that is missing or corrupt */
  object: string;
  problem: string;
}

export interface CheckReport {
  mode: CheckMode;
  samplePercent: number;
  snapshots: Array<{ id: string; ok: boolean }>;
  packsChecked: number;
  bytesDownloaded: number;
  problems: CheckProblem[];
  durationMs: number;
}

export interface CheckOptions {
  snapshotIds: string[];
  mode: CheckMode;
  /** deep only: percentage of referenced packs to download (default 100) */
  samplePercent?: number;
  concurrency?: number;
  onProgress?: (p: { packsDone: number; packsTotal: number }) => void;
  signal?: AbortSignal;
}

interface Ref {
  snapshotId: string;
  path: string;
}

/** Keep attribution bounded: a blob shared by thousands of files names a few. */
const MAX_REFS_PER_BLOB = 8;

export async function checkSnapshots(repo: Repository, opts: CheckOptions): Promise<CheckReport> {
  const t0 = performance.now();
  const problems: CheckProblem[] = [];
  const refs = new Map<string, Ref[]>();
  const snapshotsOk = new Map<string, boolean>();

  await repo.loadIndex();
  for (const id of opts.snapshotIds) {
    opts.signal?.throwIfAborted();
    snapshotsOk.set(id, true);
    try {
      const manifest = await repo.loadSnapshot(id);
      const tree = await repo.loadTree(manifest);
      for (const e of tree) {
        if (e.type !== 'file') continue;
        for (const c of e.chunks) {
          let list = refs.get(c);
          if (!list) refs.set(c, (list = []));
          if (list.length < MAX_REFS_PER_BLOB) list.push({ snapshotId: id, path: e.path });
        }
      }
    } catch (err) {
      problems.push({ snapshotId: id, object: keys.snapshot(id), problem: messageOf(err) });
    }
  }

  // Which packs hold the referenced blobs; a blob missing from the index is missing data.
  const packBlobs = new Map<string, string[]>();
  for (const blobId of refs.keys()) {
    const loc = repo.index.lookup(blobId);
    if (!loc) {
      for (const r of refs.get(blobId)!) problems.push({ ...r, object: `blob ${blobId}`, problem: 'blob is not in any index (missing data)' });
      continue;
    }
    let list = packBlobs.get(loc.packId);
    if (!list) packBlobs.set(loc.packId, (list = []));
    list.push(blobId);
  }
  // Tree blobs live in packs too; loadTree above already authenticated them.

  const packIds = [...packBlobs.keys()];
  const reportPack = (packId: string, problem: string, blobIds = packBlobs.get(packId) ?? []) => {
    const seen = new Set<string>();
    for (const b of blobIds) {
      for (const r of refs.get(b) ?? []) {
        const k = `${r.snapshotId}\0${r.path}`;
        if (seen.has(k)) continue;
        seen.add(k);
        problems.push({ ...r, object: keys.pack(packId), problem });
      }
    }
  };

  const limit = pLimit(opts.concurrency ?? 8);
  let done = 0;
  const tick = () => opts.onProgress?.({ packsDone: ++done, packsTotal: packIds.length });
  const shallowFailed = new Set<string>();
  await Promise.all(
    packIds.map((packId) =>
      limit(async () => {
        opts.signal?.throwIfAborted();
        const info = repo.index.pack(packId)!;
        const head = await repo.store.head(keys.pack(packId));
        const problem = !head
          ? 'pack object is missing'
          : head.size !== info.ciphertextBytes
            ? `pack object has ${head.size} bytes, expected ${info.ciphertextBytes}`
            : head.sha256 !== undefined && Buffer.from(head.sha256, 'base64').toString('hex') !== packId
              ? 'pack checksum reported by storage does not match its name (modified)'
              : null;
        // On an Object Lock bucket the original may still be there under an older version: then nothing is lost.
        const recovered = problem !== null && (await repo.recoverOriginal(keys.pack(packId), problem, (b) => sha256Hex(b) === packId, opts.signal)) !== null;
        if (problem !== null && !recovered) {
          reportPack(packId, problem);
          shallowFailed.add(packId);
        }
        if (opts.mode === 'shallow') tick();
      }),
    ),
  );

  let bytesDownloaded = 0;
  let packsChecked = packIds.length;
  const samplePercent = opts.mode === 'deep' ? Math.min(100, Math.max(0, opts.samplePercent ?? 100)) : 0;
  if (opts.mode === 'deep') {
    const candidates = packIds.filter((p) => !shallowFailed.has(p));
    const sample = samplePacks(candidates, samplePercent);
    packsChecked = sample.length;
    const deepLimit = pLimit(Math.min(opts.concurrency ?? 2, 2));
    await Promise.all(
      sample.map((packId) =>
        deepLimit(async () => {
          opts.signal?.throwIfAborted();
          const info = repo.index.pack(packId)!;
          const body = await repo.readPack(packId, opts.signal);
          bytesDownloaded += body.length;
          if (createHash('sha256').update(body).digest('hex') !== packId) {
            reportPack(packId, 'pack content does not match its name (corrupt or overwritten)');
            tick();
            return;
          }
          let plain: Buffer;
          try {
            const headerLen = parseAgeHeaderLength(body);
            const reader = AgePayloadReader.fromFileKey(await repo.packFileKey(body.subarray(0, headerLen)), body.subarray(headerLen, headerLen + 16), headerLen);
            plain = reader.decryptRange(body.subarray(headerLen + 16), 0, info.plaintextBytes, info.plaintextBytes);
          } catch (err) {
            reportPack(packId, `pack does not decrypt: ${messageOf(err)}`);
            tick();
            return;
          }
          for (const blobId of packBlobs.get(packId)!) {
            const loc = repo.index.lookup(blobId)!;
            try {
              repo.checkBlob(blobId, plain.subarray(loc.offset, loc.offset + loc.length), packId);
            } catch (err) {
              reportPack(packId, messageOf(err), [blobId]);
            }
          }
          tick();
        }),
      ),
    );
  }

  for (const p of problems) snapshotsOk.set(p.snapshotId, false);
  return {
    mode: opts.mode,
    samplePercent,
    snapshots: [...snapshotsOk].map(([id, ok]) => ({ id, ok })),
    packsChecked,
    bytesDownloaded,
    problems,
    durationMs: Math.round(performance.now() - t0),
  };
}

/** A random sample of the given percentage, at least one pack when the percentage is above zero. */
function samplePacks(packIds: string[], percent: number): string[] {
  if (percent >= 100) return packIds;
  if (percent <= 0 || packIds.length === 0) return [];
  const n = Math.max(1, Math.ceil((packIds.length * percent) / 100));
  const pool = [...packIds];
  for (let i = 0; i < n; i++) {
    const j = i + randomInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
