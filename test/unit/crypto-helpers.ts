/** Shared helpers of the crypto-*.test.ts files (real age CLI, real typage; no mocks). */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { generateAgeIdentityFile, writeSecretFile } from '../../engine/crypto/key-files';

const execFileP = promisify(execFile);

export const AGE_BIN = process.env.AGE_BIN ?? '/usr/bin/age';
export const AGE_KEYGEN_BIN = process.env.AGE_KEYGEN_BIN ?? '/usr/bin/age-keygen';

let cliError: Error | null | undefined;

/**
 * Throws when the age CLI is missing, so every test that needs it FAILS (never
 * skips) with a message pointing at the bootstrap. Checked once per worker.
 */
export function requireAgeCli(): void {
  if (cliError === undefined) {
    cliError = null;
    for (const bin of [AGE_BIN, AGE_KEYGEN_BIN]) {
      const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
      if (r.error || r.status !== 0) {
        cliError = new Error(
          `the age CLI (${bin}) is required by the crypto interop tests but was not found or does not run: ` +
            'run the project bootstrap (it installs the Debian "age" package: apt-get install -y age)',
        );
        break;
      }
    }
  }
  if (cliError) throw cliError;
}

/** Run the age CLI; resolves stdout, rejects with stderr in the message. */
export async function age(args: string[], maxBuffer = 256 << 20): Promise<Buffer> {
  requireAgeCli();
  try {
    const { stdout } = await execFileP(AGE_BIN, args, { encoding: 'buffer', maxBuffer });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`age ${args[0]} failed: ${e.stderr?.toString() || e.message}`);
  }
}

export async function ageKeygen(args: string[]): Promise<string> {
  requireAgeCli();
  const { stdout } = await execFileP(AGE_KEYGEN_BIN, args, { encoding: 'utf8' });
  return stdout;
}

export async function makeTempDir(prefix = 'lifeline-crypto-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A fresh identity file (mode 0600) in `dir`; returns its path, identity and recipient. */
export async function makeIdentityFile(
  dir: string,
  name: string,
  kind: 'x25519' | 'hybrid',
): Promise<{ path: string; identity: string; recipient: string }> {
  const text = await generateAgeIdentityFile(kind);
  const path = join(dir, name);
  await writeSecretFile(path, text);
  const identity = text.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'))!;
  const recipient = /^# public key: (\S+)$/m.exec(text)![1]!;
  return { path, identity, recipient };
}

/** Deterministic pseudo-random bytes (fast, reproducible failures). */
export function pseudoRandomBytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  for (; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Small seeded PRNG for choosing ranges. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x1_0000_0000;
  };
}
