/**
 * The storage tamper alarm, the domain: which bucket events are attacks on
 * Lifeline's stored data, and how a stream of them becomes one report per
 * burst. Pure functions and a clock-driven coalescer; no Temporal, no I/O.
 *
 * Recognising Lifeline's own changes: a bucket event names the principal that
 * made the request (MinIO: the access key, or the parent user of a service
 * account; AWS: the principal id). Lifeline's own principals are its
 * configured storage credentials plus `alarm.ownPrincipals` (the role users).
 * What an own principal may do is still limited by what Lifeline does:
 *  - deletes: garbage collection, forgetting, lock release, record pruning —
 *    allowed in repositories, never in the audit log (it is append-only);
 *  - writes: every repository and audit object except `locks/` is written
 *    once with If-None-Match, so a write that replaced an existing version is
 *    an overwrite nobody in Lifeline made (stolen Lifeline credentials);
 *  - retention / legal hold / tagging: allowed (incidents place and release
 *    holds).
 * Anything another principal does to a repository or audit object is
 * tampering. Reads (s3:ObjectAccessed:*) and no-op deletes are ignored.
 */

export const KEY_KINDS = ['config', 'pack', 'index', 'snapshot', 'record', 'lock', 'tombstone', 'audit'] as const;
export type KeyKind = (typeof KEY_KINDS)[number];

export const TAMPER_ACTIONS = ['delete', 'overwrite', 'write', 'retention', 'legal-hold', 'tagging'] as const;
export type TamperAction = (typeof TAMPER_ACTIONS)[number];

/** Folder of the alarm's own liveness probe objects (under storage.prefix). */
export const PROBE_FOLDER = '.lifeline-alarm/';

export interface WatchedBucket {
  bucket: string;
  role: 'repository' | 'audit';
  /** audit buckets: the audit log's key prefix, ending in '/' (repository buckets: unused, tenants carry theirs) */
  prefix: string;
  /** key prefix of the alarm's probe objects in this bucket, ending in '/' */
  probePrefix: string;
}

export interface TenantPrefix {
  tenant: string;
  /** full key prefix of the tenant's repository in the repository bucket, ending in '/' */
  prefix: string;
}

/** One object event, reduced to what the alarm needs. */
export interface BucketEvent {
  eventName: string;
  bucket: string;
  key: string;
  /** who made the request (access key id / principal id); '' when the store does not say */
  principal: string;
  time: string;
  /** version the event created (versioned buckets) */
  versionId?: string;
  /** identifies the event (request id, name, key, sequencer): MinIO may deliver one event twice */
  id: string;
}

/** What a key is: a tenant repository object, an audit log object, the alarm's probe, or none of Lifeline's. */
export type KeyLocation = { kind: KeyKind; tenant?: string } | { kind: 'probe' } | { kind: 'foreign' };

/**
 * One S3 / MinIO notification record (the `Records[]` element) → a BucketEvent,
 * or null when it is not an object event. Keys in records are URL-encoded
 * (`+` for spaces), as S3 sends them.
 */
export function parseRecord(rec: unknown): BucketEvent | null {
  const r = rec as {
    eventName?: unknown;
    eventTime?: unknown;
    userIdentity?: { principalId?: unknown };
    responseElements?: Record<string, unknown>;
    s3?: { bucket?: { name?: unknown }; object?: { key?: unknown; versionId?: unknown; sequencer?: unknown } };
  } | null;
  if (!r || typeof r !== 'object' || typeof r.eventName !== 'string') return null;
  const bucket = r.s3?.bucket?.name;
  const rawKey = r.s3?.object?.key;
  if (typeof bucket !== 'string' || typeof rawKey !== 'string' || !rawKey) return null;
  let key: string;
  try {
    key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
  } catch {
    key = rawKey;
  }
  const principal = typeof r.userIdentity?.principalId === 'string' ? r.userIdentity.principalId : '';
  const time = typeof r.eventTime === 'string' && !Number.isNaN(Date.parse(r.eventTime)) ? new Date(r.eventTime).toISOString() : new Date().toISOString();
  const versionId = r.s3?.object?.versionId;
  const requestId = r.responseElements?.['x-amz-request-id'];
  const id = [typeof requestId === 'string' ? requestId : '', r.eventName, bucket, key, String(r.s3?.object?.sequencer ?? ''), String(versionId ?? ''), time].join('|');
  return { eventName: r.eventName, bucket, key, principal, time, ...(typeof versionId === 'string' && versionId && versionId !== 'null' ? { versionId } : {}), id };
}

const REPO_FOLDERS: Array<[string, KeyKind]> = [
  ['data/', 'pack'],
  ['index/', 'index'],
  ['snapshots/', 'snapshot'],
  ['verifications/', 'record'],
  ['holds/', 'record'],
  ['quarantine/', 'record'],
  ['bom/', 'record'],
  ['locks/', 'lock'],
  ['tombstones/', 'tombstone'],
];

/** Where a key lies (FORMAT.md "Object layout"; the audit log under its own prefix). */
export function locateKey(key: string, bucket: WatchedBucket, tenants: TenantPrefix[]): KeyLocation {
  if (key.startsWith(bucket.probePrefix)) return { kind: 'probe' };
  if (bucket.role === 'audit') return key.startsWith(bucket.prefix) ? { kind: 'audit' } : { kind: 'foreign' };
  // The longest matching tenant prefix wins (a tenant prefix may nest in another's folder).
  const t = tenants.filter((x) => key.startsWith(x.prefix)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
  if (!t) return { kind: 'foreign' };
  const rest = key.slice(t.prefix.length);
  if (rest === 'config') return { kind: 'config', tenant: t.tenant };
  for (const [folder, kind] of REPO_FOLDERS) if (rest.startsWith(folder)) return { kind, tenant: t.tenant };
  return { kind: 'foreign' };
}

/** What an event does to an object; null for reads, no-op deletes and anything else that changes nothing stored. */
export function actionOf(eventName: string): TamperAction | null {
  const name = eventName.replace(/^s3:/, '');
  switch (name) {
    case 'ObjectRemoved:Delete':
    case 'ObjectRemoved:DeleteMarkerCreated':
    case 'ObjectRemoved:DeleteAllVersions':
      return 'delete';
    case 'ObjectCreated:Put':
    case 'ObjectCreated:Post':
    case 'ObjectCreated:Copy':
    case 'ObjectCreated:CompleteMultipartUpload':
      return 'write'; // refined to 'overwrite' when an earlier version existed
    case 'ObjectCreated:PutRetention':
      return 'retention';
    case 'ObjectCreated:PutLegalHold':
      return 'legal-hold';
    case 'ObjectCreated:PutTagging':
    case 'ObjectCreated:DeleteTagging':
      return 'tagging';
    default:
      return null; // ObjectAccessed:*, ObjectRemoved:NoOP, replication, scanner, …
  }
}

/** A change to stored data that Lifeline did not make. */
export interface TamperFinding {
  bucket: string;
  key: string;
  kind: KeyKind;
  tenant?: string;
  action: TamperAction;
  principal: string;
  /** made with one of Lifeline's own principals (stolen credentials, or a bug) */
  own: boolean;
  time: string;
}

/**
 * Does judging this event need to know whether the key had a version before
 * the write? Only writes to write-once objects do (everything but `locks/`).
 */
export function needsPriorVersionCheck(ev: BucketEvent, loc: KeyLocation): boolean {
  return actionOf(ev.eventName) === 'write' && loc.kind !== 'probe' && loc.kind !== 'foreign' && loc.kind !== 'lock';
}

/**
 * Did the write that created `versionId` replace a live object? `versions` are the
 * key's versions and delete markers, newest first. A key deleted (delete marker)
 * and written again is not an overwrite. Undefined when the version is unknown.
 */
export function replacedLiveVersion(versions: Array<{ versionId: string; deleteMarker: boolean }>, versionId: string | undefined): boolean | undefined {
  if (!versionId) return undefined;
  const i = versions.findIndex((v) => v.versionId === versionId);
  if (i < 0) return undefined;
  const before = versions[i + 1];
  return before !== undefined && !before.deleteMarker;
}

/**
 * Judges one event. `hadEarlierVersion`: whether the key had a (non-delete-marker)
 * version before this write — known only in versioned buckets; undefined when unknown.
 */
export function classifyEvent(ev: BucketEvent, loc: KeyLocation, ctx: { isOwn: (principal: string) => boolean; hadEarlierVersion?: boolean }): TamperFinding | null {
  if (loc.kind === 'probe' || loc.kind === 'foreign') return null;
  const action = actionOf(ev.eventName);
  if (!action) return null;
  const own = ev.principal !== '' && ctx.isOwn(ev.principal);
  const finding = (a: TamperAction): TamperFinding => ({
    bucket: ev.bucket,
    key: ev.key,
    kind: loc.kind,
    ...('tenant' in loc && loc.tenant ? { tenant: loc.tenant } : {}),
    action: a,
    principal: ev.principal,
    own,
    time: ev.time,
  });
  const write = (): TamperAction => (ctx.hadEarlierVersion ? 'overwrite' : 'write');
  if (!own) return finding(action === 'write' ? write() : action);
  // Lifeline's own principal: only what Lifeline never does is tampering.
  if (action === 'delete') return loc.kind === 'audit' ? finding('delete') : null;
  if (action === 'write') return loc.kind !== 'lock' && ctx.hadEarlierVersion ? finding('overwrite') : null;
  return null;
}

/**
 * How a principal appears in logs, incidents and workflow histories: shortened,
 * so a full access key id (which the logger treats as a secret) never leaves
 * the watcher, yet an operator can still tell which key it was.
 */
export function principalLabel(principal: string, own: boolean): string {
  if (!principal) return 'unknown';
  const short = principal.length <= 8 ? `${principal.slice(0, 2)}…` : `${principal.slice(0, 4)}…${principal.slice(-4)}`;
  return own ? `lifeline-key:${short}` : short;
}

/** A burst of findings in one bucket, reported as one incident. */
export interface TamperBurst {
  bucket: string;
  count: number;
  kinds: Partial<Record<KeyKind, number>>;
  actions: Partial<Record<TamperAction, number>>;
  tenants: string[];
  /** principal labels (principalLabel), at most PRINCIPALS_LISTED */
  principals: string[];
  firstAt: string;
  lastAt: string;
  /** the first SAMPLE_KEYS keys (object ids, never file names) */
  sampleKeys: string[];
}

export const SAMPLE_KEYS = 20;
export const PRINCIPALS_LISTED = 20;

interface OpenBurst {
  burst: TamperBurst;
  startedMs: number;
  lastMs: number;
}

/**
 * Coalesces findings into bursts per bucket: a burst ends when no finding came
 * for `quietMs`, or `maxMs` after it began (so a slow, endless attack is still
 * reported). A mass delete of 1000 objects is one burst with count 1000.
 */
export class BurstCoalescer {
  private readonly open = new Map<string, OpenBurst>();

  constructor(private readonly opts: { quietMs: number; maxMs: number }) {}

  add(f: TamperFinding, nowMs: number): void {
    let o = this.open.get(f.bucket);
    if (!o) {
      o = { burst: { bucket: f.bucket, count: 0, kinds: {}, actions: {}, tenants: [], principals: [], firstAt: f.time, lastAt: f.time, sampleKeys: [] }, startedMs: nowMs, lastMs: nowMs };
      this.open.set(f.bucket, o);
    }
    const b = o.burst;
    o.lastMs = nowMs;
    b.count++;
    b.kinds[f.kind] = (b.kinds[f.kind] ?? 0) + 1;
    b.actions[f.action] = (b.actions[f.action] ?? 0) + 1;
    if (f.tenant && !b.tenants.includes(f.tenant)) b.tenants.push(f.tenant);
    const who = principalLabel(f.principal, f.own);
    if (!b.principals.includes(who) && b.principals.length < PRINCIPALS_LISTED) b.principals.push(who);
    if (f.time < b.firstAt) b.firstAt = f.time;
    if (f.time > b.lastAt) b.lastAt = f.time;
    if (b.sampleKeys.length < SAMPLE_KEYS && !b.sampleKeys.includes(f.key)) b.sampleKeys.push(f.key);
  }

  /** Bursts that ended by `nowMs` (removed from the coalescer). */
  due(nowMs: number): TamperBurst[] {
    const out: TamperBurst[] = [];
    for (const [bucket, o] of this.open) {
      if (nowMs - o.lastMs >= this.opts.quietMs || nowMs - o.startedMs >= this.opts.maxMs) {
        out.push(o.burst);
        this.open.delete(bucket);
      }
    }
    return out;
  }

  /** Every open burst, ended now (on shutdown). */
  drain(): TamperBurst[] {
    const out = [...this.open.values()].map((o) => o.burst);
    this.open.clear();
    return out;
  }

  get pending(): number {
    return this.open.size;
  }
}

/** The `storage-tamper` event (events/schema.ts) that reports a burst. */
export function burstEvent(b: TamperBurst, source: string): Record<string, unknown> {
  return {
    type: 'storage-tamper',
    bucket: b.bucket,
    keys: b.sampleKeys,
    count: b.count,
    actions: (Object.keys(b.actions) as TamperAction[]).sort(),
    kinds: b.kinds,
    principals: b.principals,
    firstAt: b.firstAt,
    lastAt: b.lastAt,
    source,
  };
}

/** One line for logs and the incident timeline: counts, kinds, actions and who. */
export function describeTamper(t: { bucket: string; count: number; kinds: Partial<Record<string, number>>; actions: string[]; principals: string[] }): string {
  const kinds = Object.entries(t.kinds)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return `${t.count} object(s) in bucket ${t.bucket} (${kinds || 'unknown kinds'}): ${t.actions.join(', ')} by ${t.principals.join(', ') || 'unknown'}`;
}

/** Counts per kind of a list of located keys (for events that bring keys but no counts, e.g. from AWS EventBridge). */
export function countKinds(kinds: KeyKind[]): Partial<Record<KeyKind, number>> {
  const out: Partial<Record<KeyKind, number>> = {};
  for (const k of kinds) out[k] = (out[k] ?? 0) + 1;
  return out;
}
