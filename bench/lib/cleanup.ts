/**
 * Cleanup that runs however the bench ends: normal end, a failure, or
 * SIGINT/SIGTERM/SIGHUP. Tasks run last-registered first; child processes we
 * started are terminated first (by pid, never by name).
 */
import type { ChildProcess } from 'node:child_process';

type Task = { label: string; fn: () => Promise<void> | void };

const tasks: Task[] = [];
const children = new Set<ChildProcess>();
let running: Promise<void> | null = null;
let interrupted = false;

/** True once a signal asked the bench to stop (its results are then not written). */
export function isInterrupted(): boolean {
  return interrupted;
}

/** Register a cleanup task; the returned function unregisters it (after doing the work itself). */
export function onCleanup(label: string, fn: () => Promise<void> | void): () => void {
  const task = { label, fn };
  tasks.push(task);
  return () => {
    const i = tasks.indexOf(task);
    if (i >= 0) tasks.splice(i, 1);
  };
}

/** A child process to terminate if the bench is interrupted while it runs. */
export function trackChild(cp: ChildProcess): void {
  children.add(cp);
  cp.once('exit', () => children.delete(cp));
  cp.once('error', () => children.delete(cp));
}

function stopChildren(): void {
  for (const cp of children) {
    if (cp.exitCode === null && cp.signalCode === null && cp.pid !== undefined) {
      try {
        process.kill(cp.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}

/** Runs every registered task once (idempotent; concurrent callers share the run). */
export function runCleanup(log: (m: string) => void): Promise<void> {
  running ??= (async () => {
    stopChildren();
    while (tasks.length > 0) {
      const t = tasks.pop()!;
      try {
        await t.fn();
      } catch (err) {
        log(`cleanup: ${t.label} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })();
  return running;
}

/**
 * On a signal: stop children, clean up, exit 128+n. The same signal often
 * arrives twice at once (the terminal signals the whole process group and tsx
 * relays it too), so only a repeat more than 2 s later exits without cleanup.
 */
export function installSignalHandlers(log: (m: string) => void): void {
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  let first = 0;
  for (const sig of Object.keys(codes) as NodeJS.Signals[]) {
    process.on(sig, () => {
      if (interrupted) {
        if (Date.now() - first < 2000) return;
        log(`${sig} again: exiting without finishing cleanup`);
        process.exit(codes[sig]);
      }
      interrupted = true;
      first = Date.now();
      log(`${sig}: stopping, cleaning up (MinIO, temporary folders)…`);
      void runCleanup(log).finally(() => process.exit(codes[sig]));
    });
  }
}
