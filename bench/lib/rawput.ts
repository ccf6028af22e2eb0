/**
 * Ceilings on this machine and store. Backup: the same files uploaded
 * unencrypted, the same files uploaded unencrypted,
 * one PutObject per file, several in flight, with a stock S3Client (the
 * SDK's default checksum behaviour: CRC32 on every PutObject; SigV4 payload
 * hash of buffered bodies). Files up to 16 MiB are read into memory first,
 * larger ones are streamed. Restore: those objects downloaded (GetObject,
 * the SDK's default response checksum validation) and streamed to files.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import type { DataFile } from './dataset';
import type { S3Target } from './lifeline';

export const RAW_PUT_CONCURRENCY = 6;
export const RAW_PUT_BUFFER_LIMIT = 16 * 1024 * 1024;

export interface RawPutResult {
  seconds: number;
  bytes: number;
  objects: number;
  concurrency: number;
}

export async function rawPut(
  t: S3Target,
  bucket: string,
  root: string,
  files: DataFile[],
  onBytes: (done: number) => void,
  concurrency = RAW_PUT_CONCURRENCY,
): Promise<RawPutResult> {
  const t0 = performance.now();
  const client = new S3Client({ endpoint: t.endpoint, region: t.region, forcePathStyle: true, credentials: t.credentials });
  const limit = pLimit(concurrency);
  let done = 0;
  try {
    await Promise.all(
      files.map((f) =>
        limit(async () => {
          const path = join(root, f.rel);
          const Body = f.bytes <= RAW_PUT_BUFFER_LIMIT ? await readFile(path) : createReadStream(path);
          await client.send(new PutObjectCommand({ Bucket: bucket, Key: f.rel, Body, ContentLength: f.bytes }));
          done += f.bytes;
          onBytes(done);
        }),
      ),
    );
  } finally {
    client.destroy();
  }
  return { seconds: (performance.now() - t0) / 1000, bytes: done, objects: files.length, concurrency };
}

/** Downloads what rawPut uploaded into files under target. */
export async function rawGet(
  t: S3Target,
  bucket: string,
  target: string,
  files: DataFile[],
  onBytes: (done: number) => void,
  concurrency = RAW_PUT_CONCURRENCY,
): Promise<RawPutResult> {
  const t0 = performance.now();
  const client = new S3Client({ endpoint: t.endpoint, region: t.region, forcePathStyle: true, credentials: t.credentials });
  const limit = pLimit(concurrency);
  const dirs = new Set(files.map((f) => dirname(join(target, f.rel))));
  for (const d of dirs) await mkdir(d, { recursive: true });
  let done = 0;
  try {
    await Promise.all(
      files.map((f) =>
        limit(async () => {
          const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: f.rel }));
          const out = createWriteStream(join(target, f.rel));
          await pipeline(res.Body as Readable, out);
          if (out.bytesWritten !== f.bytes) throw new Error(`raw GetObject of ${f.rel}: ${out.bytesWritten} of ${f.bytes} bytes`);
          done += f.bytes;
          onBytes(done);
        }),
      ),
    );
  } finally {
    client.destroy();
  }
  return { seconds: (performance.now() - t0) / 1000, bytes: done, objects: files.length, concurrency };
}
