/**
 * One Lifeline operation in its own Node process — backup, restore or age
 * encryption — so each is measured like the peer tools (a fresh process, not
 * the bench's long-lived heap) and its peak RSS is its own. Run as
 *
 *   node --import tsx bench/lib/lifeline-child.ts
 *
 * with the settings as JSON in LIFELINE_BENCH_CHILD (paths only; secrets come
 * from 0600 files). The timed span starts before the object store is created
 * and the repository opened, and ends when the operation returned (module
 * loading is not timed; the parent records the whole process time too).
 *
 * stdout: `LLBENCH_PROGRESS <bytes>` about once a second, then one line
 * `LLBENCH_RESULT {json}` with the timing, CPU time and VmHWM (peak RSS) at
 * the end and at the start (after loading the code, before any work).
 */
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { backup } from '../../engine/archiver';
import { S3ObjectStore } from '../../engine/backend/s3';
import { AgeIdentities, encryptStream } from '../../engine/crypto/age';
import { SigningKey } from '../../engine/crypto/signing';
import { Repository } from '../../engine/repository';
import { restore } from '../../engine/restorer';
import { countingStore } from './lifeline';

export interface ChildSettings {
  op: 'backup' | 'restore' | 'encrypt';
  s3?: { endpoint: string; region: string; bucket: string; prefix: string };
  credentialsFile?: string;
  identityFile?: string;
  signingKeyFile?: string;
  /** backup: asset name and folder */
  asset?: string;
  root?: string;
  /** restore: snapshot id, or 'latest' (newest snapshot of `asset`, looked up inside the timed span) and target folder */
  snapshotId?: string;
  target?: string;
  /** encrypt: plaintext file and recipient; the ciphertext goes to /dev/null */
  file?: string;
  recipient?: string;
}

export interface ChildResult {
  op: ChildSettings['op'];
  seconds: number;
  cpu_seconds: number;
  vmhwm_kb: number;
  baseline_vmhwm_kb: number;
  bytes: number;
  snapshot_id?: string;
  stats?: import('../../engine/manifest').SnapshotStats;
  /** backup: body bytes and count of every PUT to the store (packs, index, lease, manifest) */
  put_bytes?: number;
  put_objects?: number;
  /** encrypt: bytes written to /dev/null */
  ciphertext_bytes?: number;
}

function vmHwmKb(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const s = JSON.parse(process.env.LIFELINE_BENCH_CHILD ?? '') as ChildSettings;
  const baseline = vmHwmKb();
  let lastReport = performance.now();
  const progress = (bytes: number) => {
    const now = performance.now();
    if (now - lastReport < 1000) return;
    lastReport = now;
    process.stdout.write(`LLBENCH_PROGRESS ${bytes}\n`);
  };

  let result: Omit<ChildResult, 'seconds' | 'cpu_seconds' | 'vmhwm_kb' | 'baseline_vmhwm_kb'>;
  let t0: number;
  let cpu0: NodeJS.CpuUsage;
  if (s.op === 'encrypt') {
    t0 = performance.now();
    cpu0 = process.cpuUsage();
    const out = createWriteStream('/dev/null');
    await pipeline(createReadStream(s.file!, { highWaterMark: 1 * MiB }), encryptStream([s.recipient!]), out);
    result = { op: 'encrypt', bytes: out.bytesWritten, ciphertext_bytes: out.bytesWritten };
  } else {
    const creds = JSON.parse(readFileSync(s.credentialsFile!, 'utf8')) as { accessKeyId: string; secretAccessKey: string };
    const identities = await AgeIdentities.fromFile(s.identityFile!);
    const signingKey = await SigningKey.fromFile(s.signingKeyFile!);
    t0 = performance.now();
    cpu0 = process.cpuUsage();
    const raw = new S3ObjectStore({ ...s.s3!, credentials: creds });
    const { store, counter } = countingStore(raw);
    try {
      const repo = await Repository.open(store, { identities, signingKey });
      if (s.op === 'backup') {
        const r = await backup(repo, {
          root: s.root!,
          asset: { name: s.asset!, kind: 'dataset', tenant: 'bench' },
          onProgress: (p) => progress(p.bytesDone),
        });
        result = { op: 'backup', bytes: r.stats.totalBytes, snapshot_id: r.snapshotId, stats: r.stats, put_bytes: counter.bytes, put_objects: counter.objects };
      } else {
        let id = s.snapshotId!;
        if (id === 'latest') {
          const snaps = await repo.listSnapshots({ asset: s.asset! });
          if (snaps.length === 0) throw new Error(`no snapshot of ${s.asset} to restore`);
          id = snaps[snaps.length - 1]!.id;
        }
        const r = await restore(repo, id, { target: s.target!, onProgress: (p) => progress(p.bytesDone) });
        result = { op: 'restore', bytes: r.bytes, snapshot_id: r.snapshotId };
      }
    } finally {
      raw.client.destroy();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const full: ChildResult = { ...result, seconds, cpu_seconds: (cpu.user + cpu.system) / 1e6, vmhwm_kb: vmHwmKb(), baseline_vmhwm_kb: baseline };
  process.stdout.write(`LLBENCH_RESULT ${JSON.stringify(full)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
