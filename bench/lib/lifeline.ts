/**
 * Lifeline side of the bench: S3 stores on the bench MinIO, a repository with
 * the DEFAULT chunker and pack size, keys (in memory, and as 0600 files for
 * child processes), and a byte counter for everything PUT to the store.
 */
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { join } from 'node:path';
import { S3ObjectStore, type S3StoreOptions } from '../../engine/backend/s3';
import type { ObjectStore } from '../../engine/backend/object-store';
import { AgeIdentities } from '../../engine/crypto/age';
import { writeSecretFile } from '../../engine/crypto/key-files';
import { SigningKey } from '../../engine/crypto/signing';
import { Repository } from '../../engine/repository';
import { registerSecret } from '../../logging/redact';

export interface S3Target {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export function storeOptions(t: S3Target, bucket: string, prefix: string): S3StoreOptions {
  return { endpoint: t.endpoint, region: t.region, bucket, prefix, credentials: t.credentials };
}

export function makeStore(t: S3Target, bucket: string, prefix: string): S3ObjectStore {
  return new S3ObjectStore(storeOptions(t, bucket, prefix));
}

export interface PutCounter {
  bytes: number;
  objects: number;
  reset(): void;
}

/**
 * The same store, counting the body bytes of every successful put/putFile
 * (packs, index objects, lease, manifest). Methods run on the real store.
 */
export function countingStore<T extends ObjectStore>(store: T): { store: T; counter: PutCounter } {
  const counter: PutCounter = {
    bytes: 0,
    objects: 0,
    reset() {
      this.bytes = 0;
      this.objects = 0;
    },
  };
  const proxy = new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...args: unknown[]) => unknown;
      if (prop === 'put') {
        return async (...args: unknown[]) => {
          const r = await fn.apply(target, args);
          counter.bytes += (args[1] as Uint8Array).length;
          counter.objects++;
          return r;
        };
      }
      if (prop === 'putFile') {
        return async (...args: unknown[]) => {
          const r = (await fn.apply(target, args)) as { size: number };
          counter.bytes += r.size;
          counter.objects++;
          return r;
        };
      }
      return fn.bind(target);
    },
  });
  return { store: proxy, counter };
}

export interface BenchKeys {
  identities: AgeIdentities;
  recipient: string;
  signingKey: SigningKey;
  identityFile: string;
  signingKeyFile: string;
}

/** Fresh X25519 identity and Ed25519 signing key; also written as 0600 files under dir for child processes. */
export async function makeKeys(dir: string): Promise<BenchKeys> {
  const identity = await generateX25519Identity();
  registerSecret(identity);
  const recipient = await identityToRecipient(identity);
  const signingKey = SigningKey.generate();
  const identityFile = join(dir, 'identity.txt');
  const signingKeyFile = join(dir, 'signing-key.pem');
  await writeSecretFile(identityFile, `# public key: ${recipient}\n${identity}\n`);
  await writeSecretFile(signingKeyFile, signingKey.toPem());
  return { identities: AgeIdentities.fromStrings([identity]), recipient, signingKey, identityFile, signingKeyFile };
}

/** A new repository with the engine's default chunker and pack size. */
export async function initRepository(store: ObjectStore, keys: BenchKeys): Promise<void> {
  await Repository.init(store, { recipients: [keys.recipient], signingKey: keys.signingKey });
}

export function openRepository(store: ObjectStore, keys: BenchKeys): Promise<Repository> {
  return Repository.open(store, { identities: keys.identities, signingKey: keys.signingKey });
}
