/**
 * MinIO users for tests that must tell Lifeline's own credentials apart from
 * others (the root user plays the attacker): created with `mc admin`, which
 * the devstack builds (the `minio` npm client has no admin API).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureTool } from '../../devstack/tools.mjs';
import { testServices } from './services';

const run = promisify(execFile);

async function mc(args: string[]): Promise<string> {
  const { s3 } = testServices();
  const bin = await ensureTool('mc');
  const dir = await mkdtemp(join(tmpdir(), 'lifeline-mc-'));
  const url = new URL(s3.endpoint);
  try {
    const { stdout } = await run(bin, ['--json', ...args], {
      // mc reads the alias from MC_HOST_<alias>; the root secret stays in this environment only.
      env: { ...process.env, HOME: dir, MC_CONFIG_DIR: join(dir, '.mc'), MC_HOST_test: `${url.protocol}//${encodeURIComponent(s3.accessKeyId)}:${encodeURIComponent(s3.secretAccessKey)}@${url.host}` },
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    // mc --json reports its error on stdout; never echo the environment.
    throw new Error(`mc ${args.slice(0, 3).join(' ')} failed: ${(e.stdout || e.stderr || '').slice(0, 500)}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A new MinIO user with the built-in `readwrite` policy (everything on every bucket, no admin). */
export async function createMinioUser(label: string): Promise<{ accessKeyId: string; secretAccessKey: string; remove(): Promise<void> }> {
  const accessKeyId = `${label}-${randomBytes(4).toString('hex')}`;
  const secretAccessKey = randomBytes(24).toString('base64url');
  await mc(['admin', 'user', 'add', 'test', accessKeyId, secretAccessKey]);
  await mc(['admin', 'policy', 'attach', 'test', 'readwrite', '--user', accessKeyId]);
  return { accessKeyId, secretAccessKey, remove: async () => void (await mc(['admin', 'user', 'remove', 'test', accessKeyId]).catch(() => '')) };
}
