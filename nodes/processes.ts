/**
 * Processes Lifeline starts on a node (node agents, training jobs): detached,
 * in their own process group, stdout/stderr to a log file, and a JSON record
 * (pid + the kernel's start time of that pid) so that a later call — after a
 * restart of whoever started it — can tell whether that very process still
 * runs, and stop it with its whole group.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { sleep } from '../devstack/process';

export interface ProcessRecord {
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot); null where there is no /proc */
  startTicks: string | null;
  argv: string[];
  cwd: string;
  logFile: string;
  startedAt: string;
  /** what the caller wants to remember (job name, run id, node id) */
  info: Record<string, string>;
}

function procStat(pid: number): { state: string; startTicks: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after "(comm)": state is field 3, starttime field 22 → index 0 and 19 of rest
    return { state: rest[0]!, startTicks: rest[19]! };
  } catch {
    return null;
  }
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The recorded process still runs: same pid, same start time, not a zombie. */
export function recordAlive(rec: ProcessRecord): boolean {
  if (!pidExists(rec.pid)) return false;
  const st = procStat(rec.pid);
  if (!st) return !existsSync('/proc');
  if (st.state === 'Z' || st.state === 'X') return false;
  return rec.startTicks === null || st.startTicks === rec.startTicks;
}

/** Any process of the recorded group still runs (a wrapper may have exited while its children run on). */
export function groupAlive(rec: ProcessRecord): boolean {
  if (recordAlive(rec)) return true;
  try {
    process.kill(-rec.pid, 0);
  } catch {
    return false;
  }
  // The group id outlives its leader only through its members; on Linux check that a member is not a zombie.
  if (!existsSync('/proc')) return true;
  return groupMembers(rec.pid).length > 0;
}

function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] !== 'Z' && rest[0] !== 'X' && Number(rest[2]) === pgid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function readProcessRecord(file: string): ProcessRecord | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ProcessRecord;
  } catch {
    return null;
  }
}

export function writeProcessRecord(file: string, rec: ProcessRecord): void {
  writeJsonAtomic(file, rec);
}

/** Writes JSON aside (owner-only) and renames it into place. */
export function writeJsonAtomic(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Starts argv detached (own process group, stdin closed, stdout+stderr
 * appended to logFile) and records it in recordFile. Resolves once the process
 * runs (a program that cannot be executed rejects).
 */
export async function startRecordedProcess(opts: {
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  logFile: string;
  recordFile: string;
  info: Record<string, string>;
}): Promise<ProcessRecord> {
  const [cmd, ...args] = opts.argv;
  if (!cmd) throw new TypeError('empty argv');
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const fd = openSync(opts.logFile, 'a', 0o600);
  let child;
  try {
    child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: opts.env, cwd: opts.cwd });
  } finally {
    closeSync(fd);
  }
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve(child.pid!));
  });
  child.on('error', () => {});
  child.unref();
  const rec: ProcessRecord = {
    pid,
    startTicks: procStat(pid)?.startTicks ?? null,
    argv: opts.argv,
    cwd: opts.cwd,
    logFile: opts.logFile,
    startedAt: new Date().toISOString(),
    info: opts.info,
  };
  writeProcessRecord(opts.recordFile, rec);
  return rec;
}

/**
 * SIGTERM to the whole group, up to graceMs for it to exit, then SIGKILL to
 * the group. Resolves once no member runs.
 */
export async function stopRecordedProcess(rec: ProcessRecord, graceMs: number): Promise<'not-running' | 'terminated' | 'killed'> {
  if (!groupAlive(rec)) return 'not-running';
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-rec.pid, sig);
    } catch {
      // the group is gone
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!groupAlive(rec)) return 'terminated';
    await sleep(100);
  }
  signal('SIGKILL');
  const killDeadline = Date.now() + 10_000;
  while (groupAlive(rec)) {
    if (Date.now() > killDeadline) throw new Error(`process group ${rec.pid} survived SIGKILL for 10 s`);
    await sleep(100);
  }
  return 'killed';
}

export function removeProcessRecord(file: string): void {
  rmSync(file, { force: true });
}
