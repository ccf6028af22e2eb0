/**
 * Progress output: on a terminal one line rewritten in place (4 times a
 * second); otherwise (CI, logs) a line every few seconds.
 */

const tty = process.stdout.isTTY === true;

export function log(msg: string): void {
  clearLine();
  process.stdout.write(`${msg}\n`);
}

let lineShown = false;
function clearLine(): void {
  if (tty && lineShown) {
    process.stdout.write('\r\x1b[K');
    lineShown = false;
  }
}

export const MB = 1e6;

export function mbps(bytes: number, seconds: number): number {
  return seconds > 0 ? bytes / seconds / MB : 0;
}

/** Progress of one case: bytes done of a total, with elapsed time and MB/s. */
export class Progress {
  private readonly t0 = performance.now();
  private last = performance.now();

  constructor(
    private readonly label: string,
    private readonly total?: number,
  ) {}

  get seconds(): number {
    return (performance.now() - this.t0) / 1000;
  }

  update(done: number, extra = ''): void {
    const now = performance.now();
    if (now - this.last < (tty ? 250 : 5000)) return;
    this.last = now;
    const s = this.seconds;
    const pct = this.total ? ` ${((done / this.total) * 100).toFixed(0).padStart(3)}%` : '';
    const text = `  ${this.label}:${pct} ${(done / MB).toFixed(0)} MB, ${s.toFixed(1)} s, ${mbps(done, s).toFixed(0)} MB/s${extra ? ` ${extra}` : ''}`;
    if (tty) {
      process.stdout.write(`\r\x1b[K${text}`);
      lineShown = true;
    } else {
      process.stdout.write(`${text}\n`);
    }
  }

  /** A status line without byte counts (e.g. while a peer tool runs quietly). */
  tick(text: string): void {
    const now = performance.now();
    if (now - this.last < (tty ? 250 : 5000)) return;
    this.last = now;
    const line = `  ${this.label}: ${text} (${this.seconds.toFixed(0)} s)`;
    if (tty) {
      process.stdout.write(`\r\x1b[K${line}`);
      lineShown = true;
    } else {
      process.stdout.write(`${line}\n`);
    }
  }

  done(text: string): void {
    log(`  ${this.label}: ${text}`);
  }
}
