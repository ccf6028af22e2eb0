/**
 * The tamper alarm's listener (`lifeline alarm watch`): MinIO's bucket
 * notification stream (the `minio` client's listenBucketNotification, a MinIO
 * extension that needs no notification target) on every watched bucket; each
 * object event is judged by alarm/tamper.ts, findings are coalesced into one
 * burst per bucket, and each burst is handed to `report` (which opens or joins
 * the storage-tamper incident). A broken stream reconnects with backoff; a
 * report that fails is retried, never dropped while the process runs.
 *
 * Readiness: after (re)connecting, the watcher writes a probe object under
 * `<storage.prefix>.lifeline-alarm/` and counts the bucket as watched once the
 * probe's own event comes back through the stream.
 *
 * Pumping: current MinIO builds do not flush the listen stream after each
 * event (their response writer wrapper hides http.Flusher), so an event sits in
 * the server's ~4 KiB response buffer until more events push it out. The
 * watcher therefore also listens to s3:ObjectAccessed:Head and sends a few HEAD
 * requests for its pump object every PUMP_EVERY_MS: their events fill the
 * buffer, and a tampering event arrives within about a second. MinIO may also
 * deliver an event twice; events are de-duplicated by id.
 */
import { randomBytes } from 'node:crypto';
import { DeleteObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Client as MinioClient } from 'minio';
import type { ResolvedStorage } from '../config/storage';
import type { Logger } from '../logging/logger';
import { createS3Client } from '../activities/s3';
import {
  BurstCoalescer,
  classifyEvent,
  describeTamper,
  locateKey,
  needsPriorVersionCheck,
  parseRecord,
  principalLabel,
  replacedLiveVersion,
  type TamperBurst,
  type TenantPrefix,
  type WatchedBucket,
} from './tamper';

const EVENTS = ['s3:ObjectCreated:*', 's3:ObjectRemoved:*', 's3:ObjectAccessed:Head'];
/** HEAD requests per pump: their events (~700 bytes each) push a buffered event out of MinIO's ~4 KiB response buffer. */
const PUMP_HEADS = 8;
const PUMP_EVERY_MS = 1000;
/** event ids remembered for de-duplication */
const RECENT_IDS = 20_000;

export interface TamperWatcherOptions {
  storage: ResolvedStorage;
  buckets: WatchedBucket[];
  tenants: TenantPrefix[];
  own: Set<string>;
  logger: Logger;
  /** open or join the incident for a burst; a rejection is retried */
  report: (burst: TamperBurst) => Promise<void>;
  quietMs: number;
  maxMs: number;
  /** how often bursts are checked for their end (default 500 ms) */
  tickMs?: number;
  /** first reconnect delay, doubled up to maxBackoffMs (defaults 1 s, 60 s) */
  backoffMs?: number;
  maxBackoffMs?: number;
}

type Poller = ReturnType<MinioClient['listenBucketNotification']>;

interface BucketState {
  watched: WatchedBucket;
  poller?: Poller;
  backoffMs: number;
  ready: boolean;
  probeKey?: string;
  probeTimer?: NodeJS.Timeout;
  restartTimer?: NodeJS.Timeout;
  /** an object the watcher HEADs to push events through the stream (null: none it can read) */
  pumpKey?: string | null;
}

function minioClient(storage: ResolvedStorage): MinioClient {
  if (!storage.endpoint) throw new Error('the tamper alarm needs an S3 endpoint (MinIO)');
  const url = new URL(storage.endpoint);
  const useSSL = url.protocol === 'https:';
  return new MinioClient({
    endPoint: url.hostname,
    port: url.port ? Number(url.port) : useSSL ? 443 : 80,
    useSSL,
    accessKey: storage.credentials.accessKeyId,
    secretKey: storage.credentials.secretAccessKey,
    region: storage.region,
    pathStyle: storage.forcePathStyle,
  });
}

export class TamperWatcher {
  private readonly minio: MinioClient;
  private readonly s3: S3Client;
  private readonly coalescer: BurstCoalescer;
  private readonly states = new Map<string, BucketState>();
  private readonly unsent: TamperBurst[] = [];
  private readonly log: Logger;
  private tick?: NodeJS.Timeout;
  private sending = false;
  private sendBackoffMs: number;
  private nextSendAt = 0;
  private stopped = false;
  private readyWaiters: Array<() => void> = [];
  private readonly seen = new Set<string>();
  private pumpTimer?: NodeJS.Timeout;
  private pumping = false;
  /** bursts reported so far */
  reported = 0;

  constructor(private readonly opts: TamperWatcherOptions) {
    this.minio = minioClient(opts.storage);
    this.s3 = createS3Client(opts.storage);
    this.coalescer = new BurstCoalescer({ quietMs: opts.quietMs, maxMs: opts.maxMs });
    this.log = opts.logger.child({ component: 'tamper-alarm' });
    this.sendBackoffMs = opts.backoffMs ?? 1000;
  }

  /** Starts listening on every bucket that exists; returns the buckets watched. Buckets missing are reported, not watched. */
  async start(): Promise<{ watching: string[]; missing: string[] }> {
    const watching: string[] = [];
    const missing: string[] = [];
    for (const w of this.opts.buckets) {
      try {
        await this.s3.send(new HeadBucketCommand({ Bucket: w.bucket }));
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404) {
          missing.push(w.bucket);
          this.log.warn({ bucket: w.bucket, role: w.role }, 'bucket does not exist; not watched');
          continue;
        }
        throw err;
      }
      const st: BucketState = { watched: w, backoffMs: this.opts.backoffMs ?? 1000, ready: false };
      st.pumpKey = await this.pumpTarget(w);
      this.states.set(w.bucket, st);
      this.listen(st);
      watching.push(w.bucket);
    }
    this.tick = setInterval(() => void this.onTick(), this.opts.tickMs ?? 500);
    this.pumpTimer = setInterval(() => void this.pump(), PUMP_EVERY_MS);
    return { watching, missing };
  }

  /** The pump object: our own under the probe folder, or, without write access, the first tenant `config` object. */
  private async pumpTarget(w: WatchedBucket): Promise<string | null> {
    const own = `${w.probePrefix}pump`;
    try {
      await this.s3.send(new HeadObjectCommand({ Bucket: w.bucket, Key: own }));
      return own;
    } catch {
      try {
        await this.s3.send(new PutObjectCommand({ Bucket: w.bucket, Key: own, Body: 'lifeline tamper alarm pump\n', ChecksumAlgorithm: 'SHA256' }));
        return own;
      } catch {
        for (const t of w.role === 'repository' ? this.opts.tenants : []) {
          const key = `${t.prefix}config`;
          if (await this.s3.send(new HeadObjectCommand({ Bucket: w.bucket, Key: key })).then(() => true, () => false)) return key;
        }
        this.log.warn({ bucket: w.bucket }, 'no object to pump the notification stream with; events may arrive late on MinIO');
        return null;
      }
    }
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.stopped) return;
    this.pumping = true;
    try {
      for (const st of this.states.values()) {
        if (!st.poller || !st.pumpKey) continue;
        for (let i = 0; i < PUMP_HEADS; i++) await this.s3.send(new HeadObjectCommand({ Bucket: st.watched.bucket, Key: st.pumpKey })).catch(() => undefined);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** True the first time an event id is seen. */
  private firstTime(id: string): boolean {
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    if (this.seen.size > RECENT_IDS) this.seen.delete(this.seen.values().next().value!);
    return true;
  }

  /** Resolves once every watched bucket's stream has delivered its probe (or within timeoutMs: false). */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.allReady()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.allReady()), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private allReady(): boolean {
    return [...this.states.values()].every((s) => s.ready);
  }

  private listen(st: BucketState): void {
    if (this.stopped) return;
    const bucket = st.watched.bucket;
    const poller = this.minio.listenBucketNotification(bucket, '', '', EVENTS);
    st.poller = poller;
    st.ready = false;
    poller.on('notification', (rec: unknown) => {
      void this.onRecord(st, rec).catch((err: Error) => this.log.error({ bucket, err: err.message }, 'bucket event could not be judged'));
    });
    poller.on('error', (err: unknown) => {
      if (st.poller !== poller) return;
      poller.stop();
      st.poller = undefined;
      st.ready = false;
      const delay = st.backoffMs;
      st.backoffMs = Math.min(st.backoffMs * 2, this.opts.maxBackoffMs ?? 60_000);
      this.log.warn({ bucket, err: (err as Error)?.message ?? String(err), retryInMs: delay }, 'bucket notification stream broke; reconnecting');
      clearTimeout(st.restartTimer);
      st.restartTimer = setTimeout(() => this.listen(st), delay);
    });
    poller.start();
    // Probe until the stream carries our own event: then it is really listening.
    const probe = async (attempt: number) => {
      if (this.stopped || st.poller !== poller || st.ready) return;
      const key = `${st.watched.probePrefix}probe-${process.pid}-${randomBytes(6).toString('hex')}`;
      st.probeKey = key;
      try {
        await this.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'lifeline tamper alarm probe\n', ChecksumAlgorithm: 'SHA256' }));
      } catch (err) {
        // A watcher without write access cannot probe: trust the stream once it is open.
        this.log.warn({ bucket, err: (err as Error).message }, 'cannot write the probe object; assuming the stream is listening');
        this.markReady(st);
        return;
      }
      st.probeTimer = setTimeout(() => void probe(attempt + 1), Math.min(2000 * attempt, 10_000));
    };
    setTimeout(() => void probe(1), 200);
  }

  private markReady(st: BucketState): void {
    if (st.ready) return;
    st.ready = true;
    st.backoffMs = this.opts.backoffMs ?? 1000;
    clearTimeout(st.probeTimer);
    this.log.info({ bucket: st.watched.bucket, role: st.watched.role }, 'watching bucket');
    if (this.allReady()) for (const w of this.readyWaiters.splice(0)) w();
  }

  private async onRecord(st: BucketState, rec: unknown): Promise<void> {
    const ev = parseRecord(rec);
    if (!ev || ev.bucket !== st.watched.bucket || ev.eventName.startsWith('s3:ObjectAccessed:')) return;
    if (!this.firstTime(ev.id)) return;
    const loc = locateKey(ev.key, st.watched, this.opts.tenants);
    if (loc.kind === 'probe') {
      if (ev.eventName.startsWith('s3:ObjectCreated:') && ev.key === st.probeKey) {
        this.markReady(st);
        // The probe has done its job; our own delete of it is ignored like any probe event.
        await this.s3.send(new DeleteObjectCommand({ Bucket: ev.bucket, Key: ev.key })).catch(() => undefined);
      }
      return;
    }
    let hadEarlierVersion: boolean | undefined;
    if (needsPriorVersionCheck(ev, loc) && ev.versionId) hadEarlierVersion = await this.replacedLive(ev.bucket, ev.key, ev.versionId);
    const f = classifyEvent(ev, loc, { isOwn: (p) => this.opts.own.has(p), hadEarlierVersion });
    if (!f) return;
    this.coalescer.add(f, Date.now());
    this.log.warn({ bucket: f.bucket, key: f.key, kind: f.kind, tenant: f.tenant, action: f.action, principal: principalLabel(f.principal, f.own) }, 'storage tampering');
  }

  private async replacedLive(bucket: string, key: string, versionId: string): Promise<boolean | undefined> {
    const res = await this.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key, MaxKeys: 50 }));
    const all = [
      ...(res.Versions ?? []).filter((v) => v.Key === key).map((v) => ({ versionId: v.VersionId ?? '', deleteMarker: false, t: v.LastModified?.getTime() ?? 0 })),
      ...(res.DeleteMarkers ?? []).filter((d) => d.Key === key).map((d) => ({ versionId: d.VersionId ?? '', deleteMarker: true, t: d.LastModified?.getTime() ?? 0 })),
    ].sort((a, b) => b.t - a.t);
    return replacedLiveVersion(all, versionId);
  }

  private async onTick(): Promise<void> {
    this.unsent.push(...this.coalescer.due(Date.now()));
    await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.sending || !this.unsent.length || Date.now() < this.nextSendAt) return;
    this.sending = true;
    try {
      while (this.unsent.length) {
        const b = this.unsent[0]!;
        await this.opts.report(b);
        this.unsent.shift();
        this.reported++;
        this.sendBackoffMs = this.opts.backoffMs ?? 1000;
        this.log.warn({ bucket: b.bucket, count: b.count, kinds: b.kinds, actions: b.actions, principals: b.principals }, `storage tamper reported: ${describeTamper({ ...b, actions: Object.keys(b.actions) })}`);
      }
    } catch (err) {
      this.nextSendAt = Date.now() + this.sendBackoffMs;
      this.log.error({ err: (err as Error).message, retryInMs: this.sendBackoffMs, waiting: this.unsent.length }, 'could not report storage tampering; retrying');
      this.sendBackoffMs = Math.min(this.sendBackoffMs * 2, this.opts.maxBackoffMs ?? 60_000);
    } finally {
      this.sending = false;
    }
  }

  /** Stops listening and reports what is still open (one attempt). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tick);
    clearInterval(this.pumpTimer);
    for (const st of this.states.values()) {
      clearTimeout(st.probeTimer);
      clearTimeout(st.restartTimer);
      st.poller?.stop();
      st.poller = undefined;
    }
    this.unsent.push(...this.coalescer.drain());
    this.nextSendAt = 0;
    await this.flush();
    if (this.unsent.length) this.log.error({ bursts: this.unsent.length }, 'stopped with storage tampering not reported');
    this.s3.destroy();
  }
}
