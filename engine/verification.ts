/**
 * What is known about each snapshot beyond its manifest: verification results,
 * legal holds and quarantine marks — each its own signed, encrypted, immutable
 * record (engine/records.ts, FORMAT.md "Records").
 *
 *     verifications/<snapshotId>/<name>          one check's result
 *     holds/<snapshotId>/<holdId>/placed         a legal hold …
 *     holds/<snapshotId>/<holdId>/released       … and its release
 *     quarantine/<snapshotId>/<markId>/placed    a suspect mark …
 *     quarantine/<snapshotId>/<markId>/released  … and its release
 *
 * States of a snapshot: `unverified` (no record) → `verified` or `corrupt`.
 * A `corrupt` verdict is sticky: only a later deep verification of every pack
 * (100 %) that passes clears it, so a cheaper shallow check (which cannot see
 * overwritten content) never turns a corrupt snapshot back into a good one.
 *
 * "Last verified" for an asset is its newest snapshot whose state is verified
 * and that is not quarantined: the snapshot a restore should pick when the
 * newest cannot be trusted.
 */
import { z } from 'zod';
import { ObjectNotFoundError } from './backend/object-store';
import type { CheckMode, CheckProblem, CheckReport } from './checker';
import { sha256Hex } from './manifest';
import { InputError } from './errors';
import { readRecords, recordName, writeRecord, type RecordWarningSink, type StoredRecord } from './records';
import type { Repository, SnapshotSummary } from './repository';
import { keys } from './repository';

// ---- keys ------------------------------------------------------------------

const HEX64 = /^[0-9a-f]{64}$/;
/** Hold and mark ids: chosen by people (a case number) or generated. */
export const MARK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const recordKeys = {
  verifications: (snapshotId: string) => `verifications/${snapshotId}/`,
  verification: (snapshotId: string, name: string) => `verifications/${snapshotId}/${name}`,
  holdPlaced: (snapshotId: string, holdId: string) => `holds/${snapshotId}/${holdId}/placed`,
  holdReleased: (snapshotId: string, holdId: string) => `holds/${snapshotId}/${holdId}/released`,
  quarantinePlaced: (snapshotId: string, markId: string) => `quarantine/${snapshotId}/${markId}/placed`,
  quarantineReleased: (snapshotId: string, markId: string) => `quarantine/${snapshotId}/${markId}/released`,
};

/** Problems kept in one record (counts are always complete). */
export const MAX_RECORDED_PROBLEMS = 100;
/** Verification records kept per snapshot, besides the ones the state depends on. */
export const VERIFICATION_HISTORY = 20;

// ---- record bodies ---------------------------------------------------------

const ProblemSchema = z
  .object({
    /** file inside the snapshot, when the problem affects one */
    path: z.string().optional(),
    /** storage key of the object that is missing or corrupt (or `blob <id>`) */
    object: z.string(),
    problem: z.string(),
  })
  .strict();
export type VerificationProblem = z.infer<typeof ProblemSchema>;

export const VerificationBodySchema = z
  .object({
    format: z.literal('lifeline-verification'),
    version: z.literal(1),
    repositoryId: z.string(),
    snapshotId: z.string().regex(HEX64),
    asset: z.string(),
    time: z.string().datetime(),
    mode: z.enum(['shallow', 'deep']),
    /** deep: percentage of the snapshot's packs downloaded and decrypted; shallow: 0 */
    samplePercent: z.number().min(0).max(100),
    result: z.enum(['passed', 'failed']),
    /** of the check run that covered this snapshot (one run may check several snapshots at once) */
    packsChecked: z.number().int().nonnegative(),
    bytesDownloaded: z.number().int().nonnegative(),
    durationMs: z.number().nonnegative(),
    problemCount: z.number().int().nonnegative(),
    /** the first MAX_RECORDED_PROBLEMS problems */
    problems: z.array(ProblemSchema),
    /** who ran it: a workflow id, `cli`, … */
    by: z.string().optional(),
  })
  .strict();
export type VerificationBody = z.infer<typeof VerificationBodySchema>;
export type VerificationRecord = StoredRecord<VerificationBody>;

const MarkBodySchema = z
  .object({
    format: z.enum(['lifeline-hold', 'lifeline-quarantine']),
    version: z.literal(1),
    repositoryId: z.string(),
    snapshotId: z.string().regex(HEX64),
    id: z.string().regex(MARK_ID),
    action: z.enum(['placed', 'released']),
    time: z.string().datetime(),
    reason: z.string(),
    by: z.string().optional(),
  })
  .strict();
type MarkBody = z.infer<typeof MarkBodySchema>;

export type MarkKind = 'hold' | 'quarantine';

/** A hold or quarantine mark that is in force (placed and not released). */
export interface Mark {
  kind: MarkKind;
  snapshotId: string;
  id: string;
  reason: string;
  placedAt: string;
  by?: string;
}

// ---- verification records --------------------------------------------------

export interface RecordVerificationInput {
  snapshotId: string;
  asset: string;
  mode: CheckMode;
  samplePercent: number;
  packsChecked: number;
  bytesDownloaded: number;
  durationMs: number;
  problems: VerificationProblem[];
  by?: string;
  time?: Date;
}

/** Stores one check's result for one snapshot; returns the record's key and body. */
export async function recordVerification(repo: Repository, input: RecordVerificationInput): Promise<VerificationRecord> {
  if (!HEX64.test(input.snapshotId)) throw new InputError(`not a snapshot id: ${JSON.stringify(input.snapshotId)}`);
  const time = input.time ?? new Date();
  const body: VerificationBody = {
    format: 'lifeline-verification',
    version: 1,
    repositoryId: repo.id,
    snapshotId: input.snapshotId,
    asset: input.asset,
    time: time.toISOString(),
    mode: input.mode,
    samplePercent: input.mode === 'deep' ? input.samplePercent : 0,
    result: input.problems.length === 0 ? 'passed' : 'failed',
    packsChecked: input.packsChecked,
    bytesDownloaded: input.bytesDownloaded,
    durationMs: Math.round(input.durationMs),
    problemCount: input.problems.length,
    problems: input.problems.slice(0, MAX_RECORDED_PROBLEMS),
    ...(input.by ? { by: input.by } : {}),
  };
  const key = recordKeys.verification(input.snapshotId, recordName(time));
  await writeRecord(repo, key, body);
  return { key, signer: repo.signingKey!.keyId, body };
}

/** Splits a checker report into one record input per snapshot it covered. */
export function verificationInputs(report: CheckReport, assetOf: (snapshotId: string) => string, by?: string): RecordVerificationInput[] {
  const bySnapshot = new Map<string, CheckProblem[]>();
  for (const p of report.problems) {
    const list = bySnapshot.get(p.snapshotId) ?? [];
    list.push(p);
    bySnapshot.set(p.snapshotId, list);
  }
  return report.snapshots.map((s) => ({
    snapshotId: s.id,
    asset: assetOf(s.id),
    mode: report.mode,
    samplePercent: report.samplePercent,
    packsChecked: report.packsChecked,
    bytesDownloaded: report.bytesDownloaded,
    durationMs: report.durationMs,
    problems: (bySnapshot.get(s.id) ?? []).map(({ path, object, problem }) => (path === undefined ? { object, problem } : { path, object, problem })),
    by,
  }));
}

/**
 * When a snapshot's file list cannot be read, the checker blames the manifest
 * key; the damage is usually in a pack holding the tree blobs. Names those packs
 * (missing, or content not matching their name) so the record says which object
 * to look at. Problems the manifest itself causes are left as they are.
 */
export async function locateUnreadableTrees(repo: Repository, report: CheckReport, signal?: AbortSignal): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  const verdicts = new Map<string, string | null>();
  const packVerdict = async (packId: string): Promise<string | null> => {
    if (!verdicts.has(packId)) {
      let verdict: string | null = null;
      try {
        const body = await repo.readPack(packId, signal);
        if (sha256Hex(body) !== packId) verdict = 'pack holding the snapshot\'s file list does not match its name (corrupt or overwritten)';
      } catch (err) {
        if (!(err instanceof ObjectNotFoundError)) throw err;
        verdict = 'pack holding the snapshot\'s file list is missing';
      }
      verdicts.set(packId, verdict);
    }
    return verdicts.get(packId)!;
  };
  for (const p of report.problems) {
    if (p.path !== undefined || p.object !== keys.snapshot(p.snapshotId)) {
      problems.push(p);
      continue;
    }
    let tree: string[];
    try {
      tree = (await repo.loadSnapshot(p.snapshotId)).body.tree;
    } catch {
      problems.push(p); // the manifest itself is missing or fails authentication
      continue;
    }
    const found: CheckProblem[] = [];
    for (const blobId of tree) {
      const loc = repo.index.lookup(blobId);
      if (!loc) {
        found.push({ snapshotId: p.snapshotId, object: `blob ${blobId}`, problem: 'tree blob is not in any index (missing data)' });
        continue;
      }
      const verdict = await packVerdict(loc.packId);
      if (verdict && !found.some((f) => f.object === keys.pack(loc.packId))) found.push({ snapshotId: p.snapshotId, object: keys.pack(loc.packId), problem: `${verdict}: ${p.problem}` });
    }
    problems.push(...(found.length > 0 ? found : [p]));
  }
  return { ...report, problems };
}

function verificationBelongs(repo: Repository) {
  return (key: string, body: VerificationBody): string | null => {
    if (body.repositoryId !== repo.id) return `belongs to another repository (${body.repositoryId})`;
    if (!key.startsWith(recordKeys.verifications(body.snapshotId))) return `is stored under ${key} but is about snapshot ${body.snapshotId} (moved?)`;
    return null;
  };
}

/** Verification records, oldest first: of one snapshot, of some (`snapshotIds`), or of all. */
export async function listVerifications(
  repo: Repository,
  opts: { snapshotId?: string; snapshotIds?: ReadonlySet<string>; onWarning?: RecordWarningSink } = {},
): Promise<VerificationRecord[]> {
  const prefix = opts.snapshotId ? recordKeys.verifications(opts.snapshotId) : 'verifications/';
  const only = opts.snapshotIds;
  const records = await readRecords(repo, prefix, {
    schema: VerificationBodySchema,
    belongs: verificationBelongs(repo),
    onWarning: opts.onWarning,
    // Names are only a filter here; what a record says is checked against its key after decrypting.
    ...(only ? { filterKey: (key: string) => only.has(key.split('/')[1] ?? '') } : {}),
  });
  return records.sort(compareVerifications);
}

/** Time first, then key: two checks in the same millisecond still order the same way everywhere. */
export function compareVerifications(a: VerificationRecord, b: VerificationRecord): number {
  if (a.body.time !== b.body.time) return a.body.time < b.body.time ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export type VerificationState = 'unverified' | 'verified' | 'corrupt';

export interface VerificationSummary {
  time: string;
  mode: CheckMode;
  samplePercent: number;
}

export interface SnapshotVerification {
  state: VerificationState;
  /** the newest check that passed */
  lastPassed?: VerificationSummary;
  /** the newest check that failed, with what failed */
  lastFailed?: VerificationSummary & { problemCount: number; problems: VerificationProblem[] };
  /** every trustworthy record about this snapshot */
  checks: number;
}

/** A check that could have seen any damage the earlier failure found: deep, every pack. */
function clears(r: VerificationBody): boolean {
  return r.result === 'passed' && r.mode === 'deep' && r.samplePercent >= 100;
}

/** The state one snapshot's records (any order) add up to; see the module comment for the rules. */
export function verificationState(records: VerificationRecord[]): SnapshotVerification {
  const sorted = [...records].sort(compareVerifications);
  const summary = (r: VerificationBody): VerificationSummary => ({ time: r.time, mode: r.mode, samplePercent: r.samplePercent });
  let lastPassed: VerificationBody | undefined;
  let lastFailed: VerificationBody | undefined;
  let corrupt = false;
  for (const { body } of sorted) {
    if (body.result === 'failed') {
      lastFailed = body;
      corrupt = true;
    } else {
      lastPassed = body;
      if (clears(body)) corrupt = false;
    }
  }
  return {
    state: corrupt ? 'corrupt' : lastPassed ? 'verified' : 'unverified',
    ...(lastPassed ? { lastPassed: summary(lastPassed) } : {}),
    ...(lastFailed ? { lastFailed: { ...summary(lastFailed), problemCount: lastFailed.problemCount, problems: lastFailed.problems } } : {}),
    checks: sorted.length,
  };
}

/** State of every snapshot (or of `snapshotIds`) that has records; snapshots without any are `unverified`. */
export async function verificationStates(
  repo: Repository,
  opts: { snapshotIds?: ReadonlySet<string>; onWarning?: RecordWarningSink } = {},
): Promise<Map<string, SnapshotVerification>> {
  const bySnapshot = new Map<string, VerificationRecord[]>();
  for (const r of await listVerifications(repo, opts)) {
    const list = bySnapshot.get(r.body.snapshotId) ?? [];
    list.push(r);
    bySnapshot.set(r.body.snapshotId, list);
  }
  return new Map([...bySnapshot].map(([id, list]) => [id, verificationState(list)]));
}

export function unverified(): SnapshotVerification {
  return { state: 'unverified', checks: 0 };
}

/**
 * Deletes a snapshot's oldest verification records beyond `keep`, but never
 * the ones its state rests on (the newest failure, the newest pass and the
 * newest full deep pass), so history stays bounded while the verdict is unchanged.
 */
export async function pruneVerifications(repo: Repository, snapshotId: string, keep = VERIFICATION_HISTORY, onWarning?: RecordWarningSink): Promise<number> {
  const records = await listVerifications(repo, { snapshotId, onWarning });
  if (records.length <= keep) return 0;
  const pinned = new Set<string>();
  const newest = (pred: (r: VerificationBody) => boolean) => [...records].reverse().find((r) => pred(r.body))?.key;
  for (const k of [newest((r) => r.result === 'failed'), newest((r) => r.result === 'passed'), newest(clears)]) if (k) pinned.add(k);
  const old = records.slice(0, records.length - keep).filter((r) => !pinned.has(r.key));
  for (const r of old) await repo.store.delete(r.key);
  return old.length;
}

// ---- holds and quarantine ---------------------------------------------------

const markKeys = {
  hold: { placed: recordKeys.holdPlaced, released: recordKeys.holdReleased, root: 'holds/', format: 'lifeline-hold' as const },
  quarantine: { placed: recordKeys.quarantinePlaced, released: recordKeys.quarantineReleased, root: 'quarantine/', format: 'lifeline-quarantine' as const },
};

function markBelongs(repo: Repository, kind: MarkKind) {
  const k = markKeys[kind];
  return (key: string, body: MarkBody): string | null => {
    if (body.repositoryId !== repo.id) return `belongs to another repository (${body.repositoryId})`;
    if (body.format !== k.format) return `is a ${body.format} record stored as a ${kind}`;
    const expected = body.action === 'placed' ? k.placed(body.snapshotId, body.id) : k.released(body.snapshotId, body.id);
    if (key !== expected) return `is stored under ${key} but says ${expected} (moved?)`;
    return null;
  };
}

export interface PlaceMarkInput {
  snapshotId: string;
  reason: string;
  /** defaults to a generated, time-ordered id */
  id?: string;
  by?: string;
}

async function placeMark(repo: Repository, kind: MarkKind, input: PlaceMarkInput): Promise<Mark> {
  if (!input.reason.trim()) throw new InputError(`a ${kind} needs a reason`);
  const id = input.id ?? recordName(new Date());
  if (!MARK_ID.test(id)) throw new InputError(`not a valid ${kind} id: ${JSON.stringify(id)} (letters, digits, . _ -; at most 64)`);
  // The snapshot must exist (and authenticate): a hold on nothing protects nothing.
  await repo.loadSnapshot(input.snapshotId);
  const existing = await readMarks(repo, kind, { snapshotId: input.snapshotId });
  const same = existing.all.find((m) => m.body.id === id);
  if (same) {
    if (existing.active.some((m) => m.id === id)) return existing.active.find((m) => m.id === id)!;
    throw new InputError(`${kind} ${id} on snapshot ${input.snapshotId} was released; use a new id`);
  }
  const body: MarkBody = {
    format: markKeys[kind].format,
    version: 1,
    repositoryId: repo.id,
    snapshotId: input.snapshotId,
    id,
    action: 'placed',
    time: new Date().toISOString(),
    reason: input.reason,
    ...(input.by ? { by: input.by } : {}),
  };
  await writeRecord(repo, markKeys[kind].placed(input.snapshotId, id), body);
  return { kind, snapshotId: body.snapshotId, id, reason: body.reason, placedAt: body.time, ...(input.by ? { by: input.by } : {}) };
}

async function releaseMark(repo: Repository, kind: MarkKind, input: { snapshotId: string; id: string; reason: string; by?: string }): Promise<void> {
  if (!MARK_ID.test(input.id)) throw new InputError(`not a valid ${kind} id: ${JSON.stringify(input.id)}`);
  if (!input.reason.trim()) throw new InputError(`releasing a ${kind} needs a reason`);
  const { active, all } = await readMarks(repo, kind, { snapshotId: input.snapshotId });
  if (!active.some((m) => m.id === input.id)) {
    if (all.some((m) => m.body.id === input.id && m.body.action === 'released')) return; // already released: idempotent
    throw new InputError(`no ${kind} ${input.id} on snapshot ${input.snapshotId}`);
  }
  const body: MarkBody = {
    format: markKeys[kind].format,
    version: 1,
    repositoryId: repo.id,
    snapshotId: input.snapshotId,
    id: input.id,
    action: 'released',
    time: new Date().toISOString(),
    reason: input.reason,
    ...(input.by ? { by: input.by } : {}),
  };
  await writeRecord(repo, markKeys[kind].released(input.snapshotId, input.id), body);
}

async function readMarks(
  repo: Repository,
  kind: MarkKind,
  opts: { snapshotId?: string; onWarning?: RecordWarningSink },
): Promise<{ active: Mark[]; all: Array<StoredRecord<MarkBody>> }> {
  const prefix = opts.snapshotId ? `${markKeys[kind].root}${opts.snapshotId}/` : markKeys[kind].root;
  const all = await readRecords(repo, prefix, { schema: MarkBodySchema, belongs: markBelongs(repo, kind), onWarning: opts.onWarning });
  const released = new Set(all.filter((r) => r.body.action === 'released').map((r) => `${r.body.snapshotId}/${r.body.id}`));
  const active = all
    .filter((r) => r.body.action === 'placed' && !released.has(`${r.body.snapshotId}/${r.body.id}`))
    .map(({ body }) => ({ kind, snapshotId: body.snapshotId, id: body.id, reason: body.reason, placedAt: body.time, ...(body.by ? { by: body.by } : {}) }))
    .sort((a, b) => (a.placedAt < b.placedAt ? -1 : a.placedAt > b.placedAt ? 1 : 0));
  return { active, all };
}

/** Places a legal hold: retention never forgets the snapshot while the hold is in force. Idempotent per id. */
export function placeHold(repo: Repository, input: PlaceMarkInput): Promise<Mark> {
  return placeMark(repo, 'hold', input);
}

/** Releases a hold (writes a release record; the placement stays as history). */
export function releaseHold(repo: Repository, input: { snapshotId: string; id: string; reason: string; by?: string }): Promise<void> {
  return releaseMark(repo, 'hold', input);
}

/** Holds in force, of one snapshot or all. */
export async function listHolds(repo: Repository, opts: { snapshotId?: string; onWarning?: RecordWarningSink } = {}): Promise<Mark[]> {
  return (await readMarks(repo, 'hold', opts)).active;
}

/** Marks a snapshot as suspect: it is never "last verified" and retention keeps it as evidence. */
export function quarantine(repo: Repository, input: PlaceMarkInput): Promise<Mark> {
  return placeMark(repo, 'quarantine', input);
}

export function releaseQuarantine(repo: Repository, input: { snapshotId: string; id: string; reason: string; by?: string }): Promise<void> {
  return releaseMark(repo, 'quarantine', input);
}

/** Quarantine marks in force, of one snapshot or all. */
export async function listQuarantined(repo: Repository, opts: { snapshotId?: string; onWarning?: RecordWarningSink } = {}): Promise<Mark[]> {
  return (await readMarks(repo, 'quarantine', opts)).active;
}

// ---- what the rest of Lifeline asks ------------------------------------------

export interface SnapshotStatus extends SnapshotSummary {
  verification: SnapshotVerification;
  holds: Mark[];
  quarantine: Mark[];
}

/** Every snapshot (of one asset, or all) with its verification state, holds and quarantine marks; oldest first. */
export async function snapshotStatuses(repo: Repository, opts: { asset?: string; onWarning?: RecordWarningSink } = {}): Promise<SnapshotStatus[]> {
  const snapshots = await repo.listSnapshots(opts.asset ? { asset: opts.asset } : undefined);
  const [states, holds, marks] = await Promise.all([
    // Only this asset's records are read (other assets of the tenant may have many).
    verificationStates(repo, { snapshotIds: new Set(snapshots.map((s) => s.id)), onWarning: opts.onWarning }),
    listHolds(repo, { onWarning: opts.onWarning }),
    listQuarantined(repo, { onWarning: opts.onWarning }),
  ]);
  const group = (list: Mark[]) => {
    const m = new Map<string, Mark[]>();
    for (const x of list) m.set(x.snapshotId, [...(m.get(x.snapshotId) ?? []), x]);
    return m;
  };
  const h = group(holds);
  const q = group(marks);
  return snapshots.map((s) => ({ ...s, verification: states.get(s.id) ?? unverified(), holds: h.get(s.id) ?? [], quarantine: q.get(s.id) ?? [] }));
}

/** The newest snapshot whose state is verified and that is not quarantined (pure; statuses oldest first). */
export function pickLastVerified<T extends Pick<SnapshotStatus, 'id' | 'verification' | 'quarantine'>>(statuses: T[]): T | null {
  for (let i = statuses.length - 1; i >= 0; i--) {
    const s = statuses[i]!;
    if (s.verification.state === 'verified' && s.quarantine.length === 0) return s;
  }
  return null;
}

/**
 * "Last verified" snapshot of an asset, or null when none qualifies. Walks from
 * the newest snapshot back and stops at the first that qualifies, so usually
 * only the newest snapshots' records are read.
 */
export async function lastVerifiedSnapshot(repo: Repository, asset: string, opts: { onWarning?: RecordWarningSink } = {}): Promise<SnapshotStatus | null> {
  const [snapshots, holds, marks] = await Promise.all([repo.listSnapshots({ asset }), listHolds(repo, opts), listQuarantined(repo, opts)]);
  for (let i = snapshots.length - 1; i >= 0; i--) {
    const s = snapshots[i]!;
    const quarantine = marks.filter((m) => m.snapshotId === s.id);
    if (quarantine.length > 0) continue;
    const verification = verificationState(await listVerifications(repo, { snapshotId: s.id, onWarning: opts.onWarning }));
    if (verification.state === 'verified') return { ...s, verification, holds: holds.filter((h) => h.snapshotId === s.id), quarantine };
  }
  return null;
}

/**
 * Snapshots retention must keep whatever the keep rules say, with the reason
 * (for `applyKeepPolicy`'s `protect`): every held snapshot, every quarantined
 * one (evidence for incident response) and the asset's last verified snapshot.
 */
export function protectedSnapshots(statuses: SnapshotStatus[]): Map<string, string> {
  const protect = new Map<string, string>();
  const add = (id: string, why: string) => protect.set(id, protect.has(id) ? `${protect.get(id)}; ${why}` : why);
  for (const s of statuses) {
    for (const h of s.holds) add(s.id, `hold ${h.id}: ${h.reason}`);
    for (const q of s.quarantine) add(s.id, `quarantined ${q.id}: ${q.reason}`);
  }
  const last = pickLastVerified(statuses);
  if (last) add(last.id, 'newest verified snapshot');
  return protect;
}

/**
 * Forgets snapshots, re-reading holds and quarantine marks right before each
 * deletion so a hold placed after retention decided still wins. Also deletes
 * the forgotten snapshots' verification records and Model BOMs (they describe nothing any more).
 */
export async function forgetUnprotected(
  repo: Repository,
  ids: string[],
  opts: { onWarning?: RecordWarningSink } = {},
): Promise<{ forgotten: string[]; kept: Array<{ id: string; reason: string }> }> {
  const forgotten: string[] = [];
  const kept: Array<{ id: string; reason: string }> = [];
  for (const id of ids) {
    if (!HEX64.test(id)) throw new InputError(`not a snapshot id: ${JSON.stringify(id)}`);
    const [holds, marks] = await Promise.all([listHolds(repo, { snapshotId: id, ...opts }), listQuarantined(repo, { snapshotId: id, ...opts })]);
    if (holds.length > 0 || marks.length > 0) {
      kept.push({ id, reason: [...holds.map((h) => `hold ${h.id}: ${h.reason}`), ...marks.map((q) => `quarantined ${q.id}: ${q.reason}`)].join('; ') });
      continue;
    }
    await repo.store.delete(keys.snapshot(id));
    for await (const obj of repo.store.list(recordKeys.verifications(id))) await repo.store.delete(obj.key);
    await repo.store.delete(keys.bom(id));
    forgotten.push(id);
  }
  return { forgotten, kept };
}
