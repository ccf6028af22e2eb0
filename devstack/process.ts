/**
 * Process plumbing for the embedded stack: detached services with pid records,
 * port probes, stop with SIGTERM → SIGKILL, and wait-for-condition loops.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * Poll `check` until it returns a truthy value or the deadline passes. `check`
 * may throw; the last error is reported in the timeout message.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  opts: { timeoutMs: number; intervalMs?: number; onWait?: () => void | Promise<void> },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let interval = opts.intervalMs ?? 200;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    await opts.onWait?.();
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new TimeoutError(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what}${why}`);
    }
    await sleep(Math.min(interval, Math.max(0, deadline - Date.now())));
    interval = Math.min(interval * 1.5, 1000);
  }
}

/** True when something is bound to host:port (we try to bind it ourselves). */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE' || e.code === 'EACCES') resolve(true);
      else reject(e);
    });
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(false)));
  });
}

/** A currently free TCP port on host (the kernel picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Several distinct free ports. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort(host));
  return [...out];
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** On Linux, a zombie or a pid reused by another program is not "our" process. */
export function processMatches(pid: number, executable: string): boolean {
  if (!pidAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0];
    return argv0 === executable;
  } catch {
    // no /proc (not Linux): the pid is alive, trust the record
    return existsSync('/proc') ? false : true;
  }
}

/** What we know about a service we started, stored as JSON next to its pid. */
export interface ServiceRecord {
  service: string;
  pid: number;
  executable: string;
  args: string[];
  logFile: string;
  startedAt: string;
  /** Service-specific facts (ports, addresses). */
  info: Record<string, unknown>;
}

export function readRecord(file: string): ServiceRecord | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ServiceRecord;
  } catch {
    return null;
  }
}

export function writeRecord(file: string, rec: ServiceRecord): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n');
  renameSync(tmp, file);
}

export function removeRecord(file: string): void {
  rmSync(file, { force: true });
}

/**
 * Start a long-running service detached from this process (own process group,
 * stdio to an append-only log file) so that it outlives the CLI.
 */
export function spawnDetached(
  executable: string,
  args: string[],
  opts: { logFile: string; env?: NodeJS.ProcessEnv; cwd?: string },
): number {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const fd = openSync(opts.logFile, 'a', 0o600);
  try {
    const child = spawn(executable, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${executable}`);
    // A failed exec is reported asynchronously; swallow it here, the health wait will notice.
    child.on('error', () => {});
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs = 15_000): Promise<'terminated' | 'killed' | 'not-running'> {
  if (!pidAlive(pid)) return 'not-running';
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'not-running';
  }
  const gone = () => !pidAlive(pid) || isZombie(pid);
  try {
    await waitFor(`pid ${pid} to exit`, gone, { timeoutMs: graceMs, intervalMs: 100 });
    return 'terminated';
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return 'terminated';
    }
    await waitFor(`pid ${pid} to exit after SIGKILL`, gone, { timeoutMs: 10_000, intervalMs: 100 });
    return 'killed';
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/** The last lines of a log file, for error messages when a service fails to start. */
export function tailFile(file: string, lines = 15): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n').trim();
  } catch {
    return '';
  }
}
