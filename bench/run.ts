/**
 * Storage-engine bench: Lifeline against restic, a raw S3 upload and the age
 * CLI, all in one run against one private local MinIO.
 *
 *   npm run bench               full run (≈ 3 GiB data set, 1 GiB / 4 GiB single files)
 *   npm run bench -- --quick    small data (≈ 250 MiB) for development
 *   options: --data-dir <dir>   where the generated source data is cached
 *                               (default $TMPDIR/lifeline-bench/storage, or LIFELINE_BENCH_DATA)
 *
 * Cases: backup throughput (Lifeline, restic, raw PutObject), restore
 * throughput (Lifeline, restic; both trees verified byte-identical), age
 * encryption (Lifeline vs age CLI), incremental backups (nothing changed;
 * 1 MiB rewritten in a 1 GiB file), and peak RSS of a 4 GiB backup and
 * restore in separate processes. Results: bench/results/latest.json and
 * latest.md (plus a timestamped copy of each). Targets are reported, never
 * enforced: the exit code is non-zero only when something broke.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { S3ObjectStore } from '../engine/backend/s3';
import { DEFAULT_CHUNKER_PARAMS } from '../engine/chunker';
import { DEFAULT_PACK_SIZE } from '../engine/repository';
import { ensureTool } from '../devstack/tools.mjs';
import { scrubString } from '../logging/redact';
import { installSignalHandlers, isInterrupted, onCleanup, runCleanup } from './lib/cleanup';
import { datasetSpec, ensureData, rewriteMiddle, type DatasetSpec } from './lib/dataset';
import { compareTrees, hashFile, hashTree, readTree, type FileDigest } from './lib/hash';
import { initRepository, makeKeys, makeStore, storeOptions, type BenchKeys, type S3Target } from './lib/lifeline';
import { machineInfo, systemBusySeconds, toolVersions } from './lib/machine';
import { claimWorkDir, reapStaleWorkDirs, startMinio, WORK_PREFIX, type BenchMinio } from './lib/minio';
import { BenchError, findExecutable, runCommand } from './lib/proc';
import { log, mbps, Progress } from './lib/progress';
import { RAW_PUT_BUFFER_LIMIT, rawGet, rawPut } from './lib/rawput';
import { evaluateTargets, fmtBytes, renderMarkdown, renderTable, type BenchMode, type BenchResults, type CpuSplit } from './lib/report';
import { Restic } from './lib/restic';
import type { ChildResult, ChildSettings } from './lib/lifeline-child';

const MiB = 1024 * 1024;
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
const REGION = 'us-east-1';
const BUCKETS = { lifeline: 'lifeline', restic: 'restic', raw: 'raw' } as const;
const ENCRYPT_RUNS = 3;
const KiB = (n: number) => `${n / 1024} KiB`;
const LIFELINE_SETTINGS =
  `engine defaults (chunker min/avg/max ${KiB(DEFAULT_CHUNKER_PARAMS.minSize)}/${KiB(DEFAULT_CHUNKER_PARAMS.avgSize)}/${KiB(DEFAULT_CHUNKER_PARAMS.maxSize)}, ` +
  `${DEFAULT_PACK_SIZE / MiB} MiB packs, default upload / read concurrency), each run in its own process; timed from creating the store and opening the repository`;
const RESTIC_SETTINGS = 'restic defaults (repository format 2, compression auto), s3 backend; timed as the whole process';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'data-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

interface Ctx {
  mode: BenchMode;
  spec: DatasetSpec;
  work: string;
  minio: BenchMinio;
  s3: S3Target;
  keys: BenchKeys;
  restic: Restic;
  ageBin: string;
  source: Map<string, FileDigest>;
  results: BenchResults;
}

const secondsSince = (t: number) => (performance.now() - t) / 1000;
const fmtMBps = (v: number) => `${v.toFixed(v >= 100 ? 0 : 1)} MB/s`;

/** Flush dirty pages of the previous case, then read the source once more so every contender starts from page cache. */
function prepare(root: string, label: string): void {
  spawnSync('sync');
  const t = performance.now();
  const bytes = readTree(root);
  const s = secondsSince(t);
  log(`  (before ${label}: sync; source read back from page cache at ${fmtMBps(mbps(bytes, s))})`);
}

// ---------------------------------------------------------------------------
// Lifeline operations, each in its own process (bench/lib/lifeline-child.ts)

type LifelineRun = ChildResult & { process_seconds: number; process_cpu_seconds: number; peak_rss_mb: number };

async function lifelineChild(ctx: Ctx, settings: ChildSettings, label: string, total: number): Promise<LifelineRun> {
  const p = new Progress(label, total);
  let result: ChildResult | undefined;
  const run = await runCommand(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'lib', 'lifeline-child.ts')], {
    cwd: REPO_ROOT,
    env: { ...process.env, LIFELINE_BENCH_CHILD: JSON.stringify(settings) },
    label,
    measureRss: true,
    onStdoutLine: (line) => {
      if (line.startsWith('LLBENCH_PROGRESS ')) p.update(Number(line.slice('LLBENCH_PROGRESS '.length)));
      else if (line.startsWith('LLBENCH_RESULT ')) result = JSON.parse(line.slice('LLBENCH_RESULT '.length)) as ChildResult;
    },
  });
  if (!result) throw new BenchError(`${label}: the child process reported no result`);
  return { ...result, process_seconds: run.seconds, process_cpu_seconds: run.cpuSeconds ?? result.cpu_seconds, peak_rss_mb: (result.vmhwm_kb * 1024) / 1e6 };
}

function repoSettings(ctx: Ctx, prefix: string): Pick<ChildSettings, 's3' | 'credentialsFile' | 'identityFile' | 'signingKeyFile'> {
  return {
    s3: { endpoint: ctx.s3.endpoint, region: REGION, bucket: BUCKETS.lifeline, prefix },
    credentialsFile: ctx.minio.credentialsFile,
    identityFile: ctx.keys.identityFile,
    signingKeyFile: ctx.keys.signingKeyFile,
  };
}

async function lifelineBackup(ctx: Ctx, label: string, asset: string, root: string, total: number): Promise<LifelineRun> {
  return lifelineChild(ctx, { ...repoSettings(ctx, asset), op: 'backup', asset, root }, label, total);
}

async function createRepository(ctx: Ctx, prefix: string): Promise<void> {
  const s = makeStore(ctx.s3, BUCKETS.lifeline, prefix);
  try {
    await initRepository(s, ctx.keys);
  } finally {
    s.client.destroy();
  }
}

const mb = (kb: number | null) => (kb === null ? null : (kb * 1024) / 1e6);

/** Runs fn and reports the wall time, the client's CPU time (from fn's result) and MinIO's CPU time meanwhile. */
async function withCpu<T>(ctx: Ctx, fn: () => Promise<T>, clientCpu: (r: T) => number | null): Promise<{ r: T; cpu: CpuSplit }> {
  const m0 = ctx.minio.cpuSeconds();
  const s0 = systemBusySeconds();
  const t = performance.now();
  const r = await fn();
  const wall = secondsSince(t);
  const client = clientCpu(r);
  const minio = ctx.minio.cpuSeconds() - m0;
  const other = systemBusySeconds() - s0 - minio - (client ?? 0);
  return {
    r,
    cpu: { wall_seconds: wall, client_cpu_seconds: client, minio_cpu_seconds: minio, other_cpu_seconds: client === null ? null : Math.max(0, other) },
  };
}

/** CPU seconds this (bench) process uses while fn runs: for the raw S3 contenders, which run in it. */
async function inProcessCpu<T>(fn: () => Promise<T>): Promise<T & { cpu_seconds: number }> {
  const c0 = process.cpuUsage();
  const r = await fn();
  const c = process.cpuUsage(c0);
  return { ...r, cpu_seconds: (c.user + c.system) / 1e6 };
}

// ---------------------------------------------------------------------------
// Cases

async function caseBackup(ctx: Ctx): Promise<void> {
  const { spec } = ctx;
  log(`\n[backup] ${fmtBytes(spec.totalBytes)} in ${spec.files.length} files → MinIO`);

  // Lifeline
  await S3ObjectStore.ensureBucket(storeOptions(ctx.s3, BUCKETS.lifeline, ''));
  await createRepository(ctx, 'dataset');
  prepare(spec.datasetDir, 'Lifeline backup');
  const { r: l, cpu: lCpu } = await withCpu(ctx, () => lifelineBackup(ctx, 'Lifeline backup', 'dataset', spec.datasetDir, spec.totalBytes), (x) => x.process_cpu_seconds);
  if (l.bytes !== spec.totalBytes) throw new BenchError(`Lifeline backup covered ${l.bytes} of ${spec.totalBytes} bytes`);
  const lifelineMbps = mbps(spec.totalBytes, l.seconds);
  log(`  Lifeline backup: ${l.seconds.toFixed(1)} s, ${fmtMBps(lifelineMbps)} (${fmtBytes(l.put_bytes!)} uploaded in ${l.put_objects} objects; peak RSS ${l.peak_rss_mb.toFixed(0)} MB)`);

  // Lifeline, nothing changed
  const u = await lifelineBackup(ctx, 'Lifeline backup, unchanged', 'dataset', spec.datasetDir, spec.totalBytes);
  log(`  Lifeline backup, nothing changed: ${u.seconds.toFixed(2)} s (read ${fmtBytes(u.stats!.readBytes)}, uploaded ${fmtBytes(u.put_bytes!)} in ${u.put_objects} objects)`);

  // restic
  await S3ObjectStore.ensureBucket(storeOptions(ctx.s3, BUCKETS.restic, ''));
  await ctx.restic.init();
  prepare(spec.datasetDir, 'restic backup');
  const { r, cpu: rCpu } = await withCpu(ctx, () => ctx.restic.backup(spec.datasetDir, new Progress('restic backup', spec.totalBytes)), (x) => x.run.cpuSeconds);
  const resticMbps = mbps(spec.totalBytes, r.run.seconds);
  log(`  restic backup: ${r.run.seconds.toFixed(1)} s, ${fmtMBps(resticMbps)} (data added ${fmtBytes(r.summary.data_added ?? 0)}; peak RSS ${mb(r.run.maxRssKb)?.toFixed(0) ?? '?'} MB)`);
  const ru = await ctx.restic.backup(spec.datasetDir);
  log(`  restic backup, nothing changed: ${ru.run.seconds.toFixed(2)} s`);

  // raw PutObject
  await S3ObjectStore.ensureBucket(storeOptions(ctx.s3, BUCKETS.raw, ''));
  prepare(spec.datasetDir, 'raw PutObject');
  const rp = new Progress('raw PutObject', spec.totalBytes);
  const { r: raw, cpu: rawCpu } = await withCpu(
    ctx,
    () => inProcessCpu(() => rawPut(ctx.s3, BUCKETS.raw, spec.datasetDir, spec.files, (d) => rp.update(d))),
    (x) => x.cpu_seconds,
  );
  if (raw.bytes !== spec.totalBytes) throw new BenchError(`raw PutObject uploaded ${raw.bytes} of ${spec.totalBytes} bytes`);
  const rawMbps = mbps(spec.totalBytes, raw.seconds);
  log(`  raw PutObject: ${raw.seconds.toFixed(1)} s, ${fmtMBps(rawMbps)} (${raw.concurrency} in flight)`);

  ctx.results.backup = {
    data_bytes: spec.totalBytes,
    files: spec.files.length,
    lifeline_mbps: lifelineMbps,
    restic_mbps: resticMbps,
    raw_put_mbps: rawMbps,
    lifeline_seconds: l.seconds,
    restic_seconds: r.run.seconds,
    raw_put_seconds: raw.seconds,
    lifeline_process_seconds: l.process_seconds,
    lifeline_cpu_seconds: l.cpu_seconds,
    lifeline_peak_rss_mb: l.peak_rss_mb,
    lifeline_stats: l.stats,
    lifeline_put_bytes: l.put_bytes,
    lifeline_put_objects: l.put_objects,
    lifeline_settings: LIFELINE_SETTINGS,
    restic_summary: r.summary,
    restic_peak_rss_mb: mb(r.run.maxRssKb),
    restic_settings: RESTIC_SETTINGS,
    raw_put_concurrency: raw.concurrency,
    cpu: { lifeline: lCpu, restic: rCpu, raw_put: rawCpu },
    raw_put_settings: `stock S3Client (default checksums: CRC32), one PutObject per file, ${raw.concurrency} in flight, files ≤ ${RAW_PUT_BUFFER_LIMIT / MiB} MiB buffered, larger streamed; in the bench process`,
  };
  ctx.results.incremental = {
    data_bytes: spec.totalBytes,
    unchanged_seconds: u.seconds,
    changed_upload_fraction: NaN,
    changed_file_bytes: spec.changeFile.bytes,
    changed_uploaded_bytes: NaN,
    restic_unchanged_seconds: ru.run.seconds,
    restic_changed_upload_fraction: null,
    unchanged_process_seconds: u.process_seconds,
    unchanged_stats: u.stats,
    unchanged_put_bytes: u.put_bytes,
    unchanged_put_objects: u.put_objects,
  };
}

function verifyTree(root: string, expected: Map<string, FileDigest>, label: string): void {
  const p = new Progress(`verify ${label}`, [...expected.values()].reduce((n, d) => n + d.size, 0));
  let done = 0;
  const actual = hashTree(root, (n) => p.update((done += n)));
  const problems = compareTrees(expected, actual);
  if (problems.length > 0) {
    throw new BenchError(`${label}: restored tree differs from the source (${problems.length} problems): ${problems.slice(0, 5).join('; ')}`);
  }
  p.done(`${actual.size} files byte-identical to the source (SHA-256)`);
}

async function caseRestore(ctx: Ctx): Promise<void> {
  const { spec } = ctx;
  log(`\n[restore] latest snapshot → fresh folder, then SHA-256 of every file against the source`);

  // Lifeline
  const lTarget = join(ctx.work, 'restore-lifeline');
  spawnSync('sync');
  const { r: l, cpu: lCpu } = await withCpu(
    ctx,
    () => lifelineChild(ctx, { ...repoSettings(ctx, 'dataset'), op: 'restore', asset: 'dataset', snapshotId: 'latest', target: lTarget }, 'Lifeline restore', spec.totalBytes),
    (x) => x.process_cpu_seconds,
  );
  const lMbps = mbps(spec.totalBytes, l.seconds);
  log(`  Lifeline restore: ${l.seconds.toFixed(1)} s, ${fmtMBps(lMbps)} (peak RSS ${l.peak_rss_mb.toFixed(0)} MB)`);
  if (l.bytes !== spec.totalBytes) throw new BenchError(`Lifeline restore wrote ${l.bytes} of ${spec.totalBytes} bytes`);
  verifyTree(lTarget, ctx.source, 'Lifeline restore');
  rmSync(lTarget, { recursive: true, force: true });

  // restic
  const rTarget = join(ctx.work, 'restore-restic');
  spawnSync('sync');
  const { r: rr, cpu: rCpu } = await withCpu(ctx, () => ctx.restic.restoreLatest(rTarget, new Progress('restic restore')), (x) => x.cpuSeconds);
  const rMbps = mbps(spec.totalBytes, rr.seconds);
  log(`  restic restore: ${rr.seconds.toFixed(1)} s, ${fmtMBps(rMbps)} (peak RSS ${mb(rr.maxRssKb)?.toFixed(0) ?? '?'} MB)`);
  // restic restores the absolute path of what was backed up below the target.
  const rRoot = join(rTarget, spec.datasetDir);
  if (!existsSync(rRoot)) throw new BenchError(`restic restore: ${rRoot} does not exist after the restore`);
  verifyTree(rRoot, ctx.source, 'restic restore');
  rmSync(rTarget, { recursive: true, force: true });

  // raw GetObject of the raw PutObject upload: the ceiling (no decryption, no checks beyond the SDK's CRC32)
  const gTarget = join(ctx.work, 'restore-raw');
  spawnSync('sync');
  const gp = new Progress('raw GetObject', spec.totalBytes);
  const { r: g, cpu: gCpu } = await withCpu(
    ctx,
    () => inProcessCpu(() => rawGet(ctx.s3, BUCKETS.raw, gTarget, spec.files, (d) => gp.update(d))),
    (x) => x.cpu_seconds,
  );
  const gMbps = mbps(spec.totalBytes, g.seconds);
  log(`  raw GetObject → files: ${g.seconds.toFixed(1)} s, ${fmtMBps(gMbps)} (${g.concurrency} in flight; not verified, a ceiling for comparison)`);
  rmSync(gTarget, { recursive: true, force: true });

  ctx.results.restore = {
    data_bytes: spec.totalBytes,
    files: spec.files.length,
    lifeline_mbps: lMbps,
    restic_mbps: rMbps,
    lifeline_seconds: l.seconds,
    restic_seconds: rr.seconds,
    verified: true,
    lifeline_process_seconds: l.process_seconds,
    lifeline_cpu_seconds: l.cpu_seconds,
    lifeline_peak_rss_mb: l.peak_rss_mb,
    lifeline_settings: LIFELINE_SETTINGS,
    restic_peak_rss_mb: mb(rr.maxRssKb),
    restic_settings: RESTIC_SETTINGS,
    raw_get_mbps: gMbps,
    raw_get_seconds: g.seconds,
    raw_get_settings: `stock S3Client (default response checksum validation), one GetObject per file streamed to a file, ${g.concurrency} in flight; in the bench process`,
    cpu: { lifeline: lCpu, restic: rCpu, raw_get: gCpu },
  };
}

async function caseChanged(ctx: Ctx): Promise<void> {
  const { spec } = ctx;
  const file = join(spec.datasetDir, spec.changeFile.rel);
  const at = rewriteMiddle(file, 1 * MiB);
  log(`\n[incremental] rewrote 1 MiB at offset ${at.offset} of ${spec.changeFile.rel} (${fmtBytes(spec.changeFile.bytes)}), backing up again`);
  const c = await lifelineBackup(ctx, 'Lifeline backup, 1 MiB changed', 'dataset', spec.datasetDir, spec.totalBytes);
  const fraction = c.put_bytes! / spec.changeFile.bytes;
  log(
    `  Lifeline: ${c.seconds.toFixed(2)} s, uploaded ${fmtBytes(c.put_bytes!)} in ${c.put_objects} objects = ${(fraction * 100).toFixed(2)}% of the file ` +
      `(new blob bytes ${fmtBytes(c.stats!.newBytes)}, pack+index bytes ${fmtBytes(c.stats!.uploadedBytes)})`,
  );
  const r = await ctx.restic.backup(spec.datasetDir);
  const rAdded = r.summary.data_added ?? NaN;
  const rFraction = rAdded / spec.changeFile.bytes;
  log(`  restic: ${r.run.seconds.toFixed(2)} s, data added ${fmtBytes(rAdded)} = ${(rFraction * 100).toFixed(2)}% of the file`);
  Object.assign(ctx.results.incremental!, {
    changed_upload_fraction: fraction,
    changed_uploaded_bytes: c.put_bytes,
    changed_uploaded_measure:
      'body bytes of every PUT to the object store during the backup (packs, index, lease, manifest); the manifest stats newBytes and uploadedBytes are recorded alongside',
    changed_seconds: c.seconds,
    changed_stats: c.stats,
    changed_put_objects: c.put_objects,
    changed_offset: at.offset,
    changed_length: at.length,
    changed_file: spec.changeFile.rel,
    restic_changed_upload_fraction: rFraction,
    restic_changed_data_added: rAdded,
    restic_changed_measure: 'data_added of the restic backup summary',
    restic_changed_seconds: r.run.seconds,
  });
}

async function caseEncrypt(ctx: Ctx): Promise<void> {
  const { path, bytes } = ctx.spec.encryptFile;
  log(`\n[encrypt] age format, ${fmtBytes(bytes)} file → /dev/null, X25519 recipient, ${ENCRYPT_RUNS} interleaved runs`);
  prepare(path, 'encryption');
  const ours: LifelineRun[] = [];
  const cli: number[] = [];
  for (let i = 0; i < ENCRYPT_RUNS; i++) {
    const l = await lifelineChild(ctx, { op: 'encrypt', file: path, recipient: ctx.keys.recipient }, 'Lifeline encrypt', bytes);
    if (l.bytes < bytes) throw new BenchError(`Lifeline encryption wrote ${l.bytes} bytes for ${bytes} bytes of plaintext`);
    ours.push(l);
    const c = await runCommand(ctx.ageBin, ['-e', '-r', ctx.keys.recipient, '-o', '/dev/null', path], { label: 'age -e' });
    cli.push(c.seconds);
    log(`  run ${i + 1}: Lifeline ${fmtMBps(mbps(bytes, l.seconds))}, age CLI ${fmtMBps(mbps(bytes, c.seconds))}`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  const oursSeconds = ours.map((o) => o.seconds);
  ctx.results.encrypt = {
    data_bytes: bytes,
    lifeline_mbps: mbps(bytes, median(oursSeconds)),
    age_cli_mbps: mbps(bytes, median(cli)),
    runs: ENCRYPT_RUNS,
    statistic: 'median of the runs',
    lifeline_seconds: oursSeconds,
    lifeline_cpu_seconds: ours.map((o) => o.cpu_seconds),
    age_cli_seconds: cli,
    lifeline_impl:
      'encryptStream (engine/crypto/age.ts) in its own process: fs.createReadStream (1 MiB reads) → encryptStream → fs.createWriteStream(/dev/null); timed from opening the file (header creation included)',
    age_cli_impl: `${ctx.ageBin} -e -r <recipient> -o /dev/null <file>, timed as the whole process`,
  };
}

async function caseRss(ctx: Ctx): Promise<void> {
  const { spec } = ctx;
  const bytes = spec.rssFile.bytes;
  log(`\n[memory] peak RSS (VmHWM) of a separate process backing up, then restoring, a ${fmtBytes(bytes)} file`);
  const hp = new Progress('read + hash the file (warms page cache)', bytes);
  let done = 0;
  const digest = hashFile(spec.rssFile.path, (n) => hp.update((done += n)));
  await createRepository(ctx, 'rss');
  spawnSync('sync');
  const b = await lifelineBackup(ctx, 'Lifeline backup', 'rss', spec.rssDir, bytes);
  const baseMb = (kb: number) => ((kb * 1024) / 1e6).toFixed(0);
  log(`  backup: peak RSS ${b.peak_rss_mb.toFixed(0)} MB (${baseMb(b.baseline_vmhwm_kb)} MB after loading the code), ${b.seconds.toFixed(1)} s, ${fmtMBps(mbps(bytes, b.seconds))}`);
  const target = join(ctx.work, 'restore-rss');
  spawnSync('sync');
  const r = await lifelineChild(ctx, { ...repoSettings(ctx, 'rss'), op: 'restore', snapshotId: b.snapshot_id!, target }, 'Lifeline restore', bytes);
  log(`  restore: peak RSS ${r.peak_rss_mb.toFixed(0)} MB (${baseMb(r.baseline_vmhwm_kb)} MB after loading the code), ${r.seconds.toFixed(1)} s, ${fmtMBps(mbps(bytes, r.seconds))}`);
  const restored = hashFile(join(target, spec.rssFile.rel));
  if (restored.size !== digest.size || restored.sha256 !== digest.sha256) throw new BenchError('memory case: the restored file differs from the source');
  log(`  restored file byte-identical to the source (SHA-256)`);
  rmSync(target, { recursive: true, force: true });
  ctx.results.rss = {
    data_bytes: bytes,
    backup_4gib_mb: b.peak_rss_mb,
    restore_4gib_mb: r.peak_rss_mb,
    backup_baseline_mb: (b.baseline_vmhwm_kb * 1024) / 1e6,
    restore_baseline_mb: (r.baseline_vmhwm_kb * 1024) / 1e6,
    backup_seconds: b.seconds,
    restore_seconds: r.seconds,
    backup_mbps: mbps(bytes, b.seconds),
    restore_mbps: mbps(bytes, r.seconds),
    measure:
      'VmHWM (/proc/self/status) at the end of its own process (node --import tsx bench/lib/lifeline-child.ts); baseline = VmHWM after loading the code, before any work',
  };
}

// ---------------------------------------------------------------------------

function writeResults(results: BenchResults): { json: string; md: string } {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = join(RESULTS_DIR, 'latest.json');
  const md = join(RESULTS_DIR, 'latest.md');
  const text = JSON.stringify(results, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n';
  const mdText = renderMarkdown(results);
  writeFileSync(json, text);
  writeFileSync(md, mdText);
  const stamp = results.started_at.replace(/[:.]/g, '-');
  writeFileSync(join(RESULTS_DIR, `${stamp}-${results.mode}.json`), text);
  writeFileSync(join(RESULTS_DIR, `${stamp}-${results.mode}.md`), mdText);
  return { json, md };
}

async function main(): Promise<number> {
  if (flags.help) {
    process.stdout.write(
      [
        'usage: npm run bench [-- --quick] [-- --data-dir <dir>]',
        '',
        'Storage-engine bench: Lifeline vs restic, raw S3 PutObject/GetObject and the age CLI against a private local MinIO.',
        '  --quick           small data (≈ 250 MiB data set, 256 MiB single files) for development',
        '  --data-dir <dir>  cache of the generated source data (default $TMPDIR/lifeline-bench/storage, or LIFELINE_BENCH_DATA)',
        '',
        'Writes bench/results/latest.json and latest.md; exits non-zero only when something broke (never for a missed target).',
        '',
      ].join('\n'),
    );
    return 0;
  }
  installSignalHandlers(log);
  // Lifeline targets Node 20 (as bin/lifeline does): the AWS SDK's notice about its future Node 22 floor is noise here.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const mode: BenchMode = flags.quick ? 'quick' : 'full';
  const started = new Date();
  const t0 = performance.now();

  const resticBin = findExecutable('restic');
  const ageBin = findExecutable('age');
  const missing = [!resticBin && 'restic', !ageBin && 'age'].filter(Boolean);
  if (missing.length > 0) {
    log(`error: ${missing.join(' and ')} not found (looked on PATH and in /usr/bin). Run \`node devstack/bootstrap.mjs\` (installs restic and age from Debian) and try again.`);
    return 1;
  }
  const versions = toolVersions(resticBin!, ageBin!);
  const machine = machineInfo(REPO_ROOT, versions);
  const results: BenchResults = { schema: 1, status: 'ok', mode, started_at: started.toISOString(), finished_at: '', duration_seconds: 0, machine };
  log(`Lifeline storage-engine bench (${mode}) — ${machine.cpu_model}, ${machine.cores} cores, Node ${machine.node}, restic ${versions.restic}, age ${versions.age}`);

  const baseDir = resolve(flags['data-dir'] ?? process.env.LIFELINE_BENCH_DATA ?? join(tmpdir(), 'lifeline-bench', 'storage'));
  const spec = datasetSpec(mode, baseDir);
  let exitCode = 0;
  try {
    await reapStaleWorkDirs(log);
    await ensureTool('minio', { log: (m) => log(`  ${m}`) });

    log(`\n[data] ${spec.base}: data set ${fmtBytes(spec.totalBytes)} (${spec.largeFiles} large files, ${spec.smallFiles} small files), ` +
      `encryption file ${fmtBytes(spec.encryptFile.bytes)}, memory file ${fmtBytes(spec.rssFile.bytes)}`);
    const gp = new Progress('generating random data');
    const gen = await ensureData(spec, (d, total) => gp.update(d, `of ${(total / 1e6).toFixed(0)} MB`));
    gp.done(
      gen.generatedFiles === 0
        ? `all cached (${fmtBytes(gen.reusedBytes)}), nothing generated`
        : `generated ${gen.generatedFiles} files, ${fmtBytes(gen.generatedBytes)} in ${gen.seconds.toFixed(1)} s; reused ${fmtBytes(gen.reusedBytes)}`,
    );
    results.dataset = {
      dir: spec.datasetDir,
      cache_dir: spec.base,
      files: spec.files.length,
      bytes: spec.totalBytes,
      large_files: spec.largeFiles,
      small_files: spec.smallFiles,
      small_bytes: spec.smallBytes,
      content: 'random (incompressible)',
      generated_bytes: gen.generatedBytes,
    };

    // MinIO holds three copies of the data set and one of the memory file; restores need one more data set at a time.
    const needed = (spec.totalBytes * 4 + spec.rssFile.bytes * 2) * 1.1;
    const fs = statfsSync(tmpdir());
    const free = fs.bavail * fs.bsize;
    if (free < needed) {
      throw new BenchError(`not enough free space in ${tmpdir()}: the run needs about ${fmtBytes(needed)} (MinIO data and restores), ${fmtBytes(free)} are free`);
    }

    const work = mkdtempSync(join(tmpdir(), WORK_PREFIX));
    claimWorkDir(work);
    onCleanup('remove the work folder', () => rmSync(work, { recursive: true, force: true }));

    log(`\n[minio] starting a private MinIO (free ports, data in ${join(work, 'stack')})`);
    const minio = await startMinio(join(work, 'stack'), log);
    onCleanup('stop MinIO', minio.stop);
    log(`  MinIO at ${minio.endpoint}`);
    const s3: S3Target = { endpoint: minio.endpoint, region: REGION, credentials: minio.credentials };
    const keys = await makeKeys(join(work, 'keys'));
    const restic = new Restic(resticBin!, s3, BUCKETS.restic, join(work, 'restic-cache'));

    log(`\n[source] reading the data set once (page cache) and hashing it for the restore checks`);
    const hp = new Progress('read + hash', spec.totalBytes);
    let hashed = 0;
    const source = hashTree(spec.datasetDir, (n) => hp.update((hashed += n)));
    hp.done(`${source.size} files, ${fmtMBps(mbps(spec.totalBytes, hp.seconds))}`);

    const ctx: Ctx = { mode, spec, work, minio, s3, keys, restic, ageBin: ageBin!, source, results };
    await caseBackup(ctx);
    await caseRestore(ctx);
    await caseChanged(ctx);
    await caseEncrypt(ctx);
    await caseRss(ctx);
  } catch (err) {
    if (isInterrupted()) {
      // The signal handler cleans up and exits; an interrupted run writes no results.
      await runCleanup(log);
      return 130;
    }
    exitCode = 1;
    results.status = 'failed';
    results.error = scrubString(err instanceof Error ? err.message : String(err));
    log(`\nBENCH FAILED: ${results.error}`);
    if (!(err instanceof BenchError) && err instanceof Error && err.stack) log(scrubString(err.stack));
  } finally {
    log('\n[cleanup] stopping MinIO, removing its data and the restore folders');
    await runCleanup(log);
  }

  results.finished_at = new Date().toISOString();
  results.duration_seconds = secondsSince(t0);
  results.targets = evaluateTargets(results);
  const files = writeResults(results);
  log(`\n${renderTable(results.targets)}\n`);
  log(`Results: ${files.json}, ${files.md}`);
  log(`Source data cached in ${spec.base} (${fmtBytes(spec.totalBytes + spec.encryptFile.bytes + spec.rssFile.bytes)}); delete it to free the space, it is regenerated when missing.`);
  log(`Total runtime: ${(results.duration_seconds / 60).toFixed(1)} min (${results.duration_seconds.toFixed(0)} s)${results.status === 'ok' ? '' : ' — FAILED'}`);
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${scrubString(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
    void runCleanup(log).finally(() => process.exit(1));
  },
);
