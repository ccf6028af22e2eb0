import { describe, expect, it } from 'vitest';
import { evaluateTargets, renderCpuTable, renderMarkdown, renderTable, type BenchResults } from '../../bench/lib/report';

const GiB = 1024 ** 3;

function results(over: Partial<BenchResults> = {}): BenchResults {
  return {
    schema: 1,
    status: 'ok',
    mode: 'full',
    started_at: '2026-01-02T03:04:05.000Z',
    finished_at: '2026-01-02T03:10:05.000Z',
    duration_seconds: 360,
    machine: {
      cpu_model: 'AMD EPYC',
      cores: 2,
      memory_bytes: 24 * GiB,
      os: 'Linux 6',
      node: '20.20.2',
      restic: '0.14.0',
      age: '1.1.1',
      minio: 'v0',
      git_commit: '0123456789abcdef',
      git_engine_dirty: false,
    },
    backup: { data_bytes: 3 * GiB, files: 5004, lifeline_mbps: 330, restic_mbps: 100, raw_put_mbps: 400, lifeline_seconds: 10, restic_seconds: 33, raw_put_seconds: 8 },
    restore: { data_bytes: 3 * GiB, files: 5004, lifeline_mbps: 200, restic_mbps: 100, lifeline_seconds: 16, restic_seconds: 32, verified: true },
    encrypt: { data_bytes: GiB, lifeline_mbps: 800, age_cli_mbps: 400, runs: 3 },
    incremental: {
      data_bytes: 3 * GiB,
      unchanged_seconds: 1.5,
      changed_upload_fraction: 0.003,
      changed_file_bytes: GiB,
      changed_uploaded_bytes: 3_000_000,
      restic_unchanged_seconds: 0.8,
      restic_changed_upload_fraction: 0.002,
    },
    rss: { data_bytes: 4 * GiB, backup_4gib_mb: 250, restore_4gib_mb: 320 },
    ...over,
  };
}

describe('bench report', () => {
  it('judges every target and says by how much a miss misses', () => {
    const rows = evaluateTargets(results());
    const by = Object.fromEntries(rows.map((r) => [r.key, r]));
    expect(rows).toHaveLength(8);

    expect(by.backup_vs_restic!.ratio).toBeCloseTo(3.3);
    expect(by.backup_vs_restic!.met).toBe(true);
    expect(by.backup_vs_raw_put!.ratio).toBeCloseTo(0.825);
    expect(by.backup_vs_raw_put!.met).toBe(true);

    // 2× restic where 3× is wanted: 300 MB/s needed, 50% faster
    expect(by.restore_vs_restic!.met).toBe(false);
    expect(by.restore_vs_restic!.shortfall).toContain('2.00× instead of 3.00×');
    expect(by.restore_vs_restic!.shortfall).toContain('300 MB/s');
    expect(by.restore_vs_restic!.shortfall).toContain('50% faster');

    expect(by.encrypt_vs_age_cli!.met).toBe(true);

    expect(by.unchanged_backup!.met).toBe(false);
    expect(by.unchanged_backup!.shortfall).toContain('over by 0.50 s');
    expect(by.unchanged_backup!.shortfall).toContain('50% above');

    expect(by.changed_upload_fraction!.lifeline).toBeCloseTo(0.3);
    expect(by.changed_upload_fraction!.met).toBe(true);
    expect(by.changed_upload_fraction!.target).toBe('≤ 2.00 %');

    expect(by.rss_backup!.met).toBe(true);
    expect(by.rss_restore!.met).toBe(false);
    expect(by.rss_restore!.shortfall).toContain('over by 20.0 MB');
  });

  it('a boundary value meets its target', () => {
    const r = results();
    r.backup!.lifeline_mbps = 300;
    r.incremental!.unchanged_seconds = 1;
    r.rss!.restore_4gib_mb = 300;
    const by = Object.fromEntries(evaluateTargets(r).map((x) => [x.key, x]));
    expect(by.backup_vs_restic!.met).toBe(true);
    expect(by.unchanged_backup!.met).toBe(true);
    expect(by.rss_restore!.met).toBe(true);
  });

  it('sections that were not measured are "not measured", not missed', () => {
    const r = results({ status: 'failed', error: 'restic backup exited with code 1' });
    delete r.restore;
    delete r.rss;
    const rows = evaluateTargets(r);
    expect(rows.filter((x) => x.met === null).map((x) => x.key)).toEqual(['restore_vs_restic', 'rss_backup', 'rss_restore']);
    const md = renderMarkdown({ ...r, targets: rows });
    expect(md).toContain('**The bench failed:** restic backup exited with code 1');
    expect(md).toContain('not measured');
    expect(md).toContain('(3 not measured)');
  });

  it('renders a Markdown table with one row per target', () => {
    const table = renderTable(evaluateTargets(results()));
    const lines = table.split('\n');
    expect(lines[0]).toBe('| Metric | Lifeline | Peer | Ratio | Target | Result |');
    expect(lines).toHaveLength(2 + 8);
    for (const l of lines) expect(l.split('|')).toHaveLength(8);
    expect(table).toContain('| Backup throughput | 330 MB/s | 100 MB/s (restic) | 3.30× | ≥ 3.00× restic | met |');
    expect(table).toContain('| Unchanged backup (wall time) | 1.50 s | 0.80 s (restic) | 1.88× of restic | ≤ 1.00 s | **missed**');
    expect(table).toContain('Upload after 1 MiB change in 1 GiB file');
    expect(table).toContain('Peak RSS, backup of 4 GiB file');
  });

  it('names the machine, tools and mode in the Markdown', () => {
    const md = renderMarkdown(results({ mode: 'quick' }));
    expect(md).toContain('# Lifeline storage-engine bench (quick)');
    expect(md).toContain('restic 0.14.0');
    expect(md).toContain('age 1.1.1');
    expect(md).toContain('Quick mode');
  });

  it('shows where the time went when CPU times were measured', () => {
    const r = results();
    expect(renderCpuTable(r)).toBe('');
    r.backup!.cpu = {
      lifeline: { wall_seconds: 10, client_cpu_seconds: 9, minio_cpu_seconds: 8 },
      restic: { wall_seconds: 30, client_cpu_seconds: null, minio_cpu_seconds: 12 },
    };
    const table = renderCpuTable(r);
    expect(table).toContain('| Backup | Lifeline | 10.0 | 9.0 | 8.0 | 1.70 |');
    expect(table).toContain('| Backup | restic | 30.0 | — | 12.0 | — |');
    expect(renderMarkdown(r)).toContain('Where the time went');
    expect(renderMarkdown(r)).not.toContain('Shared machine');
    r.backup!.cpu.restic!.other_cpu_seconds = 20;
    expect(renderMarkdown(r)).toContain('**Shared machine:** other processes used a large share of the CPU during the restic backup (20.0 CPU-s in 30.0 s)');
  });
});
