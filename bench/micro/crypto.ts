/**
 * Micro-benchmark of age encryption/decryption throughput: ours (typage
 * headers + node:crypto payload), typage's own Encrypter/Decrypter, and the
 * `age` CLI — all streamed from a page-cached file to a discarding sink, never
 * holding the whole file in memory.
 *
 *   npx tsx bench/micro/crypto.ts [--sizes 256,1024] [--runs 3] [--no-typage] [--json] [--keep]
 *
 * Reports MB/s (10^6 bytes of plaintext per second; best and median of the
 * runs), MB per CPU-second (user+sys of all threads: robust when other work
 * shares the machine), minor page faults (this process via
 * process.resourceUsage, the CLI via /usr/bin/time), and ratios against the
 * age CLI. Implementations are interleaved run by run so they see the same
 * load; typage runs once (it is ~15x slower). Plaintext files are kept under the OS temp
 * dir (reused by later runs, so they are page-cached); ciphertexts are removed
 * unless --keep.
 */
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { Decrypter, Encrypter } from 'age-encryption';
import { AgeEncryptor, AgeIdentities, decryptStream, encryptStream } from '../../engine/crypto/age';
import { generateAgeIdentityFile, writeSecretFile } from '../../engine/crypto/key-files';

const MiB = 1024 * 1024;
const AGE = process.env.AGE_BIN ?? '/usr/bin/age';
const TIME = '/usr/bin/time';

export interface CryptoBenchRow {
  op: 'encrypt' | 'decrypt';
  impl: string;
  sizeBytes: number;
  /** Wall seconds of each run. */
  seconds: number[];
  /** CPU seconds (user + sys, all threads) of each run. */
  cpuSeconds: number[];
  bestMBps: number;
  medianMBps: number;
  /** Plaintext MB per CPU second (best run): insensitive to other load on the machine. */
  cpuMBps: number;
  minorFaults: number;
}

interface RunResult {
  seconds: number;
  cpuSeconds: number;
  minorFaults: number;
}

interface Impl {
  op: CryptoBenchRow['op'];
  impl: string;
  once?: boolean;
  run: () => Promise<RunResult>;
}

async function ensureRandomFile(path: string, size: number): Promise<void> {
  const st = await stat(path).catch(() => null);
  if (st && st.size === size) return;
  const fh = await open(path, 'w');
  try {
    const cipher = createCipheriv('aes-256-ctr', Buffer.alloc(32, 3), Buffer.alloc(16, 0));
    const zeros = Buffer.alloc(16 * MiB);
    for (let written = 0; written < size; ) {
      const n = Math.min(zeros.length, size - written);
      await fh.write(cipher.update(zeros.subarray(0, n)), 0, n, written);
      written += n;
    }
  } finally {
    await fh.close();
  }
}

/** Sink that only counts. */
function discard(): Writable & { bytes: number } {
  const w = new Writable({
    highWaterMark: 1 * MiB,
    writev(chunks, cb) {
      for (const c of chunks) w.bytes += (c.chunk as Buffer).length;
      cb();
    },
    write(chunk: Buffer, _e, cb) {
      w.bytes += chunk.length;
      cb();
    },
  }) as Writable & { bytes: number };
  w.bytes = 0;
  return w;
}

async function timeInProcess(fn: () => Promise<void>): Promise<RunResult> {
  const u0 = process.resourceUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const u1 = process.resourceUsage();
  return {
    seconds,
    cpuSeconds: (u1.userCPUTime - u0.userCPUTime + u1.systemCPUTime - u0.systemCPUTime) / 1e6,
    minorFaults: u1.minorPageFault - u0.minorPageFault,
  };
}

/** Run a command with stdin/stdout redirected to files, timed; minor faults from /usr/bin/time. */
async function timeCommand(args: string[], stdinPath: string, stdoutPath: string): Promise<RunResult> {
  const inFh = await open(stdinPath, 'r');
  const outFh = await open(stdoutPath, 'w');
  const useTime = existsSync(TIME);
  const argv = useTime ? [TIME, '-f', 'FAULTS %R CPU %U %S', ...args] : args;
  try {
    const t0 = process.hrtime.bigint();
    const stderr = await new Promise<string>((resolve, reject) => {
      const p = spawn(argv[0]!, argv.slice(1), { stdio: [inFh.fd, outFh.fd, 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      p.on('error', reject);
      p.on('close', (code) => (code === 0 ? resolve(err) : reject(new Error(`${args.join(' ')} exited ${code}: ${err}`))));
    });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const m = /FAULTS (\d+) CPU ([\d.]+) ([\d.]+)/.exec(stderr);
    return { seconds, minorFaults: m ? Number(m[1]) : NaN, cpuSeconds: m ? Number(m[2]) + Number(m[3]) : NaN };
  } finally {
    await inFh.close();
    await outFh.close();
  }
}

function summarize(impl: Impl, size: number, results: RunResult[]): CryptoBenchRow {
  const seconds = results.map((r) => r.seconds);
  const cpuSeconds = results.map((r) => r.cpuSeconds);
  const sorted = [...seconds].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const row: CryptoBenchRow = {
    op: impl.op,
    impl: impl.impl,
    sizeBytes: size,
    seconds,
    cpuSeconds,
    bestMBps: size / 1e6 / sorted[0]!,
    medianMBps: size / 1e6 / median,
    cpuMBps: size / 1e6 / Math.min(...cpuSeconds),
    minorFaults: Math.min(...results.map((r) => r.minorFaults)),
  };
  process.stderr.write(
    `  ${row.op.padEnd(7)} ${row.impl.padEnd(36)} best ${row.bestMBps.toFixed(0).padStart(5)} MB/s, median ${row.medianMBps.toFixed(0).padStart(5)}, ` +
      `per CPU-s ${row.cpuMBps.toFixed(0).padStart(5)}  (${seconds.map((x) => x.toFixed(2)).join(', ')} s; ${row.minorFaults} minor faults)\n`,
  );
  return row;
}

/** Runs the implementations interleaved (run 1 of each, then run 2 of each, …) so they share the same machine load. */
async function measureInterleaved(impls: Impl[], size: number, runs: number): Promise<CryptoBenchRow[]> {
  const results = impls.map(() => [] as RunResult[]);
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < impls.length; i++) {
      if (impls[i]!.once && r > 0) continue;
      results[i]!.push(await impls[i]!.run());
    }
  }
  return impls.map((impl, i) => summarize(impl, size, results[i]!));
}

export async function runCryptoBench(opts: { sizesMiB?: number[]; runs?: number; typage?: boolean; keep?: boolean } = {}) {
  const sizesMiB = opts.sizesMiB ?? [256, 1024];
  const runs = opts.runs ?? 3;
  const dataDir = join(tmpdir(), 'lifeline-bench');
  await mkdir(dataDir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'lifeline-bench-crypto-'));
  const rows: CryptoBenchRow[] = [];
  try {
    const idPath = join(work, 'identity.txt');
    const idText = await generateAgeIdentityFile('x25519');
    await writeSecretFile(idPath, idText);
    const identity = idText.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
    const recipient = /^# public key: (\S+)$/m.exec(idText)![1]!;
    const ids = await AgeIdentities.fromFile(idPath);

    for (const sizeMiB of sizesMiB) {
      const size = sizeMiB * MiB;
      const plainPath = join(dataDir, `random-${sizeMiB}MiB.bin`);
      const cipherPath = join(work, `ours-${sizeMiB}MiB.age`);
      await ensureRandomFile(plainPath, size);
      process.stderr.write(`${sizeMiB} MiB (page-cached file → discarding sink; runs interleaved):\n`);

      const encrypts: Impl[] = [
        {
          op: 'encrypt',
          impl: 'ours encryptStream (1 MiB reads)',
          run: () =>
            timeInProcess(async () => {
              const sink = discard();
              await pipeline(createReadStream(plainPath, { highWaterMark: 1 * MiB }), encryptStream([recipient]), sink);
              if (sink.bytes < size) throw new Error('short output');
            }),
        },
        {
          op: 'encrypt',
          impl: 'ours AgeEncryptor (reused read buf)',
          run: () =>
            timeInProcess(async () => {
              const enc = await AgeEncryptor.create([recipient]);
              const fh = await open(plainPath, 'r');
              const buf = Buffer.allocUnsafe(4 * MiB);
              let out = 0;
              try {
                for (;;) {
                  const { bytesRead } = await fh.read(buf, 0, buf.length, null);
                  if (bytesRead === 0) break;
                  for (const b of enc.write(buf.subarray(0, bytesRead))) out += b.length;
                }
              } finally {
                await fh.close();
              }
              for (const b of enc.finish()) out += b.length;
              if (out !== enc.ciphertextBytes) throw new Error('byte count mismatch');
            }),
        },
        {
          op: 'encrypt',
          impl: 'age CLI 1.1.1 (age -e -r)',
          run: () => timeCommand([AGE, '-e', '-r', recipient], plainPath, '/dev/null'),
        },
      ];
      if (opts.typage !== false) {
        encrypts.push({
          op: 'encrypt',
          impl: 'typage Encrypter (web stream)',
          once: true,
          run: () =>
            timeInProcess(async () => {
              const e = new Encrypter();
              e.addRecipient(recipient);
              const src = Readable.toWeb(createReadStream(plainPath, { highWaterMark: 1 * MiB })) as ReadableStream<Uint8Array>;
              const reader = (await e.encrypt(src)).getReader();
              for (;;) {
                const { done } = await reader.read();
                if (done) break;
              }
            }),
        });
      }
      rows.push(...(await measureInterleaved(encrypts, size, runs)));

      // A ciphertext made by us, for the decryption runs.
      await pipeline(createReadStream(plainPath, { highWaterMark: 1 * MiB }), encryptStream([recipient]), createWriteStream(cipherPath));

      const decrypts: Impl[] = [
        {
          op: 'decrypt',
          impl: 'ours decryptStream (1 MiB reads)',
          run: () =>
            timeInProcess(async () => {
              const sink = discard();
              await pipeline(createReadStream(cipherPath, { highWaterMark: 1 * MiB }), decryptStream(ids), sink);
              if (sink.bytes !== size) throw new Error(`decrypted ${sink.bytes} bytes, expected ${size}`);
            }),
        },
        {
          op: 'decrypt',
          impl: 'age CLI 1.1.1 (age -d -i)',
          run: () => timeCommand([AGE, '-d', '-i', idPath], cipherPath, '/dev/null'),
        },
      ];
      if (opts.typage !== false) {
        decrypts.push({
          op: 'decrypt',
          impl: 'typage Decrypter (web stream)',
          once: true,
          run: () =>
            timeInProcess(async () => {
              const d = new Decrypter();
              d.addIdentity(identity);
              const src = Readable.toWeb(createReadStream(cipherPath, { highWaterMark: 1 * MiB })) as ReadableStream<Uint8Array>;
              const reader = (await d.decrypt(src)).getReader();
              let n = 0;
              for (;;) {
                const { done, value } = await reader.read();
                if (done) break;
                n += value.length;
              }
              if (n !== size) throw new Error('typage short output');
            }),
        });
      }
      rows.push(...(await measureInterleaved(decrypts, size, runs)));
      if (!opts.keep) await rm(cipherPath, { force: true });
    }
  } finally {
    if (!opts.keep) await rm(work, { recursive: true, force: true });
  }
  return rows;
}

function printSummary(rows: CryptoBenchRow[]): void {
  const out: string[] = [];
  out.push('| op | size | impl | best MB/s | median MB/s | best vs age CLI | MB per CPU-s | CPU vs age CLI | minor faults |');
  out.push('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const cli = rows.find((c) => c.op === r.op && c.sizeBytes === r.sizeBytes && c.impl.startsWith('age CLI'));
    const ratio = cli ? (r.bestMBps / cli.bestMBps).toFixed(2) + '×' : '';
    const cpuRatio = cli ? (r.cpuMBps / cli.cpuMBps).toFixed(2) + '×' : '';
    out.push(
      `| ${r.op} | ${r.sizeBytes / MiB} MiB | ${r.impl} | ${r.bestMBps.toFixed(0)} | ${r.medianMBps.toFixed(0)} | ${ratio} | ${r.cpuMBps.toFixed(0)} | ${cpuRatio} | ${r.minorFaults} |`,
    );
  }
  for (const size of [...new Set(rows.map((r) => r.sizeBytes))]) {
    for (const op of ['encrypt', 'decrypt'] as const) {
      const ours = rows.find((r) => r.op === op && r.sizeBytes === size && r.impl.includes('Stream'));
      const typ = rows.find((r) => r.op === op && r.sizeBytes === size && r.impl.startsWith('typage'));
      if (ours && typ) out.push(`${op} ${size / MiB} MiB: ours/typage = ${(ours.bestMBps / typ.bestMBps).toFixed(1)}×`);
    }
  }
  console.log(out.join('\n'));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '256,1024' },
      runs: { type: 'string', default: '3' },
      'no-typage': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const rows = await runCryptoBench({
    sizesMiB: values.sizes.split(',').map(Number),
    runs: Number(values.runs),
    typage: !values['no-typage'],
    keep: values.keep,
  });
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
    await writeFile(join(tmpdir(), 'lifeline-bench', 'crypto.json'), JSON.stringify(rows, null, 2));
  } else printSummary(rows);
}
