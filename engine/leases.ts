/**
 * Leases of running backups (`locks/<id>`). Garbage collection never deletes a
 * condemned pack while a backup that started before the condemnation is still
 * alive, because that backup may have chosen to reuse blobs in it.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import { ObjectNotFoundError, type ObjectStore } from './backend/object-store';
import { RepositoryStateError } from './errors';

export const LEASE_TTL_MS = 5 * 60_000;

export const LeaseSchema = z
  .object({
    format: z.literal('lifeline-lease'),
    id: z.string(),
    purpose: z.string(),
    host: z.string(),
    pid: z.number().int(),
    startedAt: z.string(),
    refreshedAt: z.string(),
  })
  .strict();
export type LeaseRecord = z.infer<typeof LeaseSchema>;

export class Lease {
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh = Date.now();
  private refreshError: unknown;

  private constructor(
    private readonly store: ObjectStore,
    readonly record: LeaseRecord,
    private readonly ttlMs: number,
  ) {}

  /** Takes a new lease; `id` lets a backup that spans several processes name it after itself. */
  static async acquire(store: ObjectStore, purpose: string, opts: { ttlMs?: number; id?: string } = {}): Promise<Lease> {
    const now = new Date().toISOString();
    const record: LeaseRecord = {
      format: 'lifeline-lease',
      id: opts.id ?? randomBytes(8).toString('hex'),
      purpose,
      host: hostname(),
      pid: process.pid,
      startedAt: now,
      refreshedAt: now,
    };
    const lease = new Lease(store, record, opts.ttlMs ?? LEASE_TTL_MS);
    await lease.write();
    lease.startTimer();
    return lease;
  }

  /**
   * Continues a lease taken by an earlier process of the same backup, keeping
   * its start time (garbage collection compares tombstones with it).
   */
  static async resume(store: ObjectStore, id: string, opts: { ttlMs?: number } = {}): Promise<Lease> {
    let record: LeaseRecord;
    try {
      record = LeaseSchema.parse(JSON.parse((await store.get(`locks/${id}`)).toString('utf8')));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) {
        throw new RepositoryStateError(`backup lease ${id} no longer exists (the backup was abandoned or took too long); run the backup again`, true);
      }
      throw err;
    }
    const ttlMs = opts.ttlMs ?? LEASE_TTL_MS;
    if (Date.now() - Date.parse(record.refreshedAt) > ttlMs) {
      throw new RepositoryStateError(`backup lease ${id} lapsed at ${record.refreshedAt}; run the backup again`, true);
    }
    const lease = new Lease(store, { ...record, host: hostname(), pid: process.pid }, ttlMs);
    await lease.refresh();
    lease.startTimer();
    return lease;
  }

  private startTimer(): void {
    this.timer = setInterval(() => {
      this.refresh().catch((err: unknown) => {
        this.refreshError = err;
      });
    }, Math.max(1000, Math.floor(this.ttlMs / 3)));
    this.timer.unref();
  }

  /** Stops refreshing without releasing: the next process of the same backup resumes the lease. */
  detach(): void {
    if (this.timer) clearInterval(this.timer);
  }

  get startedAt(): Date {
    return new Date(this.record.startedAt);
  }

  private async write(): Promise<void> {
    await this.store.put(`locks/${this.record.id}`, Buffer.from(JSON.stringify(this.record)), { contentType: 'application/json' });
  }

  async refresh(): Promise<void> {
    this.record.refreshedAt = new Date().toISOString();
    await this.write();
    this.lastRefresh = Date.now();
  }

  /** A backup must not commit on a lease it may have lost: garbage collection could have ignored it. */
  assertHeld(): void {
    if (Date.now() - this.lastRefresh > this.ttlMs) {
      throw new RepositoryStateError(
        `backup lease ${this.record.id} lapsed (not refreshed for ${Math.round((Date.now() - this.lastRefresh) / 1000)} s${this.refreshError ? `: ${String(this.refreshError)}` : ''}); not committing, run the backup again`,
        false,
      );
    }
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    try {
      await this.store.delete(`locks/${this.record.id}`);
    } catch {
      // A lease left behind only delays garbage collection until it expires.
    }
  }
}

/** Leases refreshed within their TTL. */
export async function liveLeases(store: ObjectStore, ttlMs = LEASE_TTL_MS, now = Date.now()): Promise<LeaseRecord[]> {
  const out: LeaseRecord[] = [];
  for await (const obj of store.list('locks/')) {
    let rec: LeaseRecord;
    try {
      rec = LeaseSchema.parse(JSON.parse((await store.get(obj.key)).toString('utf8')));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) continue; // released meanwhile
      // Unreadable: be conservative and let it protect until it would have expired.
      const t = obj.lastModified.toISOString();
      rec = { format: 'lifeline-lease', id: obj.key, purpose: 'unreadable lease', host: '?', pid: 0, startedAt: new Date(0).toISOString(), refreshedAt: t };
    }
    if (now - Date.parse(rec.refreshedAt) <= ttlMs) out.push(rec);
  }
  return out;
}
