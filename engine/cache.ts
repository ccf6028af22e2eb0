/**
 * A local cache of immutable repository objects (index objects and snapshot
 * manifests, decrypted), so opening a repository or finding the latest
 * snapshot does not download and decrypt every object again — post-quantum
 * header unwrapping alone costs milliseconds per object.
 *
 * Safe because what is cached is named by its content: an index object's id
 * is the SHA-256 of its ciphertext (checked before caching), and a manifest
 * is re-authenticated (signature and id) every time it is read from the cache.
 * Files are owner-only; a damaged cache entry is dropped, never trusted.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.LIFELINE_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'lifeline'), 'repositories');
}

export class ObjectCache {
  constructor(private readonly dir: string) {}

  static forRepository(root: string, repositoryId: string): ObjectCache {
    return new ObjectCache(join(root, repositoryId));
  }

  private path(kind: 'index' | 'snapshots', id: string): string {
    return join(this.dir, kind, id);
  }

  /** Cached plaintext, or null. Entries carry a SHA-256 of themselves, so a torn or edited file is ignored. */
  async get(kind: 'index' | 'snapshots', id: string): Promise<Buffer | null> {
    let data: Buffer;
    try {
      data = await readFile(this.path(kind, id));
    } catch {
      return null;
    }
    if (data.length < 32) return null;
    const body = data.subarray(32);
    if (!createHash('sha256').update(body).digest().equals(data.subarray(0, 32))) {
      await rm(this.path(kind, id), { force: true });
      return null;
    }
    return body;
  }

  async put(kind: 'index' | 'snapshots', id: string, plaintext: Buffer): Promise<void> {
    try {
      await mkdir(join(this.dir, kind), { recursive: true, mode: 0o700 });
      const final = this.path(kind, id);
      const tmp = `${final}.${process.pid}.tmp`;
      await writeFile(tmp, Buffer.concat([createHash('sha256').update(plaintext).digest(), plaintext]), { mode: 0o600 });
      await rename(tmp, final);
    } catch {
      // A cache that cannot be written only costs speed.
    }
  }

  async delete(kind: 'index' | 'snapshots', id: string): Promise<void> {
    await rm(this.path(kind, id), { force: true });
  }
}
