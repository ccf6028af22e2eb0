/**
 * Running the peer tools (restic, age) and helper children: timed, with their
 * output captured (never echoed: it could carry repository details), peak RSS
 * from /usr/bin/time when present, and secrets scrubbed from any error.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { scrubString } from '../../logging/redact';
import { trackChild } from './cleanup';

const TIME = '/usr/bin/time';
const TIME_MARK = 'LLBENCH_TIME ';

export class BenchError extends Error {
  override readonly name = 'BenchError';
}

/** Absolute path of an executable on PATH (then /usr/bin), or null. */
export function findExecutable(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/bin', '/usr/local/bin'];
  for (const d of dirs) {
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called for each complete stdout line (e.g. restic --json status lines). */
  onStdoutLine?: (line: string) => void;
  /** Wrap in /usr/bin/time to learn the peak RSS and CPU time (when it exists). */
  measureRss?: boolean;
  /** Label for error messages. */
  label?: string;
}

export interface RunResult {
  seconds: number;
  stdout: string;
  stderr: string;
  /** peak RSS in KiB (from /usr/bin/time -f %M), when measured */
  maxRssKb: number | null;
  /** user + system CPU seconds (from /usr/bin/time), when measured */
  cpuSeconds: number | null;
}

/** Run a command to completion; throws BenchError (scrubbed stderr tail) on failure. */
export function runCommand(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const useTime = opts.measureRss === true && existsSync(TIME);
  const argv = useTime ? [TIME, '-f', `${TIME_MARK}%M %U %S`, cmd, ...args] : [cmd, ...args];
  const label = opts.label ?? `${cmd} ${args[0] ?? ''}`.trim();
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const cp = spawn(argv[0]!, argv.slice(1), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(cp);
    let stdout = '';
    let stderr = '';
    let partial = '';
    cp.stdout!.setEncoding('utf8');
    cp.stderr!.setEncoding('utf8');
    cp.stdout!.on('data', (d: string) => {
      if (stdout.length < 4_000_000) stdout += d;
      if (!opts.onStdoutLine) return;
      partial += d;
      let i: number;
      while ((i = partial.indexOf('\n')) >= 0) {
        const line = partial.slice(0, i);
        partial = partial.slice(i + 1);
        if (line.trim()) opts.onStdoutLine(line);
      }
    });
    cp.stderr!.on('data', (d: string) => {
      if (stderr.length < 1_000_000) stderr += d;
    });
    cp.on('error', (err) => reject(new BenchError(`${label}: could not start ${cmd}: ${err.message}`)));
    cp.on('close', (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (partial.trim() && opts.onStdoutLine) opts.onStdoutLine(partial);
      let maxRssKb: number | null = null;
      let cpuSeconds: number | null = null;
      if (useTime) {
        const lines = stderr.split('\n');
        const idx = lines.findIndex((l) => l.startsWith(TIME_MARK));
        if (idx >= 0) {
          const [rss, user, sys] = lines[idx]!.slice(TIME_MARK.length).split(' ').map(Number);
          maxRssKb = rss ?? null;
          cpuSeconds = (user ?? NaN) + (sys ?? NaN);
          lines.splice(idx, 1);
          stderr = lines.join('\n');
        }
      }
      if (code === 0) {
        resolve({ seconds, stdout, stderr, maxRssKb, cpuSeconds });
        return;
      }
      const tail = scrubString(stderr.trim().split('\n').slice(-12).join('\n'));
      const why = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      reject(new BenchError(`${label} ${why}${tail ? `:\n${tail}` : ''}`));
    });
  });
}
