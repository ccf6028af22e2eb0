/**
 * The fault-injecting TCP proxy against a local HTTP server: bytes pass
 * unchanged and are counted; latency, a bandwidth cap, resets and a cut have
 * their effect (lower bounds only: a loaded machine makes things slower, never
 * faster); close leaves no listener.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { portInUse } from '../../devstack/process';
import { startFaultProxy, type FaultProxy } from '../../drills/fault-proxy';

const BODY = randomBytes(512 * 1024);
let server: Server;
let port: number;

beforeAll(async () => {
  // GET /big → 512 KiB; POST /echo → the request body back
  server = createServer((req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-length': BODY.length });
      res.end(BODY);
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

function http(proxy: FaultProxy, method: 'GET' | 'POST', path: string, body?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: proxy.host, port: proxy.port, method, path, agent: false, headers: body ? { 'content-length': body.length } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('fault proxy', () => {
  it('forwards bytes unchanged both ways and counts them', async () => {
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } });
    try {
      const sent = randomBytes(200_000);
      expect(sha(await http(proxy, 'POST', '/echo', sent))).toBe(sha(sent));
      expect(sha(await http(proxy, 'GET', '/big'))).toBe(sha(BODY));
      const s = proxy.stats();
      expect(s.connections).toBe(2);
      expect(s.bytesUp).toBeGreaterThan(sent.length);
      expect(s.bytesDown).toBeGreaterThan(sent.length + BODY.length);
      expect(s).toMatchObject({ refused: 0, resets: 0 });
    } finally {
      await proxy.close();
    }
  });

  it('adds latency to every read in each direction', async () => {
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, faults: { latencyMs: 300 } });
    try {
      const t0 = performance.now();
      const back = await http(proxy, 'POST', '/echo', Buffer.from('ping'));
      const ms = performance.now() - t0;
      expect(back.toString()).toBe('ping');
      // request delayed 300 ms on the way up, response 300 ms on the way down
      expect(ms).toBeGreaterThanOrEqual(590);
    } finally {
      await proxy.close();
    }
  });

  it('caps the bandwidth of the link', async () => {
    const rate = 256 * 1024;
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, faults: { bandwidthBytesPerSecond: rate } });
    try {
      const t0 = performance.now();
      const got = await http(proxy, 'GET', '/big');
      const seconds = (performance.now() - t0) / 1000;
      expect(sha(got)).toBe(sha(BODY));
      // 512 KiB at 256 KiB/s takes 2 s; allow for the first slice going out at once
      expect(seconds).toBeGreaterThanOrEqual(1.8);
      // loose: a loaded machine is slower, but not ten times slower than the cap
      expect(seconds).toBeLessThan(20);
    } finally {
      await proxy.close();
    }
  });

  it('resets connections after their first bytes with the given probability', async () => {
    let n = 0;
    // deterministic: every other connection draws below 0.5
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, faults: { resetProbability: 0.5 }, random: () => (n++ % 2 === 0 ? 0.1 : 0.9) });
    try {
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await http(proxy, 'POST', '/echo', Buffer.from(`r${i}`)).then((b) => b.toString(), (e: NodeJS.ErrnoException) => e.code ?? e.message));
      expect(results).toEqual(['ECONNRESET', 'r1', 'ECONNRESET', 'r3']);
      expect(proxy.stats()).toMatchObject({ connections: 4, resets: 2 });
    } finally {
      await proxy.close();
    }
  });

  it('cut: every connection is reset, open ones too; lifting the cut restores the link', async () => {
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port }, faults: { bandwidthBytesPerSecond: 64 * 1024 } });
    try {
      // a slow download is under way when the link is cut
      const slow = http(proxy, 'GET', '/big').then(() => 'completed', (e: NodeJS.ErrnoException) => e.code ?? e.message);
      await new Promise((r) => setTimeout(r, 300));
      proxy.setFaults({ cut: true });
      expect(await slow).not.toBe('completed');
      const refused = await http(proxy, 'POST', '/echo', Buffer.from('x')).then(() => 'answered', (e: NodeJS.ErrnoException) => e.code ?? e.message);
      expect(refused).toBe('ECONNRESET');
      expect(proxy.stats().refused).toBe(1);
      proxy.setFaults({});
      expect((await http(proxy, 'POST', '/echo', Buffer.from('back'))).toString()).toBe('back');
    } finally {
      await proxy.close();
    }
  });

  it('close stops listening', async () => {
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port } });
    expect(await portInUse('127.0.0.1', proxy.port)).toBe(true);
    await proxy.close();
    expect(await portInUse('127.0.0.1', proxy.port)).toBe(false);
  });
});
