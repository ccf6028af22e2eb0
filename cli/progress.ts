/**
 * `--wait`: follow a backup or restore workflow until it ends, with a live
 * progress bar (bytes, files, rate, ETA, "retrying storage") fed by polling
 * the workflow's `progress` query. The bar goes to stderr; on a non-terminal
 * it prints a line every few seconds instead.
 */
import { SingleBar } from 'cli-progress';
import type { Client } from '@temporalio/client';
import type { LoadedConfig } from '../config/load';
import { stackSettings, temporalUiUrl } from '../devstack/layout';
import { PROGRESS_QUERY, type Progress } from '../workflows/progress';

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Link to a workflow in the Temporal Web UI, when Lifeline knows where the UI is (embedded dev server). */
export function workflowLink(config: LoadedConfig, workflowId: string): string | null {
  if (config.temporal.address) return null;
  const ui = temporalUiUrl(stackSettings(config));
  return ui ? `${ui}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}` : null;
}

/** Waits for the workflow's result while showing its progress; rethrows its failure. */
export async function waitWithProgress<T>(client: Client, workflowId: string, opts: { quiet?: boolean; pollMs?: number } = {}): Promise<T> {
  const handle = client.workflow.getHandle(workflowId);
  const result = handle.result() as Promise<T>;
  if (opts.quiet) return result;
  let settled = false;
  const done = result.then(
    () => (settled = true),
    () => (settled = true),
  );
  const bar = new SingleBar({
    stream: process.stderr,
    format: '{phase} |{bar}| {percentage}% {done}/{total} | {files} files | {rate}/s | ETA {eta}{note}',
    hideCursor: true,
    clearOnComplete: false,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    barsize: 30,
  });
  bar.start(1, 0, { phase: 'starting'.padEnd(12), done: '0 B', total: '?', files: '0/0', rate: '0 B', eta: '?', note: '' });
  try {
    while (!settled) {
      try {
        const p = await handle.query<Progress>(PROGRESS_QUERY);
        const total = Math.max(1, p.bytesTotal);
        bar.setTotal(total);
        bar.update(Math.min(total, p.bytesDone), {
          phase: p.phase.padEnd(12),
          done: formatBytes(p.bytesDone),
          total: formatBytes(p.bytesTotal),
          files: `${p.filesDone}/${p.filesTotal}`,
          rate: formatBytes(p.bytesPerSecond),
          eta: formatDuration(p.etaSeconds),
          note: `${p.attempt && p.attempt > 1 ? ` | attempt ${p.attempt}` : ''}${p.retrying ? ` | ${p.retrying}` : ''}`,
        });
      } catch {
        // No worker answered yet (or the workflow is between runs): keep waiting.
      }
      await Promise.race([done, new Promise((r) => setTimeout(r, opts.pollMs ?? 1000))]);
    }
  } finally {
    bar.stop();
  }
  return result;
}
