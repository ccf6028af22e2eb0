/** Run the real `bin/lifeline` as a user would, with a clean environment. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { LIFELINE_ROOT } from '../../config/root';

export const LIFELINE_BIN = join(LIFELINE_ROOT, 'bin', 'lifeline');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment minus anything that would point the CLI somewhere else. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(LIFELINE_|TEMPORAL_)/.test(k) && k !== 'LIFELINE_TOOLS_DIR') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): ChildProcess {
  return spawn(LIFELINE_BIN, args, { cwd: opts.cwd ?? LIFELINE_ROOT, env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
}

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, opts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`lifeline ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 240_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Parse --json output, with the whole output in the error when it is not JSON. */
export function parseJson<T = any>(r: CliResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}):\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
}
