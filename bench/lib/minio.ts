/**
 * The bench's own MinIO, started like the test harness does (devstack `up`
 * with Temporal disabled): free ports, a fresh data folder inside the run's
 * work folder, generated root credentials (kept in a 0600 file, never
 * printed). Stopped with `down` at the end or on a signal.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureMinioCredentials, minioEndpoint, stackLayout, type StackSettings } from '../../devstack/layout';
import { freePorts, pidAlive } from '../../devstack/process';
import { down, runningRecord, up } from '../../devstack/stack';

export const WORK_PREFIX = 'lifeline-bench-run-';

export interface BenchMinio {
  settings: StackSettings;
  /** user + system CPU seconds MinIO has used so far (NaN when unknown) */
  cpuSeconds: () => number;
  endpoint: string;
  credentialsFile: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop: () => Promise<void>;
}

export async function startMinio(stackDir: string, log: (m: string) => void): Promise<BenchMinio> {
  const [port, consolePort] = await freePorts(2);
  const settings: StackSettings = {
    dataDir: stackDir,
    host: '127.0.0.1',
    namespace: 'default',
    temporal: { enabled: false, port: 0, uiPort: 0, ui: false },
    minio: { enabled: true, port: port!, consolePort: consolePort! },
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await down(settings, { graceMs: 10_000 });
  };
  try {
    await up(settings, { log: (m) => log(`  ${m}`), healthTimeoutMs: 120_000 });
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  const credentialsFile = stackLayout(stackDir).minioCredentials;
  const pid = runningRecord(stackLayout(stackDir).minioRecord)?.pid;
  return {
    settings,
    cpuSeconds: () => (pid === undefined ? NaN : processCpuSeconds(pid)),
    endpoint: minioEndpoint(settings),
    credentialsFile,
    credentials: ensureMinioCredentials(credentialsFile),
    stop,
  };
}

let clockTicks: number | undefined;

/** utime + stime of a process from /proc/<pid>/stat, in seconds. */
export function processCpuSeconds(pid: number): number {
  try {
    clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is the state (field 3 of stat); utime and stime are fields 14 and 15
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return NaN;
  }
}

/** Marks a work folder as ours, so a later run can tell whether its owner is gone. */
export function claimWorkDir(dir: string): void {
  writeFileSync(join(dir, 'bench.pid'), `${process.pid}\n`);
}

/**
 * Work folders of earlier bench runs that were killed without cleaning up
 * (SIGKILL, power loss): stop their MinIO (only if it is still the process
 * recorded there) and delete them. Returns how many were removed.
 */
export async function reapStaleWorkDirs(log: (m: string) => void): Promise<number> {
  let reaped = 0;
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(WORK_PREFIX)) continue;
    const dir = join(tmpdir(), name);
    let pid = NaN;
    try {
      pid = Number(readFileSync(join(dir, 'bench.pid'), 'utf8').trim());
    } catch {
      continue; // not claimed (yet): leave it alone
    }
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    const stackDir = join(dir, 'stack');
    if (existsSync(stackLayout(stackDir).minioRecord)) {
      const settings: StackSettings = {
        dataDir: stackDir,
        host: '127.0.0.1',
        namespace: 'default',
        temporal: { enabled: false, port: 0, uiPort: 0, ui: false },
        minio: { enabled: true, port: 0, consolePort: 0 },
      };
      await down(settings, { graceMs: 5_000 }).catch(() => {});
    }
    rmSync(dir, { recursive: true, force: true });
    log(`removed the work folder of an interrupted earlier run: ${dir}`);
    reaped++;
  }
  return reaped;
}
