/**
 * FORMAT.md promises that a tenant who lost Lifeline can recover a file with
 * only the age CLI, an S3 client (mc) and standard Unix tools. This test runs
 * the shell block from FORMAT.md itself, so the document cannot drift from
 * the format.
 */
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { S3ObjectStore } from '../../engine/backend/s3';
import { makeAsset, makeRepository, tempDir } from '../support/engine-fixtures';
import { createTestBucket, testServices } from '../support/services';
import { ensureTool } from '../../devstack/tools.mjs';

const run = promisify(execFile);
const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});

function breakGlassScript(format: string): string {
  const m = /## Break-glass recovery[\s\S]*?```sh\n([\s\S]*?)```/.exec(format);
  if (!m) throw new Error('FORMAT.md has no break-glass shell block');
  // Drop the documented placeholder assignments; the test provides real values.
  return m[1]!.replace(/^(KEY|SRC|SNAP|FILE)=.*$/gm, '');
}

describe('break-glass recovery with age, mc and Unix tools (FORMAT.md)', () => {
  it('recovers a multi-chunk file exactly as documented', async () => {
    const s3 = testServices().s3;
    const bucket = await createTestBucket('breakglass');
    const store = new S3ObjectStore({ ...s3, bucket, prefix: 'tenants/acme', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const { repo, keys } = await makeRepository(store);
    const src = await tempDir('bg-src');
    const work = await tempDir('bg-work');
    cleanup.push(src, work);
    await makeAsset(src, { smallFiles: 5 });
    const { snapshotId } = await backup(repo, { root: src, asset: { name: 'llama', kind: 'model', tenant: 'acme' } });

    await writeFile(join(work, 'key.txt'), keys.identityStrings.join('\n') + '\n', { mode: 0o600 });
    const script = breakGlassScript(await readFile(new URL('../../FORMAT.md', import.meta.url), 'utf8'));
    const endpoint = new URL(s3.endpoint);
    const mc = await ensureTool('mc');
    // `set -euo pipefail` inside the script, not as flags: bash may read /etc/bash.bashrc first when stdin is a socket.
    const { stdout } = await run('bash', ['-c', `set -euo pipefail\n${script}`], {
      cwd: work,
      env: {
        PATH: `${join(mc, '..')}:${process.env.PATH}`,
        HOME: work,
        KEY: 'key.txt',
        SRC: `store/${bucket}/tenants/acme`,
        SNAP: snapshotId,
        FILE: 'weights/model.safetensors',
        // mc reads an alias from MC_HOST_<alias>; the secret stays in this environment only.
        MC_HOST_store: `${endpoint.protocol}//${encodeURIComponent(s3.accessKeyId)}:${encodeURIComponent(s3.secretAccessKey)}@${endpoint.host}`,
        MC_CONFIG_DIR: join(work, '.mc'),
      },
      maxBuffer: 64 * 1024 * 1024,
    }).catch((err: { stderr?: string; code?: number }) => {
      // The script's own error output says which documented step failed.
      throw new Error(`break-glass script failed (exit ${err.code}): ${err.stderr ?? ''}`);
    });
    expect(stdout).toContain(`${snapshotId} {`);
    expect(stdout).toContain('"asset":"llama"');
    expect(stdout).toMatch(/recovered\.bin: OK/);
    const recovered = await readFile(join(work, 'recovered.bin'));
    const original = await readFile(join(src, 'weights', 'model.safetensors'));
    expect(recovered.length).toBe(original.length);
    expect(recovered.equals(original)).toBe(true);
  });
});
