/**
 * restic as the peer: its own repository in its own bucket on the bench
 * MinIO, stock settings (repository format and compression are restic's
 * defaults; its cache lives in the run's work folder so it is removed at the
 * end). The password is random and passed only in the environment.
 */
import { randomBytes } from 'node:crypto';
import { registerSecret } from '../../logging/redact';
import { Progress } from './progress';
import { runCommand, type RunResult } from './proc';
import type { S3Target } from './lifeline';

export interface ResticSummary {
  files_new?: number;
  files_changed?: number;
  files_unmodified?: number;
  data_added?: number;
  total_files_processed?: number;
  total_bytes_processed?: number;
  total_duration?: number;
  snapshot_id?: string;
  [k: string]: unknown;
}

export class Restic {
  private readonly env: NodeJS.ProcessEnv;
  readonly repo: string;

  constructor(
    readonly bin: string,
    t: S3Target,
    bucket: string,
    cacheDir: string,
  ) {
    const password = randomBytes(24).toString('base64url');
    registerSecret(password);
    this.repo = `s3:${t.endpoint}/${bucket}`;
    const env: NodeJS.ProcessEnv = { ...process.env };
    // Only our settings: nothing from the caller's environment may point restic elsewhere.
    for (const k of Object.keys(env)) if (k.startsWith('RESTIC_') || k.startsWith('AWS_')) delete env[k];
    this.env = {
      ...env,
      RESTIC_REPOSITORY: this.repo,
      RESTIC_PASSWORD: password,
      RESTIC_CACHE_DIR: cacheDir,
      AWS_ACCESS_KEY_ID: t.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: t.credentials.secretAccessKey,
    };
  }

  private run(args: string[], label: string, extra: { onStdoutLine?: (l: string) => void; measureRss?: boolean } = {}): Promise<RunResult> {
    return runCommand(this.bin, args, { env: this.env, label: `restic ${label}`, ...extra });
  }

  async init(): Promise<void> {
    await this.run(['init'], 'init');
  }

  /** `restic backup --json <dir>`; progress from its status lines. */
  async backup(dir: string, progress?: Progress): Promise<{ run: RunResult; summary: ResticSummary }> {
    let summary: ResticSummary | undefined;
    const run = await this.run(['backup', '--json', dir], 'backup', {
      measureRss: true,
      onStdoutLine: (line) => {
        let msg: { message_type?: string; bytes_done?: number; total_bytes?: number };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          return;
        }
        if (msg.message_type === 'status' && typeof msg.bytes_done === 'number') progress?.update(msg.bytes_done);
        if (msg.message_type === 'summary') summary = msg as ResticSummary;
      },
    });
    if (!summary) throw new Error('restic backup printed no summary');
    return { run, summary };
  }

  /** `restic restore latest --target <dir>` (restic prints no progress here when not on a terminal). */
  async restoreLatest(target: string, progress?: Progress): Promise<RunResult> {
    const timer = progress ? setInterval(() => progress.tick('restoring'), 1000) : undefined;
    try {
      return await this.run(['restore', 'latest', '--target', target], 'restore', { measureRss: true });
    } finally {
      if (timer) clearInterval(timer);
    }
  }
}
