/**
 * Workers run as supervised background processes (`lifeline worker --detach`):
 * started detached in their own process group, with a pid record in
 * `<dataDir>/run/<role>-worker.json` and their output in
 * `<dataDir>/logs/<role>-worker.log`. The record is what lets another process
 * (the drill worker's crash-orchestrator fault) kill the worker and start it
 * again with the same arguments.
 */
import { join } from 'node:path';
import type { LoadedConfig } from '../config/load';
import { LIFELINE_ROOT } from '../config/root';
import { stackLayout, stackSettings } from '../devstack/layout';
import { groupAlive, readProcessRecord, recordAlive, removeProcessRecord, startRecordedProcess, stopRecordedProcess, type ProcessRecord } from '../nodes/processes';

export type SupervisedRole = 'orchestrator' | 'drill';

export function workerRecordFile(config: LoadedConfig, role: SupervisedRole): string {
  return join(stackLayout(stackSettings(config).dataDir).runDir, `${role}-worker.json`);
}

export function workerLogFile(config: LoadedConfig, role: SupervisedRole): string {
  return join(stackLayout(stackSettings(config).dataDir).logsDir, `${role}-worker.log`);
}

/** The record of the supervised worker of this role, and whether it still runs. */
export function supervisedWorker(config: LoadedConfig, role: SupervisedRole): { record: ProcessRecord | null; alive: boolean } {
  const record = readProcessRecord(workerRecordFile(config, role));
  return { record, alive: record !== null && (recordAlive(record) || groupAlive(record)) };
}

/** Starts the worker detached (or returns the running one). */
export async function startSupervisedWorker(
  config: LoadedConfig,
  role: SupervisedRole,
  opts: { taskQueue?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ record: ProcessRecord; alreadyRunning: boolean }> {
  const cur = supervisedWorker(config, role);
  if (cur.record && cur.alive) return { record: cur.record, alreadyRunning: true };
  const configFile = config.source.file;
  if (!configFile) throw new Error(`a supervised ${role} worker loads the same config file, but this config was not loaded from a file`);
  const record = await startRecordedProcess({
    argv: [
      join(LIFELINE_ROOT, 'bin', 'lifeline'),
      '--config',
      configFile,
      '--log-format',
      'json',
      'worker',
      '--role',
      role,
      ...(opts.taskQueue ? ['--task-queue', opts.taskQueue] : []),
    ],
    cwd: LIFELINE_ROOT,
    env: opts.env ?? process.env,
    logFile: workerLogFile(config, role),
    recordFile: workerRecordFile(config, role),
    info: { role, ...(opts.taskQueue ? { taskQueue: opts.taskQueue } : {}) },
  });
  return { record, alreadyRunning: false };
}

/** Starts a worker again from a saved record (same argv, cwd and log), writing a fresh record. */
export async function restartFromRecord(config: LoadedConfig, role: SupervisedRole, saved: ProcessRecord, env: NodeJS.ProcessEnv = process.env): Promise<ProcessRecord> {
  const cur = supervisedWorker(config, role);
  if (cur.record && cur.alive) return cur.record;
  return startRecordedProcess({ argv: saved.argv, cwd: saved.cwd, env, logFile: saved.logFile, recordFile: workerRecordFile(config, role), info: saved.info });
}

/** SIGTERM, then SIGKILL after graceMs; removes the record. */
export async function stopSupervisedWorker(config: LoadedConfig, role: SupervisedRole, graceMs = 20_000): Promise<'not-running' | 'terminated' | 'killed'> {
  const file = workerRecordFile(config, role);
  const rec = readProcessRecord(file);
  if (!rec) return 'not-running';
  const r = await stopRecordedProcess(rec, graceMs);
  removeProcessRecord(file);
  return r;
}
