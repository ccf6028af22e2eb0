/**
 * A fault-injecting TCP proxy: placed in front of S3 (or any TCP service) it
 * forwards bytes unchanged, but can add latency to every read, cap the
 * bandwidth of the whole link, reset connections after their first bytes, or
 * cut the link (every connection reset at once). Plain `node:net`; the bytes
 * are never parsed, so SigV4-signed S3 requests pass through untouched.
 *
 * Plain domain code (no Temporal). The network fault runs it as its own
 * process (drills/fault-proxy-main.ts) so it outlives a crashed drill worker.
 */
import { randomInt } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface ProxyFaults {
  /** added to every chunk read, in each direction (pipelined: throughput is kept, each byte arrives later) */
  latencyMs?: number;
  /** cap of the whole link, per direction, in bytes per second */
  bandwidthBytesPerSecond?: number;
  /** probability (0–1) that a connection is reset right after its first bytes */
  resetProbability?: number;
  /** every connection is reset as soon as it is accepted, and open ones are reset now */
  cut?: boolean;
}

export interface ProxyStats {
  /** connections accepted and forwarded */
  connections: number;
  /** connections reset at once because the link is cut */
  refused: number;
  /** connections reset after their first bytes (resetProbability) */
  resets: number;
  /** bytes forwarded client → target */
  bytesUp: number;
  /** bytes forwarded target → client */
  bytesDown: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly port: number;
  stats(): ProxyStats;
  faults(): ProxyFaults;
  /** change the faults of new and open connections (cut resets the open ones) */
  setFaults(f: ProxyFaults): void;
  /** stops listening and resets every open connection */
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  target: { host: string; port: number };
  /** where to listen (default 127.0.0.1, a free port) */
  listen?: { host?: string; port?: number };
  faults?: ProxyFaults;
  /** uniform [0, 1) for the reset decision (tests make it deterministic) */
  random?: () => number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Link-wide bandwidth: each slice reserves its time slot in turn, so concurrent connections share the cap. */
class Pacer {
  private next = 0;
  constructor(private readonly bytesPerSecond: () => number | undefined) {}
  async take(n: number): Promise<void> {
    const rate = this.bytesPerSecond();
    if (!rate) return;
    const now = performance.now();
    const start = Math.max(now, this.next);
    this.next = start + (n / rate) * 1000;
    // Wait for our slot's end, so the bytes leave no faster than the rate.
    const wait = this.next - now;
    if (wait >= 1) await sleep(wait);
  }
}

/** Largest piece written at once under a bandwidth cap: about 50 ms worth, at least 1 KiB. */
function sliceSize(rate: number | undefined): number {
  return rate ? Math.max(1024, Math.floor(rate / 20)) : Number.POSITIVE_INFINITY;
}

export async function startFaultProxy(opts: FaultProxyOptions): Promise<FaultProxy> {
  let faults: ProxyFaults = { ...opts.faults };
  const random = opts.random ?? (() => randomInt(0, 2 ** 32) / 2 ** 32);
  const stats: ProxyStats = { connections: 0, refused: 0, resets: 0, bytesUp: 0, bytesDown: 0 };
  const open = new Set<Socket>();
  const pacers = { up: new Pacer(() => faults.bandwidthBytesPerSecond), down: new Pacer(() => faults.bandwidthBytesPerSecond) };

  const reset = (s: Socket) => {
    if (!s.destroyed) s.resetAndDestroy();
  };

  /**
   * One direction: chunks are queued with the time they may leave (arrival +
   * latency), then written paced and with backpressure. Returns when `from` ended
   * and everything queued was written, or either side closed.
   */
  const pump = async (from: Socket, to: Socket, dir: 'up' | 'down', onFirstBytes: () => boolean) => {
    const queue: { chunk: Buffer; due: number }[] = [];
    let queued = 0;
    let ended = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    from.on('data', (chunk: Buffer) => {
      queue.push({ chunk, due: performance.now() + (faults.latencyMs ?? 0) });
      queued += chunk.length;
      // Keep memory bounded: stop reading while 1 MiB waits to be written.
      if (queued > 1 << 20) from.pause();
      notify();
    });
    from.once('end', () => {
      ended = true;
      notify();
    });
    from.once('close', () => {
      ended = true;
      notify();
    });
    let first = true;
    for (;;) {
      if (queue.length === 0) {
        if (ended || to.destroyed) break;
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      const { chunk, due } = queue.shift()!;
      queued -= chunk.length;
      if (queued <= 1 << 19 && from.isPaused()) from.resume();
      const wait = due - performance.now();
      if (wait >= 1) await sleep(wait);
      if (first) {
        first = false;
        if (!onFirstBytes()) return;
      }
      const size = sliceSize(faults.bandwidthBytesPerSecond);
      for (let o = 0; o < chunk.length && !to.destroyed; o += size) {
        const piece = chunk.subarray(o, Math.min(chunk.length, o + size));
        await pacers[dir].take(piece.length);
        if (to.destroyed) break;
        if (dir === 'up') stats.bytesUp += piece.length;
        else stats.bytesDown += piece.length;
        if (!to.write(piece)) {
          await new Promise<void>((r) => {
            const done = () => {
              to.off('drain', done);
              to.off('close', done);
              r();
            };
            to.once('drain', done);
            to.once('close', done);
          });
        }
      }
    }
    if (!to.destroyed) to.end();
  };

  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (client) => {
    client.on('error', () => {});
    if (faults.cut) {
      stats.refused++;
      reset(client);
      return;
    }
    stats.connections++;
    open.add(client);
    const upstream = createConnection({ host: opts.target.host, port: opts.target.port, allowHalfOpen: true });
    upstream.on('error', () => reset(client));
    client.on('error', () => upstream.destroy());
    open.add(upstream);
    const forget = () => {
      open.delete(client);
      open.delete(upstream);
    };
    // Each pump ends its side once everything delayed was written; a side that fails takes the other with it.
    client.once('close', (hadError) => {
      forget();
      if (hadError) upstream.destroy();
    });
    upstream.once('close', (hadError) => {
      forget();
      if (hadError) reset(client);
    });
    // Decided once per connection, acted on at its first bytes (the request has started).
    const doomed = (faults.resetProbability ?? 0) > 0 && random() < (faults.resetProbability ?? 0);
    const firstBytes = () => {
      if (!doomed) return true;
      stats.resets++;
      reset(client);
      upstream.destroy();
      return false;
    };
    upstream.once('connect', () => {
      client.resume();
      void pump(client, upstream, 'up', firstBytes).catch(() => reset(client));
      void pump(upstream, client, 'down', () => true).catch(() => reset(client));
    });
  });
  server.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.listen?.host ?? '127.0.0.1', port: opts.listen?.port ?? 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('fault proxy: no listening address');

  return {
    host: addr.address,
    port: addr.port,
    stats: () => ({ ...stats }),
    faults: () => ({ ...faults }),
    setFaults(f) {
      faults = { ...f };
      if (faults.cut) for (const s of open) reset(s);
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) reset(s);
      });
    },
  };
}
