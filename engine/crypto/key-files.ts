/**
 * Secret key files on disk: creation with safe permissions, permission checks,
 * and age identity file generation in age-keygen's layout.
 */
import { constants as fsc } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateHybridIdentity, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { SecretFileError } from './errors';

export { SecretFileError };

/**
 * Create `path` with `content`, mode 0600, refusing to overwrite an existing
 * file (O_CREAT|O_EXCL). Parent directories are created (mode 0700) as needed.
 * The data is fsynced before the promise resolves.
 */
export async function writeSecretFile(path: string, content: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let fh;
  try {
    fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new SecretFileError(`refusing to overwrite existing secret file ${path}`, path);
    }
    throw new SecretFileError(`cannot create secret file ${path}: ${code ?? (err as Error).message}`, path);
  }
  try {
    // Defend against a permissive umask being irrelevant (it can only remove
    // bits) and against filesystems that ignore the create mode.
    await fh.chmod(0o600);
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Throw unless `path` is a regular file readable only by its owner (no group
 * or other permission bits).
 */
export async function assertOwnerOnly(path: string): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new SecretFileError(`secret file not found: ${path}`, path);
    throw new SecretFileError(`cannot stat secret file ${path}: ${code ?? (err as Error).message}`, path);
  }
  if (!st.isFile()) throw new SecretFileError(`secret file ${path} is not a regular file`, path);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new SecretFileError(
      `secret file ${path} is accessible by group/others (mode ${mode.toString(8).padStart(4, '0')}); ` +
        `run: chmod 600 ${path}`,
      path,
    );
  }
}

/** age-keygen's timestamp: RFC 3339 with seconds, UTC. */
function keygenTimestamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Generate a new age identity and return the identity file text in
 * age-keygen's layout:
 *
 *     # created: 2025-01-02T03:04:05Z
 *     # public key: age1…
 *     AGE-SECRET-KEY-1…
 *
 * `kind` 'hybrid' produces a post-quantum mlkem768x25519 identity
 * (AGE-SECRET-KEY-PQ-1… / age1pq1…). Write it with {@link writeSecretFile}.
 */
export async function generateAgeIdentityFile(kind: 'x25519' | 'hybrid'): Promise<string> {
  const identity = kind === 'hybrid' ? await generateHybridIdentity() : await generateX25519Identity();
  const recipient = await identityToRecipient(identity);
  return `# created: ${keygenTimestamp()}\n# public key: ${recipient}\n${identity}\n`;
}

/**
 * Atomically replace the secret file `path` with `content` (mode 0600): a
 * temporary file next to it is written and fsynced, renamed over `path`, and
 * the folder fsynced, so a crash leaves either the old or the new file whole.
 */
export async function replaceSecretFile(path: string, content: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  await writeSecretFile(tmp, content);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new SecretFileError(`cannot replace secret file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, path);
  }
  await syncDir(dirname(path));
}

/** Renames a secret file into place (atomic on one file system) and makes the rename durable. */
export async function renameSecretFile(from: string, to: string): Promise<void> {
  await rename(from, to);
  await syncDir(dirname(to));
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * An identity file's text without the identities whose public recipient is
 * in `drop`, together with the comment lines just above each of them (the
 * `# created` / `# public key` lines age-keygen writes). Errors never show a
 * line's content.
 */
export async function identityFileWithout(text: string, drop: ReadonlySet<string>): Promise<{ text: string; removed: number }> {
  const out: string[] = [];
  let pending: string[] = [];
  let removed = 0;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const t = line.trim();
    if (t === '' || t.startsWith('#')) {
      pending.push(line);
      continue;
    }
    let recipient: string;
    try {
      recipient = await identityToRecipient(t);
    } catch {
      throw new SecretFileError(`identity file line ${i + 1}: malformed age secret key`, '');
    }
    if (drop.has(recipient)) removed++;
    else out.push(...pending, line);
    pending = [];
  }
  out.push(...pending);
  return { text: out.length ? `${out.join('\n')}\n` : '', removed };
}
