/**
 * The local witness of `lifeline audit verify`: the signed checkpoint of the
 * last successful verification, kept outside the log. A later verify checks
 * that the log still contains it (same size or larger, consistent history),
 * which is the only way to notice that the newest entries and checkpoints were
 * deleted together. Keep a copy somewhere an attacker of the bucket cannot
 * reach (or pass --expect-size from your own records).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** `${XDG_CACHE_HOME:-~/.cache}/lifeline/audit-witness/<origin>-<hash>.checkpoint` */
export function defaultWitnessPath(origin: string, env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const slug = origin.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  const hash = createHash('sha256').update(origin).digest('hex').slice(0, 8);
  return join(base, 'lifeline', 'audit-witness', `${slug}-${hash}.checkpoint`);
}

/** The witnessed checkpoint note, or null when there is none yet. */
export async function readWitness(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Replace the witness atomically (write a temporary file, then rename). */
export async function writeWitness(path: string, note: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, note, { mode: 0o600 });
  await rename(tmp, path);
}
