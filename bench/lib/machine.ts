/** What the numbers were measured on: CPU, memory, OS, tool versions, commit. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import { TOOLS } from '../../devstack/tools.mjs';
import type { MachineInfo } from './report';

function tryExec(cmd: string, args: string[], cwd?: string): string | null {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
  } catch {
    return null;
  }
}

export function toolVersions(restic: string, age: string): { restic: string; age: string } {
  const r = tryExec(restic, ['version']);
  const a = tryExec(age, ['--version']);
  return {
    restic: r ? (/restic\s+(\S+)/.exec(r)?.[1] ?? r) : 'unknown',
    age: a ? a.replace(/^v/, '') : 'unknown',
  };
}

export function machineInfo(repoRoot: string, versions: { restic: string; age: string }): MachineInfo {
  const c = cpus();
  const commit = tryExec('git', ['rev-parse', 'HEAD'], repoRoot);
  const engineStatus = tryExec('git', ['status', '--porcelain', '--', 'engine'], repoRoot);
  return {
    cpu_model: c[0]?.model?.trim() ?? 'unknown',
    cores: c.length,
    memory_bytes: totalmem(),
    os: `${osType()} ${release()}`,
    node: process.versions.node,
    restic: versions.restic,
    age: versions.age,
    minio: TOOLS.minio.version,
    git_commit: commit,
    git_engine_dirty: engineStatus === null ? null : engineStatus.length > 0,
    load_average_at_start: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat, assuming 100 ticks per second as Linux reports it there). */
export function systemBusySeconds(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100;
  } catch {
    return NaN;
  }
}
