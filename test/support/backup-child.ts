/**
 * A backup in its own process, so crash tests can SIGKILL it at a chosen
 * point. Settings come as JSON in argv[2]; secrets come from files only.
 * It prints `READY <point>` and then blocks forever at the kill point.
 */
import { readFile } from 'node:fs/promises';
import { backup } from '../../engine/archiver';
import { S3ObjectStore } from '../../engine/backend/s3';
import { AgeIdentities } from '../../engine/crypto/age';
import { SigningKey } from '../../engine/crypto/signing';
import { Repository } from '../../engine/repository';

interface ChildSettings {
  s3: { endpoint: string; region: string; bucket: string; prefix: string; credentialsFile: string };
  identityFile: string;
  signingKeyFile: string;
  root: string;
  killAt: 'mid-upload' | 'before-commit';
}

const settings = JSON.parse(process.argv[2]!) as ChildSettings;
const creds = JSON.parse(await readFile(settings.s3.credentialsFile, 'utf8')) as { accessKeyId: string; secretAccessKey: string };
const store = new S3ObjectStore({ ...settings.s3, credentials: creds });
const identities = await AgeIdentities.fromFile(settings.identityFile);
const signingKey = await SigningKey.fromFile(settings.signingKeyFile);
const repo = await Repository.open(store, { identities, signingKey });
const block = (point: string) => {
  process.stdout.write(`READY ${point}\n`);
  return new Promise<void>(() => undefined);
};
await backup(repo, {
  root: settings.root,
  asset: { name: 'ckpt', kind: 'checkpoint', tenant: 'acme' },
  packsPerIndex: 1,
  uploadConcurrency: 2,
  hooks: {
    afterPack: async (n) => {
      // Halfway through the file, wait until a few packs are durable and indexed, then stop mid-upload.
      if (settings.killAt === 'mid-upload' && n === 5) {
        while (repo.index.packCount < 3) await new Promise((r) => setTimeout(r, 50));
        await block('mid-upload');
      }
    },
    beforeCommit: async () => {
      if (settings.killAt === 'before-commit') await block('before-commit');
    },
  },
});
process.stdout.write('COMMITTED\n');
