import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryObjectStore } from '../../engine/backend/memory';
import {
  type MultipartResumeState,
  ObjectExistsError,
  ObjectNotFoundError,
  StorageError,
} from '../../engine/backend/object-store';

const MiB = 1024 * 1024;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('base64');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifeline-memstore-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('MemoryObjectStore', () => {
  it('put / get / head / delete, storing a copy of the caller’s bytes', async () => {
    const s = new MemoryObjectStore();
    const body = randomBytes(1000);
    const { sha256 } = await s.put('data/ab/abc', body);
    expect(sha256).toBe(sha(body));
    body[0] = body[0]! ^ 1; // caller reuses its buffer
    const got = await s.get('data/ab/abc');
    expect(got.equals(body)).toBe(false);
    expect(sha(got)).toBe(sha256);
    const info = await s.head('data/ab/abc');
    expect(info).toMatchObject({ key: 'data/ab/abc', size: 1000, sha256 });
    expect(info!.lastModified).toBeInstanceOf(Date);
    expect(await s.head('missing')).toBeNull();
    await expect(s.get('missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await expect(s.getStream('missing')).rejects.toBeInstanceOf(ObjectNotFoundError);
    await s.delete('data/ab/abc');
    await s.delete('data/ab/abc'); // deleting a missing object is fine
    expect(await s.head('data/ab/abc')).toBeNull();
    expect(s.location).toBe('memory://test');
  });

  it('ranges are inclusive, clamp the end, and reject a start past the end', async () => {
    const s = new MemoryObjectStore();
    const body = randomBytes(100);
    await s.put('k', body);
    expect((await s.get('k', { start: 10, end: 19 })).equals(body.subarray(10, 20))).toBe(true);
    expect((await s.get('k', { start: 0, end: 0 })).equals(body.subarray(0, 1))).toBe(true);
    expect((await s.get('k', { start: 90, end: 500 })).equals(body.subarray(90))).toBe(true);
    await expect(s.get('k', { start: 100, end: 120 })).rejects.toMatchObject({ permanent: true });
    await expect(s.get('k', { start: 5, end: 4 })).rejects.toBeInstanceOf(StorageError);
  });

  it('getStream returns the object', async () => {
    const s = new MemoryObjectStore();
    const body = randomBytes(200_000);
    await s.put('k', body);
    const chunks = await collect<Buffer>(await s.getStream('k'));
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });

  it('ifNoneMatch: new → stored; same content → success; different content → ObjectExistsError', async () => {
    const s = new MemoryObjectStore();
    const a = Buffer.from('content A');
    await s.put('locks/x', a, { ifNoneMatch: true });
    await expect(s.put('locks/x', Buffer.from(a), { ifNoneMatch: true })).resolves.toEqual({ sha256: sha(a) });
    const err = await s.put('locks/x', Buffer.from('content B'), { ifNoneMatch: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ObjectExistsError);
    expect((err as StorageError).permanent).toBe(true);
    expect((err as Error).message).toContain('memory://test/locks/x');
    expect((await s.get('locks/x')).toString()).toBe('content A');
    // Without ifNoneMatch the put replaces.
    await s.put('locks/x', Buffer.from('content B'));
    expect((await s.get('locks/x')).toString()).toBe('content B');
  });

  it('lists by prefix in byte-wise lexicographic order', async () => {
    const s = new MemoryObjectStore();
    const keys = ['snapshots/b', 'snapshots/a', 'data/00/x', 'data/ff/y', 'snapshots/\u{1F600}', 'snapshots/\uFFFD', 'keys/k1'];
    for (const k of keys) await s.put(k, Buffer.from(k));
    const listed = (await collect(s.list('snapshots/'))).map((o) => o.key);
    // U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80) in UTF-8, unlike JS string order.
    expect(listed).toEqual(['snapshots/a', 'snapshots/b', 'snapshots/\uFFFD', 'snapshots/\u{1F600}']);
    expect((await collect(s.list(''))).map((o) => o.key)).toEqual(s.keys());
    expect(s.keys()[0]).toBe('data/00/x');
    const [first] = await collect(s.list('data/00/'));
    expect(first).toMatchObject({ key: 'data/00/x', size: 'data/00/x'.length });
  });

  it('rejects empty and absolute keys as permanent errors', async () => {
    const s = new MemoryObjectStore();
    await expect(s.put('', Buffer.alloc(1))).rejects.toMatchObject({ permanent: true });
    await expect(s.put('/abs', Buffer.alloc(1))).rejects.toMatchObject({ permanent: true });
  });

  it('putFile: multipart in parts, progress, resume skipping stored parts, byte-identical result', async () => {
    const path = join(dir, 'big');
    const data = randomBytes(23 * MiB + 17);
    await writeFile(path, data);
    let uploads = 0;
    const s = new MemoryObjectStore({
      fault: (op) => {
        if (op === 'uploadPart' && ++uploads === 3) throw new StorageError('injected network failure', undefined, false);
      },
    });
    let state: MultipartResumeState | undefined;
    const progress: number[] = [];
    await expect(
      s.putFile('blobs/big', path, {
        partSize: 5 * MiB,
        onStarted: (st) => (state = st),
        onProgress: (p) => progress.push(p.bytesDone),
      }),
    ).rejects.toThrow('injected network failure');
    expect(state?.key).toBe('blobs/big');
    expect(s.stats.partsUploaded).toBe(2);
    expect(await s.head('blobs/big')).toBeNull();
    expect(s.pendingUploads()).toEqual([state]);

    const res = await s.putFile('blobs/big', path, { partSize: 5 * MiB, resume: state, onProgress: (p) => progress.push(p.bytesDone) });
    expect(res).toEqual({ size: data.length });
    expect(s.stats.partsUploaded).toBe(5); // 2 before + 3 after: parts 1–2 were not re-sent
    expect(s.stats.bytesUploaded).toBe(data.length);
    expect(progress.at(-1)).toBe(data.length);
    expect((await s.get('blobs/big')).equals(data)).toBe(true);
    expect((await s.head('blobs/big'))!.sha256).toBe(sha(data));
    expect(s.pendingUploads()).toEqual([]);
  });

  it('putFile honours ifNoneMatch and aborts', async () => {
    const path = join(dir, 'f');
    const data = randomBytes(11 * MiB);
    await writeFile(path, data);
    const s = new MemoryObjectStore();
    await s.putFile('f', path, { partSize: 5 * MiB, ifNoneMatch: true });
    await s.putFile('f', path, { partSize: 5 * MiB, ifNoneMatch: true }); // same content
    await writeFile(path, randomBytes(11 * MiB));
    await expect(s.putFile('f', path, { partSize: 5 * MiB, ifNoneMatch: true })).rejects.toBeInstanceOf(ObjectExistsError);
    const ac = new AbortController();
    ac.abort();
    await expect(s.putFile('g', path, { signal: ac.signal })).rejects.toThrow();
  });

  it('corrupt() flips a byte but keeps the recorded sha256 (like bit rot under S3 metadata)', async () => {
    const s = new MemoryObjectStore();
    const body = randomBytes(10_000);
    await s.put('p', body);
    s.corrupt('p', 5000);
    const got = await s.get('p');
    expect(got[5000]).toBe(body[5000]! ^ 0xff);
    expect((await s.head('p'))!.sha256).toBe(sha(body));
  });
});
