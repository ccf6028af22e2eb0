/**
 * A backup killed at any point leaves no visible snapshot that references
 * missing data, and the next backup completes reusing what was uploaded.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../engine/archiver';
import { S3ObjectStore } from '../../engine/backend/s3';
import { checkSnapshots } from '../../engine/checker';
import { restore } from '../../engine/restorer';
import { describeTree, makeRepository, tempDir } from '../support/engine-fixtures';
import { createTestBucket, testServices } from '../support/services';

const cleanup: string[] = [];
afterAll(async () => {
  for (const d of cleanup) await rm(d, { recursive: true, force: true });
});

async function runChildUntil(settings: object, point: string): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '..', 'support', 'backup-child.ts'), JSON.stringify(settings)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(`READY ${point}`)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`backup child exited (${code}) before ${point}: ${out}${err}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
}

describe('crash safety of backups (real MinIO, killed process)', () => {
  for (const point of ['mid-upload', 'before-commit'] as const) {
    it(`a backup SIGKILLed ${point} leaves no snapshot; the next one reuses the uploads`, async () => {
      const s3 = testServices().s3;
      const bucket = await createTestBucket(`crash-${point}`);
      const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
      const store = new S3ObjectStore({ ...s3, bucket, prefix: 'r', credentials });
      const { repo, keys } = await makeRepository(store);
      const work = await tempDir('crash');
      cleanup.push(work);
      const root = join(work, 'asset');
      const { mkdir } = await import('node:fs/promises');
      await mkdir(root);
      await writeFile(join(root, 'weights.bin'), randomBytes(10 * 1024 * 1024));
      await writeFile(join(work, 'creds.json'), JSON.stringify(credentials), { mode: 0o600 });
      await writeFile(join(work, 'key.txt'), keys.identityStrings.join('\n') + '\n', { mode: 0o600 });
      await writeFile(join(work, 'sign.pem'), keys.signingKey.toPem(), { mode: 0o600 });

      await runChildUntil(
        {
          s3: { endpoint: s3.endpoint, region: s3.region, bucket, prefix: 'r', credentialsFile: join(work, 'creds.json') },
          identityFile: join(work, 'key.txt'),
          signingKeyFile: join(work, 'sign.pem'),
          root,
          killAt: point,
        },
        point,
      );

      expect(await repo.snapshotIds()).toEqual([]);
      await repo.loadIndex();
      const indexedBefore = repo.index.blobCount;
      expect(indexedBefore).toBeGreaterThan(0);

      const next = await backup(repo, { root, asset: { name: 'ckpt', kind: 'checkpoint', tenant: 'acme' } });
      const total = 10 * 1024 * 1024;
      if (point === 'before-commit') expect(next.stats.newBytes).toBe(0);
      else expect(next.stats.newBytes).toBeLessThan(total);

      const check = await checkSnapshots(repo, { snapshotIds: await repo.snapshotIds(), mode: 'deep' });
      expect(check.problems).toEqual([]);
      const dst = await tempDir('crash-dst');
      cleanup.push(dst);
      await restore(repo, next.snapshotId, { target: dst });
      expect(await describeTree(dst)).toEqual(await describeTree(root));
    });
  }
});
