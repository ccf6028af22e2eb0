/**
 * Progress reporting of long activities: heartbeats on a timer (so a stalled
 * storage request does not look like a dead worker, and cancellation reaches
 * the activity), a recent rate, and throttled progress signals to the
 * workflow for its `progress` query. Details are small: counts, sizes, ids.
 */
import { Context, log } from '@temporalio/activity';
import { etaSeconds, PROGRESS_SIGNAL, type Phase, type ProgressUpdate } from '../workflows/progress';

/**
 * Storage retries seen in this process, fed by the S3 store's retry warnings
 * (see `storageRetryLogger`), so progress can say "retrying storage".
 */
const storageRetries = { at: 0, until: 0, message: '' };

/** A logger for S3 stores that records retries (for progress) and forwards every warning. */
export function storageRetryLogger(base: { warn(obj: object, msg: string): void }): { warn(obj: object, msg: string): void } {
  return {
    warn(obj: object, msg: string) {
      const o = obj as { delayMs?: number; op?: string; attempt?: number };
      if (/retrying/.test(msg)) {
        storageRetries.at = Date.now();
        // Still "retrying" until shortly after the next attempt would have happened.
        storageRetries.until = Date.now() + (o.delayMs ?? 1000) + 3000;
        storageRetries.message = `storage unavailable (${o.op ?? 'request'}, attempt ${o.attempt ?? '?'}), retrying`;
      }
      base.warn(obj, msg);
    },
  };
}

export function storageRetryState(now = Date.now()): string | undefined {
  return now < storageRetries.until ? storageRetries.message : undefined;
}

export interface ReporterOptions {
  /** operation id the workflow matches updates against */
  opId: string;
  step: number;
  phase: Phase;
  /** minimum time between progress signals to the workflow */
  signalEveryMs?: number;
  /** extra heartbeat details (resume state), merged into every heartbeat */
  details?: () => Record<string, unknown>;
}

/**
 * One activity's progress. `add` counts work; a timer heartbeats and signals.
 * `stop()` must be called (in a finally).
 */
export class ProgressReporter {
  filesDone = 0;
  bytesDone = 0;
  bytesUploaded = 0;
  filesTotal: number | undefined;
  bytesTotal: number | undefined;
  phase: Phase;
  private waiting: string | undefined;
  private readonly samples: Array<{ t: number; bytes: number }> = [];
  private readonly timer: NodeJS.Timeout;
  private lastSignal = 0;
  private lastSignalled = '';
  private readonly ctx = Context.current();

  constructor(private readonly opts: ReporterOptions) {
    this.phase = opts.phase;
    const hbMs = this.ctx.info.heartbeatTimeoutMs;
    // Heartbeat well within the timeout; the SDK throttles what it actually sends.
    const every = Math.max(250, Math.min(5000, hbMs ? Math.floor(hbMs / 4) : 5000));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref();
    this.tick();
  }

  add(w: { files?: number; bytes?: number; uploaded?: number }): void {
    this.filesDone += w.files ?? 0;
    this.bytesDone += w.bytes ?? 0;
    this.bytesUploaded += w.uploaded ?? 0;
  }

  /** Why the activity is waiting (e.g. for a checkpoint marker); undefined when working. */
  setWaiting(reason: string | undefined): void {
    this.waiting = reason;
  }

  /** Bytes per second over the last ~10 s. */
  rate(now = Date.now()): number {
    this.samples.push({ t: now, bytes: this.bytesDone });
    while (this.samples.length > 2 && now - this.samples[0]!.t > 10_000) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (now - first.t) / 1000;
    return dt >= 0.5 ? Math.max(0, Math.round((this.bytesDone - first.bytes) / dt)) : 0;
  }

  update(): ProgressUpdate {
    const retrying = this.waiting ?? storageRetryState();
    return {
      opId: this.opts.opId,
      step: this.opts.step,
      phase: this.phase,
      filesDone: this.filesDone,
      bytesDone: this.bytesDone,
      bytesPerSecond: this.rate(),
      ...(retrying ? { retrying } : {}),
      ...(this.filesTotal !== undefined ? { filesTotal: this.filesTotal } : {}),
      ...(this.bytesTotal !== undefined ? { bytesTotal: this.bytesTotal } : {}),
    };
  }

  tick(force = false): void {
    const u = this.update();
    const eta = this.bytesTotal !== undefined ? etaSeconds(this.bytesTotal, u.bytesDone, u.bytesPerSecond) : null;
    this.ctx.heartbeat({ ...u, bytesUploaded: this.bytesUploaded, etaSeconds: eta, ...this.opts.details?.() });
    const now = Date.now();
    const key = JSON.stringify([u.phase, u.filesDone, u.bytesDone, u.retrying]);
    if (!force && (now - this.lastSignal < (this.opts.signalEveryMs ?? 5000) || key === this.lastSignalled)) return;
    this.lastSignal = now;
    this.lastSignalled = key;
    this.signal(u);
  }

  private signal(u: ProgressUpdate): void {
    const info = this.ctx.info;
    const workflowId = info.workflowExecution?.workflowId;
    if (!info.inWorkflow || !workflowId) return;
    let client;
    try {
      client = this.ctx.client;
    } catch {
      return; // no client (mock environment)
    }
    // Best effort: a lost progress update only makes the progress bar lag.
    client.workflow
      .getHandle(workflowId)
      .signal<[ProgressUpdate]>(PROGRESS_SIGNAL, u)
      .catch((err: unknown) => log.debug('progress signal not delivered', { error: (err as Error)?.message }));
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
