/**
 * The bench's results (latest.json) and their judgement against the targets
 * (latest.md). Pure functions: no I/O, so they are unit-tested.
 *
 * Units: MB = 10^6 bytes; throughput MB/s = data bytes / wall seconds / 10^6;
 * peak RSS in MB (VmHWM, 10^6 bytes).
 */

export type BenchMode = 'full' | 'quick';

export interface MachineInfo {
  cpu_model: string;
  cores: number;
  memory_bytes: number;
  os: string;
  node: string;
  restic: string;
  age: string;
  minio: string;
  git_commit: string | null;
  /** true when engine/ had uncommitted changes: the numbers are for the working tree, not the commit */
  git_engine_dirty: boolean | null;
  /** 1, 5, 15 minute load averages when the bench started (other work on the machine skews the numbers) */
  load_average_at_start?: number[];
}

/** Where a contender's wall time went: its own CPU and MinIO's (2 cores = at most 2 CPU-seconds per second). */
export interface CpuSplit {
  wall_seconds: number;
  client_cpu_seconds: number | null;
  minio_cpu_seconds: number;
  /** CPU used by everything else on the machine meanwhile (other users' work skews the wall times) */
  other_cpu_seconds?: number | null;
}

export interface BackupSection {
  data_bytes: number;
  files: number;
  lifeline_mbps: number;
  restic_mbps: number;
  raw_put_mbps: number;
  lifeline_seconds: number;
  restic_seconds: number;
  raw_put_seconds: number;
  cpu?: Record<string, CpuSplit>;
  [detail: string]: unknown;
}

export interface RestoreSection {
  data_bytes: number;
  files: number;
  lifeline_mbps: number;
  restic_mbps: number;
  lifeline_seconds: number;
  restic_seconds: number;
  verified: boolean;
  raw_get_mbps?: number;
  cpu?: Record<string, CpuSplit>;
  [detail: string]: unknown;
}

export interface EncryptSection {
  data_bytes: number;
  lifeline_mbps: number;
  age_cli_mbps: number;
  [detail: string]: unknown;
}

export interface IncrementalSection {
  /** bytes of the whole data set (what the unchanged backup covers) */
  data_bytes: number;
  unchanged_seconds: number;
  changed_upload_fraction: number;
  changed_file_bytes: number;
  changed_uploaded_bytes: number;
  /** the same measurements for restic, as the peer (null when not measured) */
  restic_unchanged_seconds: number | null;
  restic_changed_upload_fraction: number | null;
  [detail: string]: unknown;
}

export interface RssSection {
  data_bytes: number;
  backup_4gib_mb: number;
  restore_4gib_mb: number;
  [detail: string]: unknown;
}

export interface BenchResults {
  schema: 1;
  status: 'ok' | 'failed';
  error?: string;
  mode: BenchMode;
  started_at: string;
  finished_at: string;
  duration_seconds: number;
  machine: MachineInfo;
  dataset?: Record<string, unknown>;
  backup?: BackupSection;
  restore?: RestoreSection;
  encrypt?: EncryptSection;
  incremental?: IncrementalSection;
  rss?: RssSection;
  targets?: TargetRow[];
}

export interface TargetRow {
  key: string;
  metric: string;
  unit: string;
  lifeline: number | null;
  peer: number | null;
  peer_label: string;
  /** lifeline / peer (for "lower is better" metrics too; then below 1 is good) */
  ratio: number | null;
  target: string;
  /** null: not measured (a failed run) */
  met: boolean | null;
  /** for a miss: by how much, in words */
  shortfall: string | null;
}

// ---------------------------------------------------------------------------
// Targets

export const TARGETS = {
  backupVsRestic: 3,
  backupVsRaw: 0.7,
  restoreVsRestic: 3,
  encryptVsAge: 2,
  unchangedMaxSeconds: 1,
  changedMaxFraction: 0.02,
  rssMaxMb: 300,
} as const;

/** Lifeline must reach `min` × the peer's value (throughput: higher is better). */
function ratioRow(
  key: string,
  metric: string,
  unit: string,
  lifeline: number | undefined,
  peer: number | undefined,
  peerLabel: string,
  min: number,
): TargetRow {
  const target = `≥ ${fmtRatio(min)} ${peerLabel}`;
  if (lifeline === undefined || peer === undefined || !(peer > 0)) {
    return { key, metric, unit, lifeline: lifeline ?? null, peer: peer ?? null, peer_label: peerLabel, ratio: null, target, met: null, shortfall: null };
  }
  const ratio = lifeline / peer;
  const met = ratio >= min;
  let shortfall: string | null = null;
  if (!met) {
    const needed = peer * min;
    shortfall = `${fmtRatio(ratio)} instead of ${fmtRatio(min)}: needs ${fmtNumber(needed, unit)} ${unit}, ${fmtPercent(needed / lifeline - 1)} faster`;
  }
  return { key, metric, unit, lifeline, peer, peer_label: peerLabel, ratio, target, met, shortfall };
}

/** Lifeline's value must stay at or below `max` (lower is better); the peer is context only. */
function maxRow(
  key: string,
  metric: string,
  unit: string,
  lifeline: number | undefined,
  peer: number | null | undefined,
  peerLabel: string,
  max: number,
  show: (v: number) => string = (v) => fmtNumber(v, unit),
): TargetRow {
  const target = `≤ ${show(max)} ${unit}`.trimEnd();
  if (lifeline === undefined) {
    return { key, metric, unit, lifeline: null, peer: peer ?? null, peer_label: peerLabel, ratio: null, target, met: null, shortfall: null };
  }
  const ratio = peer !== null && peer !== undefined && peer > 0 ? lifeline / peer : null;
  const met = lifeline <= max;
  const shortfall = met ? null : `over by ${show(lifeline - max)} ${unit} (${fmtPercent(lifeline / max - 1)} above the limit)`.replace(/ {2,}/g, ' ');
  return { key, metric, unit, lifeline, peer: peer ?? null, peer_label: peerLabel, ratio, target, met, shortfall };
}

/** Every target, judged; rows of sections that were not measured have met = null. */
export function evaluateTargets(r: Pick<BenchResults, 'backup' | 'restore' | 'encrypt' | 'incremental' | 'rss'>): TargetRow[] {
  const pct = (v: number) => `${(v * 100).toFixed(2)}`;
  const rssSize = r.rss ? fmtBytes(r.rss.data_bytes).replace('.00 ', ' ') : '4 GiB';
  return [
    ratioRow('backup_vs_restic', 'Backup throughput', 'MB/s', r.backup?.lifeline_mbps, r.backup?.restic_mbps, 'restic', TARGETS.backupVsRestic),
    ratioRow('backup_vs_raw_put', 'Backup throughput', 'MB/s', r.backup?.lifeline_mbps, r.backup?.raw_put_mbps, 'raw PutObject', TARGETS.backupVsRaw),
    ratioRow('restore_vs_restic', 'Restore throughput', 'MB/s', r.restore?.lifeline_mbps, r.restore?.restic_mbps, 'restic', TARGETS.restoreVsRestic),
    ratioRow('encrypt_vs_age_cli', 'age encryption', 'MB/s', r.encrypt?.lifeline_mbps, r.encrypt?.age_cli_mbps, 'age CLI', TARGETS.encryptVsAge),
    maxRow('unchanged_backup', 'Unchanged backup (wall time)', 's', r.incremental?.unchanged_seconds, r.incremental?.restic_unchanged_seconds, 'restic', TARGETS.unchangedMaxSeconds),
    maxRow(
      'changed_upload_fraction',
      `Upload after 1 MiB change in ${r.incremental ? fmtBytes(r.incremental.changed_file_bytes).replace('.00 ', ' ') : '1 GiB'} file`,
      '%',
      r.incremental ? r.incremental.changed_upload_fraction * 100 : undefined,
      r.incremental?.restic_changed_upload_fraction !== null && r.incremental?.restic_changed_upload_fraction !== undefined
        ? r.incremental.restic_changed_upload_fraction * 100
        : null,
      'restic',
      TARGETS.changedMaxFraction * 100,
      (v) => pct(v / 100),
    ),
    maxRow('rss_backup', `Peak RSS, backup of ${rssSize} file`, 'MB', r.rss?.backup_4gib_mb, null, '—', TARGETS.rssMaxMb),
    maxRow('rss_restore', `Peak RSS, restore of ${rssSize} file`, 'MB', r.rss?.restore_4gib_mb, null, '—', TARGETS.rssMaxMb),
  ];
}

// ---------------------------------------------------------------------------
// Formatting

export function fmtRatio(r: number): string {
  return `${r >= 10 ? r.toFixed(1) : r.toFixed(2)}×`;
}

export function fmtPercent(f: number): string {
  return `${(f * 100).toFixed(f * 100 >= 10 ? 0 : 1)}%`;
}

export function fmtNumber(v: number, unit: string): string {
  if (unit === 's') return v < 10 ? v.toFixed(2) : v.toFixed(1);
  if (unit === '%') return v.toFixed(2);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return v.toFixed(1);
}

function cell(row: TargetRow, v: number | null): string {
  if (v === null) return '—';
  return `${fmtNumber(v, row.unit)} ${row.unit}`;
}

function ratioCell(row: TargetRow): string {
  if (row.ratio === null) return '—';
  // For "lower is better" rows the ratio is Lifeline's share of the peer's time/bytes.
  return row.target.startsWith('≤') ? `${fmtRatio(row.ratio)} of ${row.peer_label}` : fmtRatio(row.ratio);
}

function resultCell(row: TargetRow): string {
  if (row.met === null) return 'not measured';
  return row.met ? 'met' : `**missed**: ${row.shortfall}`;
}

/** Markdown table: metric, Lifeline, peer, ratio, target, met/missed. */
export function renderTable(rows: TargetRow[]): string {
  const lines = ['| Metric | Lifeline | Peer | Ratio | Target | Result |', '| --- | ---: | ---: | ---: | --- | --- |'];
  for (const r of rows) {
    const peer = r.peer === null ? '—' : `${cell(r, r.peer)} (${r.peer_label})`;
    lines.push(`| ${r.metric} | ${cell(r, r.lifeline)} | ${peer} | ${ratioCell(r)} | ${r.target} | ${resultCell(r)} |`);
  }
  return lines.join('\n');
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}

const CONTENDERS: Record<string, string> = { lifeline: 'Lifeline', restic: 'restic', raw_put: 'raw PutObject', raw_get: 'raw GetObject' };

/** Wall time against CPU time of the client and of MinIO, per contender (empty when not measured). */
export function renderCpuTable(r: Pick<BenchResults, 'backup' | 'restore'>): string {
  const rows: string[] = [];
  const f = (v: number | null) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(1));
  for (const [caseName, section] of [['Backup', r.backup], ['Restore', r.restore]] as const) {
    for (const [k, c] of Object.entries(section?.cpu ?? {})) {
      const total = (c.client_cpu_seconds ?? NaN) + c.minio_cpu_seconds;
      rows.push(
        `| ${caseName} | ${CONTENDERS[k] ?? k} | ${c.wall_seconds.toFixed(1)} | ${f(c.client_cpu_seconds)} | ${f(c.minio_cpu_seconds)} | ` +
          `${Number.isFinite(total) ? (total / c.wall_seconds).toFixed(2) : '—'} | ${f(c.other_cpu_seconds ?? null)} |`,
      );
    }
  }
  if (rows.length === 0) return '';
  return [
    '| Case | Contender | Wall s | Client CPU s | MinIO CPU s | (client + MinIO) CPU-s per wall s | Other processes CPU s |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

/** Runs during which other processes used more than a quarter of the machine's CPU capacity. */
export function disturbedRuns(r: Pick<BenchResults, 'backup' | 'restore'>, cores: number): string[] {
  const out: string[] = [];
  for (const [caseName, section] of [['backup', r.backup], ['restore', r.restore]] as const) {
    for (const [k, c] of Object.entries(section?.cpu ?? {})) {
      const other = c.other_cpu_seconds;
      if (other !== null && other !== undefined && other > 0.25 * cores * c.wall_seconds) {
        out.push(`the ${CONTENDERS[k] ?? k} ${caseName} (${other.toFixed(1)} CPU-s in ${c.wall_seconds.toFixed(1)} s)`);
      }
    }
  }
  return out;
}

/** latest.md: header with context, the table, and notes on how each number was taken. */
export function renderMarkdown(r: BenchResults): string {
  const rows = r.targets ?? evaluateTargets(r);
  const m = r.machine;
  const met = rows.filter((x) => x.met === true).length;
  const judged = rows.filter((x) => x.met !== null).length;
  const out: string[] = [];
  out.push(`# Lifeline storage-engine bench (${r.mode})`);
  out.push('');
  out.push(
    `${r.started_at} · ${r.duration_seconds.toFixed(0)} s · ${m.cpu_model}, ${m.cores} cores, ${fmtBytes(m.memory_bytes)} RAM · ` +
      `Node ${m.node} · restic ${m.restic} · age ${m.age} · MinIO ${m.minio}` +
      (m.git_commit ? ` · commit ${m.git_commit.slice(0, 12)}${m.git_engine_dirty ? ' (engine/ modified)' : ''}` : ''),
  );
  out.push('');
  if (r.status !== 'ok') {
    out.push(`**The bench failed:** ${r.error ?? 'unknown error'}`);
    out.push('');
  }
  out.push(renderTable(rows));
  out.push('');
  out.push(`Targets met: ${met} of ${judged}${judged < rows.length ? ` (${rows.length - judged} not measured)` : ''}.`);
  out.push('');
  const ceilings: string[] = [];
  if (r.backup) ceilings.push(`raw PutObject ${fmtNumber(r.backup.raw_put_mbps, 'MB/s')} MB/s (${fmtRatio(r.backup.raw_put_mbps / r.backup.restic_mbps)} restic's backup)`);
  if (r.restore?.raw_get_mbps !== undefined) {
    ceilings.push(`raw GetObject to files ${fmtNumber(r.restore.raw_get_mbps, 'MB/s')} MB/s (${fmtRatio(r.restore.raw_get_mbps / r.restore.restic_mbps)} restic's restore)`);
  }
  if (ceilings.length > 0) {
    out.push(`Unencrypted S3 transfer of the same files on this machine and MinIO, for scale: ${ceilings.join('; ')}.`);
    out.push('');
  }
  const disturbed = disturbedRuns(r, m.cores);
  if (disturbed.length > 0) {
    out.push(
      `**Shared machine:** other processes used a large share of the CPU during ${disturbed.join(', ')}; ` +
        'those wall times (and the ratios built on them) are pessimistic for that contender. Re-run on a quiet machine to compare closely.',
    );
    out.push('');
  }
  const cpu = renderCpuTable(r);
  if (cpu) {
    out.push(
      `Where the time went (whole processes, for Lifeline including Node start-up; CPU seconds of the client and of MinIO during each run; ${m.cores} cores = at most ${m.cores} CPU-s per wall second; ` +
        `"other" is everything else on the machine meanwhile${m.load_average_at_start ? `, load average at the start ${m.load_average_at_start.join(' / ')}` : ''}):`,
    );
    out.push('');
    out.push(cpu);
    out.push('');
  }
  const notes: string[] = [];
  if (r.backup) {
    notes.push(
      `Backup: ${fmtBytes(r.backup.data_bytes)} in ${r.backup.files} files, one run each, from page cache, to the same local MinIO ` +
        `(every Lifeline operation runs in its own process, timed from opening the repository; restic timed as its whole process): ` +
        `Lifeline ${r.backup.lifeline_seconds.toFixed(1)} s, restic ${r.backup.restic_seconds.toFixed(1)} s, raw PutObject ${r.backup.raw_put_seconds.toFixed(1)} s.`,
    );
  }
  if (r.restore) {
    notes.push(
      `Restore: the same ${fmtBytes(r.restore.data_bytes)} to fresh folders (Lifeline ${r.restore.lifeline_seconds.toFixed(1)} s, restic ${r.restore.restic_seconds.toFixed(1)} s); ` +
        `both trees ${r.restore.verified ? 'verified byte-identical (SHA-256 of every file)' : 'NOT verified'}.`,
    );
  }
  if (r.encrypt) notes.push(`Encryption: ${fmtBytes(r.encrypt.data_bytes)} file → /dev/null, X25519 recipient, median of ${String(r.encrypt.runs ?? '?')} interleaved runs.`);
  if (r.incremental) {
    notes.push(
      `Incremental: unchanged = wall time of open repository + backup of the whole data set; changed = all bytes PUT to the store ` +
        `(packs, index, lease, manifest) after rewriting 1 MiB in the middle of a ${fmtBytes(r.incremental.changed_file_bytes)} file: ` +
        `${fmtBytes(r.incremental.changed_uploaded_bytes)}.`,
    );
  }
  if (r.rss) notes.push(`Peak RSS: VmHWM of a separate Node process (node --import tsx) backing up / restoring a ${fmtBytes(r.rss.data_bytes)} file.`);
  if (r.mode === 'quick') notes.push('Quick mode: small data (sizes above); the numbers are for development, not for judging targets.');
  for (const n of notes) out.push(`- ${n}`);
  out.push('');
  return out.join('\n');
}
