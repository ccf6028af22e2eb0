/**
 * The tamper-evident audit log: an append-only RFC 6962 Merkle tree of audit
 * entries in an object store (an S3 Object Lock bucket in production), sealed
 * by Ed25519-signed checkpoints (C2SP signed notes). Layout under the store's
 * root (FORMAT.md, "Audit log"):
 *
 *   entries/<seq, 12 digits>       one entry (JSON, signed by its writer); the Merkle leaf is its bytes
 *   proofs/<size, 12 digits>       how checkpoint <size> extends an earlier one: the leaf hashes it
 *                                  adds, an RFC 6962 consistency proof and the tree's frontier
 *   checkpoints/<size, 12 digits>  the signed checkpoint of the tree of the first <size> entries
 *
 * Appending is safe from many processes: a sequence number is taken by
 * creating `entries/<seq>` with If-None-Match (a conflict moves on to the next
 * number), so entries are always contiguous; then the appender seals its entry
 * with a checkpoint of size seq+1 (proof first, checkpoint last, both created
 * once). Every object is written with the configured Object Lock retention.
 *
 * `verify()` trusts only the configured public keys, never the bucket.
 */
import pLimit from 'p-limit';
import {
  ObjectExistsError,
  ObjectNotFoundError,
  type ObjectStore,
  type PutOptions,
} from '../engine/backend/object-store';
import type { SigningKey } from '../engine/crypto/signing';
import { NoteError, signCheckpoint, verifyCheckpoint } from './checkpoint';
import { type AuditEntry, type AuditEntryInput, type AuditEntryType, decodeEntry, encodeEntry, parseEntryInput } from './entry';
import {
  EMPTY_ROOT,
  type Hash,
  HASH_SIZE,
  consistencyProof,
  consistencyProofFromFrontier,
  frontierPush,
  frontierRoot,
  frontierSizes,
  leafHash,
  verifyConsistency,
} from './merkle';

/**
 * What workflows' activities call to record what they did. `record` resolves
 * once the entry is stored and sealed by a signed checkpoint, and rejects on an
 * invalid entry (AuditEntryError) or a storage failure. It is not idempotent:
 * an activity retried after recording records again — record after the effect,
 * and name the workflow (actor.id, actor.runId) so duplicates are recognisable.
 */
export interface AuditSink {
  record(entry: AuditEntryInput): Promise<void>;
}

export interface AuditLock {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  /** how long each object is retained after it is written */
  retentionMs: number;
}

export interface AuditLogOptions {
  /** rooted at the log (e.g. s3://<bucket>/<prefix>audit) */
  store: ObjectStore;
  /** checkpoint origin line and note key name, e.g. lifeline-audit/acme-audit */
  origin: string;
  /** signs entries and checkpoints; without it the log is read-only */
  signingKey?: SigningKey;
  /** base64 raw Ed25519 public keys trusted for entries and checkpoints (the signing key's own is added) */
  trustedKeys?: readonly string[];
  /** Object Lock retention for every object written; null/undefined = none */
  lock?: AuditLock | null;
  logger?: { warn(obj: object, msg: string): void };
  /** parallel reads in verify/query (default 16) */
  readConcurrency?: number;
  /**
   * Older versions of an object, on a versioned (Object Lock) bucket: lets
   * verify say that the sealed original of a changed or deleted entry is
   * still stored, and under which version id. Best effort.
   */
  versions?: ObjectVersions;
  /** clock (tests) */
  now?: () => Date;
}

export interface AppendResult {
  seq: number;
  /** hex of the entry's RFC 6962 leaf hash */
  leafHash: string;
  /** size of the checkpoint that seals the entry (seq + 1) */
  checkpoint: number;
}

export const AUDIT_PROBLEM_KINDS = ['modified', 'deleted', 'reordered', 'truncated', 'inconsistent-checkpoint', 'bad-signature'] as const;
export type AuditProblemKind = (typeof AUDIT_PROBLEM_KINDS)[number];

export interface AuditProblem {
  kind: AuditProblemKind;
  /** the entry concerned (the first of a range) */
  seq?: number;
  /** the last entry of a range (inclusive) */
  lastSeq?: number;
  /** tree size of the checkpoint concerned */
  checkpoint?: number;
  /** reordered: the entry stored at `seq` is the one that belongs at `foundSeq` */
  foundSeq?: number;
  /** the sealed original of this entry is still stored under this version id (versioned, locked buckets) */
  retainedVersion?: string;
  message: string;
}

export interface AuditWarning {
  kind: 'unsealed' | 'unexpected-object' | 'frontier';
  seq?: number;
  lastSeq?: number;
  checkpoint?: number;
  key?: string;
  message: string;
}

/**
 * A checkpoint seen earlier and kept outside the log (its signed note), or
 * only its size: the log must still contain it — the only defence against a
 * truncation back to an earlier, consistent state.
 */
export interface AuditWitness {
  note?: string;
  size?: number;
  /** where it comes from, for messages (e.g. "witness file ~/.cache/…") */
  source: string;
}

export interface AuditVerifyOptions {
  witnesses?: readonly AuditWitness[];
}

export interface AuditVerifyReport {
  ok: boolean;
  origin: string;
  location: string;
  /** the newest checkpoint consistent with every earlier one: what the entries were checked against */
  checkpoint: { size: number; rootHash: string; note: string } | null;
  /** entry objects stored */
  entries: number;
  /** checkpoint objects stored */
  checkpoints: number;
  problems: AuditProblem[];
  warnings: AuditWarning[];
  witnesses: Array<{ size: number; source: string; ok: boolean }>;
}

export interface AuditQuery {
  asset?: string;
  tenant?: string;
  type?: AuditEntryType;
  snapshot?: string;
  /** inclusive */
  since?: Date;
  /** exclusive */
  until?: Date;
}

export interface AuditRecord {
  seq: number;
  entry: AuditEntry;
  /** hex */
  leafHash: string;
  /** the entry's own signature verifies with a trusted key (the Merkle check is `verify`) */
  signatureValid: boolean;
}

/** Access to the versions of an object (S3 versioning). */
export interface ObjectVersions {
  /** every version of the key, newest first */
  list(key: string): Promise<Array<{ versionId: string; latest: boolean; deleteMarker: boolean }>>;
  get(key: string, versionId: string): Promise<Buffer>;
}

/** At most this many damaged entries are searched for a retained original. */
const MAX_VERSION_LOOKUPS = 100;

export class AuditLogError extends Error {
  override name = 'AuditLogError';
}

const SEQ_DIGITS = 12;
const MAX_SEQ = 10 ** SEQ_DIGITS - 1;
const MAX_APPEND_ATTEMPTS = 1000;
/** checkpoints read and checked at a time by verify */
const VERIFY_BATCH = 256;
const pad = (n: number) => String(n).padStart(SEQ_DIGITS, '0');
export const entryKey = (seq: number) => `entries/${pad(seq)}`;
export const checkpointKey = (size: number) => `checkpoints/${pad(size)}`;
export const proofKey = (size: number) => `proofs/${pad(size)}`;

// ---- proof objects ---------------------------------------------------------------------

interface ProofObject {
  size: number;
  from: number;
  leaves: Hash[];
  consistency: Hash[];
  frontier: Hash[];
}

function encodeProof(p: ProofObject): Buffer {
  const b64 = (hs: Hash[]) => hs.map((h) => h.toString('base64'));
  return Buffer.from(
    JSON.stringify({ v: 1, size: p.size, from: p.from, leaves: b64(p.leaves), consistency: b64(p.consistency), frontier: b64(p.frontier) }),
    'utf8',
  );
}

function decodeProof(bytes: Uint8Array): ProofObject | string {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch {
    return 'not JSON';
  }
  const hashes = (v: unknown): Hash[] | undefined => {
    if (!Array.isArray(v)) return undefined;
    const out: Hash[] = [];
    for (const x of v) {
      if (typeof x !== 'string') return undefined;
      const b = Buffer.from(x, 'base64');
      if (b.length !== HASH_SIZE || b.toString('base64') !== x) return undefined;
      out.push(b);
    }
    return out;
  };
  const size = j?.size;
  const from = j?.from;
  const leaves = hashes(j?.leaves);
  const consistency = hashes(j?.consistency);
  const frontier = hashes(j?.frontier);
  if (j?.v !== 1 || !Number.isSafeInteger(size) || !Number.isSafeInteger(from) || !leaves || !consistency || !frontier) return 'not a proof object';
  const p = { size: size as number, from: from as number, leaves, consistency, frontier };
  if (p.from < 0 || p.from >= p.size || p.leaves.length !== p.size - p.from) return 'proof object leaves do not span from..size';
  return p;
}

function parseNumberedKey(key: string, dir: string): number | undefined {
  const rest = key.slice(dir.length);
  return new RegExp(`^[0-9]{${SEQ_DIGITS}}$`).test(rest) ? Number(rest) : undefined;
}

/** Consecutive numbers as ranges: [1,2,3,7] → [[1,3],[7,7]]. */
function ranges(nums: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const n of [...nums].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else out.push([n, n]);
  }
  return out;
}

const span = (a: number, b: number) => (a === b ? `entry ${a}` : `entries ${a}–${b}`);

// ---------------------------------------------------------------------------------------

interface Sealed {
  size: number;
  root: Hash;
  frontier: Hash[];
}

/** What verify keeps of each entry (not the entry itself: logs are long). */
interface StoredEntry {
  leaf: Hash;
  /** parsed, and its own signature verifies with a trusted key */
  valid: boolean;
  /** the seq the entry says it has */
  claimedSeq?: number;
  problem?: string;
}

export class AuditLog implements AuditSink {
  readonly store: ObjectStore;
  readonly origin: string;
  /** base64 raw Ed25519 public keys this log trusts */
  readonly trustedKeys: readonly string[];
  readonly #key?: SigningKey;
  private readonly lock: AuditLock | null;
  private readonly logger?: AuditLogOptions['logger'];
  private readonly readConcurrency: number;
  private readonly now: () => Date;
  private readonly versions?: ObjectVersions;
  /** newest checkpoint this instance knows to be valid (appenders) */
  private sealed: Sealed | null = null;
  /** first sequence number that may be free */
  private next = 0;
  /** appends of this instance run one at a time */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(opts: AuditLogOptions) {
    this.store = opts.store;
    this.origin = opts.origin;
    this.#key = opts.signingKey;
    const keys = new Set(opts.trustedKeys ?? []);
    if (opts.signingKey) keys.add(opts.signingKey.publicKey);
    this.trustedKeys = [...keys];
    this.lock = opts.lock ?? null;
    this.logger = opts.logger;
    this.readConcurrency = Math.max(1, opts.readConcurrency ?? 16);
    this.now = opts.now ?? (() => new Date());
    this.versions = opts.versions;
    // Fail early on a bad origin (it is the note key name).
    if (!/^[^\s+]+$/u.test(this.origin)) throw new AuditLogError(`invalid audit log origin ${JSON.stringify(this.origin)}: no spaces or '+'`);
  }

  // ---- appending -------------------------------------------------------------------------

  /** AuditSink: append and forget the position. */
  async record(entry: AuditEntryInput): Promise<void> {
    await this.append(entry);
  }

  /**
   * Append an entry and seal it with a signed checkpoint. Resolves once both
   * are stored; the entry's sequence number is its position in the log.
   */
  async append(input: AuditEntryInput): Promise<AppendResult> {
    const fields = parseEntryInput(input);
    const key = this.#key;
    if (!key) throw new AuditLogError('this audit log has no signing key (audit.signingKey): it can be read and verified, not appended to');
    const run = this.chain.then(async () => {
      const sealed = await this.loadSealed();
      let seq = await this.firstFree(Math.max(this.next, sealed.size));
      let bytes: Buffer;
      for (let attempt = 1; ; attempt++) {
        if (seq > MAX_SEQ) throw new AuditLogError(`the audit log is full (${MAX_SEQ + 1} entries)`);
        bytes = encodeEntry(fields, seq, key, { now: this.now() });
        try {
          await this.store.put(entryKey(seq), bytes, { ifNoneMatch: true, contentType: 'application/json', ...this.lockOptions() });
          break;
        } catch (err) {
          if (!(err instanceof ObjectExistsError) || attempt >= MAX_APPEND_ATTEMPTS) throw err;
          seq = await this.firstFree(seq + 1); // another appender took it
        }
      }
      this.next = seq + 1;
      const leaf = leafHash(bytes);
      await this.seal(seq, leaf, key);
      return { seq, leafHash: leaf.toString('hex'), checkpoint: seq + 1 };
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private lockOptions(): Pick<PutOptions, 'retention'> {
    if (!this.lock) return {};
    return { retention: { mode: this.lock.mode, until: new Date(this.now().getTime() + this.lock.retentionMs) } };
  }

  private async exists(key: string): Promise<boolean> {
    return (await this.store.head(key)) !== null;
  }

  /** The first free sequence number at or after `start` (entries are contiguous: gallop, then bisect). */
  private async firstFree(start: number): Promise<number> {
    if (!(await this.exists(entryKey(start)))) return start;
    let lo = start; // exists
    let step = 1;
    let hi = start + step;
    while (await this.exists(entryKey(hi))) {
      lo = hi;
      step *= 2;
      hi = start + step;
    }
    while (hi - lo > 1) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (await this.exists(entryKey(mid))) lo = mid;
      else hi = mid;
    }
    return hi;
  }

  /** Read checkpoint `size` and its proof object; null unless both are present and valid. */
  private async readSealed(size: number): Promise<Sealed | null> {
    try {
      const [noteBytes, proofBytes] = await Promise.all([this.store.get(checkpointKey(size)), this.store.get(proofKey(size))]);
      const { checkpoint } = verifyCheckpoint(new TextDecoder('utf-8', { fatal: true }).decode(noteBytes), this.origin, this.trustedKeys);
      const proof = decodeProof(proofBytes);
      if (checkpoint.size !== size || typeof proof === 'string' || proof.size !== size) return null;
      if (proof.frontier.length !== frontierSizes(size).length || !frontierRoot(proof.frontier).equals(checkpoint.rootHash)) return null;
      return { size, root: checkpoint.rootHash, frontier: proof.frontier };
    } catch (err) {
      if (err instanceof ObjectNotFoundError || err instanceof NoteError || err instanceof TypeError) return null;
      throw err;
    }
  }

  /** The newest valid checkpoint (listed once per instance, then kept up to date by appends). */
  private async loadSealed(): Promise<Sealed> {
    if (this.sealed) return this.sealed;
    const sizes: number[] = [];
    for await (const o of this.store.list('checkpoints/')) {
      const n = parseNumberedKey(o.key, 'checkpoints/');
      if (n !== undefined) sizes.push(n);
    }
    sizes.sort((a, b) => b - a);
    for (const size of sizes) {
      const s = await this.readSealed(size);
      if (s) {
        this.sealed = s;
        return s;
      }
      this.logger?.warn({ checkpoint: size, log: this.store.location }, 'audit checkpoint does not verify with the configured keys; sealing from an earlier one');
    }
    this.sealed = { size: 0, root: EMPTY_ROOT, frontier: [] };
    return this.sealed;
  }

  /** Write the checkpoint of size seq+1 (and its proof), from the newest checkpoint known. */
  private async seal(seq: number, ownLeaf: Hash, key: SigningKey): Promise<void> {
    let base = this.sealed!;
    if (base.size < seq) {
      // Others appended since; the checkpoint right before our entry saves reading their entries.
      base = (await this.readSealed(seq)) ?? base;
    }
    const m = base.size;
    const size = seq + 1;
    const others = await this.readEntries(m, seq);
    const leaves = [...others, ownLeaf];
    let frontier = base.frontier;
    leaves.forEach((l, i) => (frontier = frontierPush(frontier, m + i, l)));
    const root = frontierRoot(frontier);
    const proof: ProofObject = { size, from: m, leaves, consistency: consistencyProofFromFrontier(m, base.frontier, leaves), frontier };
    try {
      await this.store.put(proofKey(size), encodeProof(proof), { ifNoneMatch: true, contentType: 'application/json', ...this.lockOptions() });
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err;
      // Another appender sealed this size from another base: fine if it is the same tree.
      const other = decodeProof(await this.store.get(proofKey(size)));
      if (typeof other === 'string' || !frontierRoot(other.frontier).equals(root)) {
        throw new AuditLogError(`${this.store.location}/${proofKey(size)} describes a different tree than entries 0–${seq}: the log has been tampered with; run lifeline audit verify`);
      }
    }
    const note = signCheckpoint({ origin: this.origin, size, rootHash: root }, key);
    try {
      await this.store.put(checkpointKey(size), Buffer.from(note, 'utf8'), { ifNoneMatch: true, contentType: 'text/plain; charset=utf-8', ...this.lockOptions() });
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err;
      const other = await this.readSealed(size);
      if (!other || !other.root.equals(root)) {
        throw new AuditLogError(`${this.store.location}/${checkpointKey(size)} holds another root than entries 0–${seq}: the log has been tampered with; run lifeline audit verify`);
      }
    }
    if (!this.sealed || size > this.sealed.size) this.sealed = { size, root, frontier };
  }

  /** Leaf hashes of entries [from, to), which must all exist (written by other appenders). */
  private async readEntries(from: number, to: number): Promise<Hash[]> {
    const limit = pLimit(this.readConcurrency);
    return Promise.all(
      Array.from({ length: to - from }, (_, i) =>
        limit(async () => {
          const seq = from + i;
          let bytes: Buffer;
          try {
            bytes = await this.store.get(entryKey(seq));
          } catch (err) {
            if (err instanceof ObjectNotFoundError) {
              throw new AuditLogError(`audit entry ${seq} is missing below newer entries (${this.store.location}): the log has been tampered with; run lifeline audit verify`);
            }
            throw err;
          }
          const d = decodeEntry(bytes, this.trustedKeys);
          if (!d.ok || !d.signatureValid || d.entry.seq !== seq) {
            this.logger?.warn(
              { seq, log: this.store.location, problem: d.ok ? (d.problem ?? `it says it is entry ${d.entry.seq}`) : d.problem },
              'sealing an audit entry that is not validly signed by a trusted key; lifeline audit verify will report it',
            );
          }
          return leafHash(bytes);
        }),
      ),
    );
  }

  // ---- reading ---------------------------------------------------------------------------

  private async listNumbered(dir: string, unexpected: AuditWarning[]): Promise<number[]> {
    const out: number[] = [];
    for await (const o of this.store.list(dir)) {
      const n = parseNumberedKey(o.key, dir);
      if (n === undefined) unexpected.push({ kind: 'unexpected-object', key: o.key, message: `unexpected object ${o.key} (ignored)` });
      else out.push(n);
    }
    return out.sort((a, b) => a - b);
  }

  private async readMany<T>(keys: number[], keyOf: (n: number) => string, parse: (b: Buffer, n: number) => T): Promise<Map<number, T>> {
    const limit = pLimit(this.readConcurrency);
    const out = new Map<number, T>();
    await Promise.all(
      keys.map((n) =>
        limit(async () => {
          try {
            out.set(n, parse(await this.store.get(keyOf(n)), n));
          } catch (err) {
            if (!(err instanceof ObjectNotFoundError)) throw err; // deleted since listed: treated as absent
          }
        }),
      ),
    );
    return out;
  }

  /** Entries matching the filter, oldest first (their own signatures checked; run verify for the log's integrity). */
  async query(filter: AuditQuery = {}): Promise<AuditRecord[]> {
    const seqs = await this.listNumbered('entries/', []);
    const entries = await this.readMany(seqs, entryKey, (b) => ({ leaf: leafHash(b), decoded: decodeEntry(b, this.trustedKeys) }));
    const out: AuditRecord[] = [];
    for (const seq of seqs) {
      const e = entries.get(seq);
      if (!e || !e.decoded.ok) continue;
      const entry = e.decoded.entry;
      if (filter.asset !== undefined && entry.asset !== filter.asset) continue;
      if (filter.tenant !== undefined && entry.tenant !== filter.tenant) continue;
      if (filter.type !== undefined && entry.type !== filter.type) continue;
      if (filter.snapshot !== undefined && !(entry.snapshot ?? '').startsWith(filter.snapshot)) continue;
      const t = Date.parse(entry.time);
      if (filter.since && t < filter.since.getTime()) continue;
      if (filter.until && t >= filter.until.getTime()) continue;
      out.push({ seq, entry, leafHash: e.leaf.toString('hex'), signatureValid: e.decoded.signatureValid && entry.seq === seq });
    }
    return out;
  }

  // ---- verification ----------------------------------------------------------------------

  /** For single damaged entries: is the sealed original still stored as an older version? */
  private async findRetainedVersions(problems: AuditProblem[], sealed: readonly Hash[]): Promise<void> {
    const versions = this.versions;
    if (!versions) return;
    const damaged = problems
      .filter((p) => (p.kind === 'modified' || p.kind === 'reordered' || p.kind === 'deleted' || p.kind === 'truncated') && p.seq !== undefined && (p.lastSeq ?? p.seq) === p.seq && p.seq < sealed.length)
      .slice(0, MAX_VERSION_LOOKUPS);
    const limit = pLimit(this.readConcurrency);
    await Promise.all(
      damaged.map((p) =>
        limit(async () => {
          try {
            for (const v of await versions.list(entryKey(p.seq!))) {
              if (v.latest || v.deleteMarker) continue;
              if (leafHash(await versions.get(entryKey(p.seq!), v.versionId)).equals(sealed[p.seq!]!)) {
                p.retainedVersion = v.versionId;
                p.message += `; the sealed original is still stored as version ${v.versionId}`;
                return;
              }
            }
          } catch (err) {
            this.logger?.warn({ seq: p.seq, error: (err as Error).message }, 'could not look for the retained original of a damaged audit entry');
          }
        }),
      ),
    );
  }

  /**
   * Check the whole log: every checkpoint's signature, that each checkpoint
   * extends the earlier ones (consistency proofs and the leaf hashes it
   * adds), then every entry against the leaf hash the checkpoints sealed at
   * its position, and the entries after the newest checkpoint. With a
   * witness, also that the log still contains the witnessed checkpoint.
   */
  async verify(opts: AuditVerifyOptions = {}): Promise<AuditVerifyReport> {
    const problems: AuditProblem[] = [];
    const warnings: AuditWarning[] = [];
    const [entrySeqs, cpSizes, proofSizes] = await Promise.all([
      this.listNumbered('entries/', warnings),
      this.listNumbered('checkpoints/', warnings),
      this.listNumbered('proofs/', warnings),
    ]);
    const haveCheckpoint = new Set(cpSizes);
    const haveProof = new Set(proofSizes);
    const entries = await this.readMany(entrySeqs, entryKey, (b): StoredEntry => {
      const d = decodeEntry(b, this.trustedKeys);
      return d.ok ? { leaf: leafHash(b), valid: d.signatureValid, claimedSeq: d.entry.seq, problem: d.problem } : { leaf: leafHash(b), valid: false, problem: d.problem };
    });

    // 2. Each checkpoint must extend the history the earlier ones established.
    const sealedLeaves: Hash[] = []; // leaf hashes authenticated by accepted checkpoints
    const sealedBy: number[] = []; // which checkpoint first sealed each
    let frontier: Hash[] = [];
    const accepted = new Map<number, Hash>([[0, EMPTY_ROOT]]);
    // (assigned in check(); a holder, so that TypeScript does not narrow it to null)
    const newest: { cp: { size: number; root: Hash; note: string } | null } = { cp: null };
    const reportedDeleted = new Set<number>();
    const storedLeaves = (from: number, to: number): Hash[] | null => {
      const out: Hash[] = [];
      for (let i = from; i < to; i++) {
        const e = entries.get(i);
        if (!e) return null;
        out.push(e.leaf);
      }
      return out;
    };
    const utf8 = (b: Buffer) => new TextDecoder('utf-8', { fatal: true }).decode(b);
    const check = (size: number, bytes: Buffer, proof: ProofObject | string | undefined): void => {
      // 1. The checkpoint's signature.
      let cp: { root: Hash; note: string };
      try {
        const note = utf8(bytes);
        const { checkpoint } = verifyCheckpoint(note, this.origin, this.trustedKeys);
        if (checkpoint.size !== size) {
          problems.push({ kind: 'inconsistent-checkpoint', checkpoint: size, message: `checkpoint ${size} is a copy of the checkpoint of size ${checkpoint.size}` });
          return;
        }
        cp = { root: checkpoint.rootHash, note };
      } catch (err) {
        const why = err instanceof NoteError ? err.message : 'not UTF-8 text';
        problems.push({ kind: 'bad-signature', checkpoint: size, message: `checkpoint ${size} is not a valid checkpoint of this log signed by a trusted key: ${why}` });
        return;
      }
      // 2. It must extend the history the earlier checkpoints established.
      const p = sealedLeaves.length;
      let added: Hash[]; // leaf hashes [p, size)
      let why: string | undefined;
      if (proof !== undefined && typeof proof !== 'string' && proof.size === size) {
        if (proof.from > p) {
          if (proof.from > 0 && !haveCheckpoint.has(proof.from) && !reportedDeleted.has(proof.from)) {
            reportedDeleted.add(proof.from);
            problems.push({ kind: 'deleted', checkpoint: proof.from, message: `checkpoint ${proof.from} is missing (checkpoint ${size} extends it)` });
          }
          const fill = storedLeaves(p, proof.from);
          if (!fill) {
            problems.push({
              kind: 'inconsistent-checkpoint',
              checkpoint: size,
              message: `checkpoint ${size} extends checkpoint ${proof.from}, which is missing or invalid, and entries ${p}–${proof.from - 1} are not all there to check it otherwise`,
            });
            return;
          }
          added = [...fill, ...proof.leaves];
        } else {
          const conflict = proof.leaves.findIndex((l, i) => proof.from + i < p && !l.equals(sealedLeaves[proof.from + i]!));
          if (conflict >= 0) {
            const at = proof.from + conflict;
            problems.push({
              kind: 'inconsistent-checkpoint',
              checkpoint: size,
              seq: at,
              message: `checkpoint ${size} is not consistent with checkpoint ${sealedBy[at]}: they disagree about entry ${at} (a forked history)`,
            });
            return;
          }
          added = proof.leaves.slice(p - proof.from);
          if (proof.from > 0 && accepted.has(proof.from) && !verifyConsistency(proof.from, size, accepted.get(proof.from)!, cp.root, proof.consistency)) {
            why = `its consistency proof from checkpoint ${proof.from} does not verify`;
          }
        }
      } else {
        if (proof === undefined) problems.push({ kind: 'deleted', checkpoint: size, message: `the proof object of checkpoint ${size} is missing` });
        else problems.push({ kind: 'inconsistent-checkpoint', checkpoint: size, message: `the proof object of checkpoint ${size} is damaged (${typeof proof === 'string' ? proof : `it is for size ${proof.size}`})` });
        const fill = storedLeaves(p, size);
        if (!fill) return; // later checkpoints may still cover these entries
        added = fill;
      }
      let next = frontier;
      added.forEach((l, i) => (next = frontierPush(next, p + i, l)));
      if (!why && !frontierRoot(next).equals(cp.root)) why = 'the leaf hashes it adds do not produce its root';
      if (why) {
        problems.push({ kind: 'inconsistent-checkpoint', checkpoint: size, message: `checkpoint ${size} is not consistent with the earlier checkpoints: ${why}` });
        return;
      }
      if (proof !== undefined && typeof proof !== 'string' && (proof.frontier.length !== next.length || proof.frontier.some((h, i) => !h.equals(next[i]!)))) {
        warnings.push({ kind: 'frontier', checkpoint: size, message: `the frontier stored with checkpoint ${size} is wrong (appenders will not use it)` });
      }
      for (let i = 0; i < added.length; i++) {
        sealedLeaves.push(added[i]!);
        sealedBy.push(size);
      }
      frontier = next;
      accepted.set(size, cp.root);
      newest.cp = { size, root: cp.root, note: cp.note };
    };
    // Checkpoints and their proofs are read and checked in order, a batch at a time.
    for (let b = 0; b < cpSizes.length; b += VERIFY_BATCH) {
      const batch = cpSizes.slice(b, b + VERIFY_BATCH);
      const [notes, proofs] = await Promise.all([
        this.readMany(batch, checkpointKey, (x) => x),
        this.readMany(batch.filter((n) => haveProof.has(n)), proofKey, (x) => decodeProof(x)),
      ]);
      for (const size of batch) {
        const bytes = notes.get(size);
        if (bytes) check(size, bytes, proofs.get(size));
      }
    }

    // 3. Every sealed entry against the leaf hash sealed at its position.
    const sealedCount = sealedLeaves.length;
    const sealedAt = new Map(sealedLeaves.map((h, i) => [h.toString('hex'), i]));
    const missing: number[] = [];
    for (let seq = 0; seq < sealedCount; seq++) {
      const e = entries.get(seq);
      if (!e) {
        missing.push(seq);
        continue;
      }
      if (!e.leaf.equals(sealedLeaves[seq]!)) {
        const elsewhere = sealedAt.get(e.leaf.toString('hex'));
        if (elsewhere !== undefined) {
          problems.push({ kind: 'reordered', seq, foundSeq: elsewhere, message: `entry ${seq} holds entry ${elsewhere} (entries were moved)` });
        } else {
          problems.push({
            kind: 'modified',
            seq,
            message: `entry ${seq} differs from what checkpoint ${sealedBy[seq]} sealed${e.valid ? '' : ` (${e.problem ?? 'unsigned'})`}`,
          });
        }
        continue;
      }
      if (!e.valid) {
        problems.push({ kind: 'bad-signature', seq, message: `entry ${seq} was sealed but is not validly signed by a trusted key: ${e.problem ?? 'invalid'}` });
      } else if (e.claimedSeq !== seq) {
        problems.push({ kind: 'reordered', seq, foundSeq: e.claimedSeq, message: `entry ${seq} was sealed at the wrong position (it says it is entry ${e.claimedSeq})` });
      }
    }
    const newestStored = entrySeqs.length ? entrySeqs[entrySeqs.length - 1]! : -1;
    for (const [a, b] of ranges(missing)) {
      if (b === sealedCount - 1 && newestStored < a) {
        problems.push({ kind: 'truncated', seq: a, lastSeq: b, message: `the log was truncated: ${span(a, b)} sealed by checkpoint ${sealedCount} ${a === b ? 'is' : 'are'} gone` });
      } else {
        problems.push({ kind: 'deleted', seq: a, lastSeq: b, message: `${span(a, b)} sealed by the checkpoints ${a === b ? 'is' : 'are'} missing` });
      }
    }

    await this.findRetainedVersions(problems, sealedLeaves);

    // 4. Entries after the newest checkpoint: not sealed yet (a crashed appender, or someone else's).
    const unsealed: number[] = [];
    const tail = entrySeqs.filter((s) => s >= sealedCount);
    const gaps: number[] = [];
    for (let s = sealedCount, i = 0; i < tail.length; s++) {
      if (tail[i] !== s) {
        gaps.push(s);
        continue;
      }
      i++;
      const e = entries.get(s);
      if (!e) continue;
      if (!e.valid) {
        problems.push({ kind: 'bad-signature', seq: s, message: `entry ${s} (not sealed yet) is not validly signed by a trusted key: ${e.problem ?? 'invalid'}` });
      } else if (e.claimedSeq !== s) {
        problems.push({ kind: 'reordered', seq: s, foundSeq: e.claimedSeq, message: `entry ${s} (not sealed yet) says it is entry ${e.claimedSeq}` });
      } else {
        unsealed.push(s);
      }
    }
    for (const [a, b] of ranges(gaps)) problems.push({ kind: 'deleted', seq: a, lastSeq: b, message: `${span(a, b)} ${a === b ? 'is' : 'are'} missing below newer entries` });
    for (const [a, b] of ranges(unsealed)) {
      warnings.push({ kind: 'unsealed', seq: a, lastSeq: b, message: `${span(a, b)} ${a === b ? 'is' : 'are'} not sealed by a checkpoint yet (the next append seals ${a === b ? 'it' : 'them'})` });
    }

    // 5. Witnesses: a checkpoint seen before must still be part of the log.
    const witnesses: AuditVerifyReport['witnesses'] = [];
    for (const w of opts.witnesses ?? []) {
      let size = w.size;
      let root: Hash | undefined;
      if (w.note !== undefined) {
        try {
          const { checkpoint } = verifyCheckpoint(w.note, this.origin, this.trustedKeys);
          size = checkpoint.size;
          root = checkpoint.rootHash;
        } catch (err) {
          problems.push({ kind: 'bad-signature', message: `the witness checkpoint (${w.source}) is not a checkpoint of this log signed by a trusted key: ${(err as Error).message}` });
        }
      }
      if (size !== undefined) {
        let ok = true;
        if (size > sealedCount) {
          ok = false;
          problems.push({
            kind: 'truncated',
            seq: sealedCount,
            lastSeq: size - 1,
            message: `the log was truncated: its newest valid checkpoint has size ${sealedCount}, but ${w.source} saw size ${size}`,
          });
        } else if (root && size > 0) {
          const proof = consistencyProof(size, sealedCount, sealedLeaves);
          if (!verifyConsistency(size, sealedCount, root, newest.cp!.root, proof)) {
            ok = false;
            problems.push({
              kind: 'inconsistent-checkpoint',
              checkpoint: size,
              message: `the log is not consistent with the checkpoint of size ${size} seen by ${w.source}: its history was rewritten`,
            });
          }
        }
        witnesses.push({ size, source: w.source, ok });
      }
    }

    problems.sort((a, b) => (a.seq ?? a.checkpoint ?? -1) - (b.seq ?? b.checkpoint ?? -1));
    return {
      ok: problems.length === 0,
      origin: this.origin,
      location: this.store.location,
      checkpoint: newest.cp ? { size: newest.cp.size, rootHash: newest.cp.root.toString('base64'), note: newest.cp.note } : null,
      entries: entrySeqs.length,
      checkpoints: cpSizes.length,
      problems,
      warnings,
      witnesses,
    };
  }
}
