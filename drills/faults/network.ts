/**
 * `network`: a fault-injecting TCP proxy (drills/fault-proxy.ts) in front of
 * S3 for `duration`, carrying the S3 traffic of one node's agent (`node`) or of
 * every Lifeline worker. The proxy runs as its own detached process with a pid
 * record in the fault's state folder; the route file (drills/storage-route.ts)
 * moves the workers' S3 requests to it while the fault lasts. Revert removes
 * the route first (traffic goes straight to storage again), then stops the
 * proxy and waits until nothing listens on its port; the proxy's counters
 * (connections, bytes each way, resets) go into the details.
 *
 * Needs a plain-HTTP storage endpoint (the embedded MinIO, or an external one
 * without TLS): a TCP proxy on loopback cannot stand in for a TLS endpoint's name.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LIFELINE_ROOT } from '../../config/root';
import { durationMs } from '../../config/platform';
import { portInUse, waitFor } from '../../devstack/process';
import { readProcessRecord, recordAlive, removeProcessRecord, startRecordedProcess, stopRecordedProcess } from '../../nodes/processes';
import type { FaultContext, FaultInjector, InjectedFault, RevertedFault } from '../fault';
import type { ProxyFaults, ProxyStats } from '../fault-proxy';
import { byteSize, type FaultSpec } from '../scenario';
import { readStorageRoute, removeStorageRoute, storageRouteFile, writeStorageRoute } from '../storage-route';
import { FaultNotApplicable, readFaultState, writeFaultState } from './state';
import { networkFaultProblem, storageEndpoint } from './storage-problems';

export { networkFaultProblem };

type NetworkSpec = Extract<FaultSpec, { kind: 'network' }>;

interface NetworkState {
  faultId: string;
  drillId: string;
  /** starting: the proxy may be starting, no route yet; injected: proxy up and routed; reverted */
  phase: 'starting' | 'injected' | 'reverted';
  /** host:port of storage */
  target: string;
  nodes: string[] | null;
  proxy?: { host: string; port: number };
  /** when the fault was (or is about to be) injected */
  injectedAt: string;
  revertedAt?: string;
}

export function proxyFaultsOf(spec: NetworkSpec): ProxyFaults {
  return {
    ...(spec.latency ? { latencyMs: durationMs(spec.latency) } : {}),
    ...(spec.bandwidth ? { bandwidthBytesPerSecond: byteSize(spec.bandwidth) } : {}),
    ...(spec.resetProbability !== undefined ? { resetProbability: spec.resetProbability } : {}),
    ...(spec.cut ? { cut: true } : {}),
  };
}

const files = (stateDir: string) => ({
  record: join(stateDir, 'proxy.json'),
  ready: join(stateDir, 'proxy-ready.json'),
  stats: join(stateDir, 'proxy-stats.json'),
  log: join(stateDir, 'proxy.log'),
});

/** The proxy's counters as it last wrote them. */
/** The proxy process's counters, as last written (every 500 ms; `at` = when). */
export function proxyStats(stateDir: string): (ProxyStats & { at: string }) | null {
  try {
    return JSON.parse(readFileSync(files(stateDir).stats, 'utf8')) as ProxyStats & { at: string };
  } catch {
    return null;
  }
}

function details(st: NetworkState, spec: NetworkSpec, stats: ProxyStats | null): Record<string, string | number | boolean> {
  return {
    target: st.nodes ? `node ${st.nodes.join(', ')}` : 'every worker',
    duration: spec.duration,
    ...(spec.latency ? { latency: spec.latency } : {}),
    ...(spec.bandwidth ? { bandwidth: `${spec.bandwidth}/s` } : {}),
    ...(spec.resetProbability !== undefined ? { resetProbability: spec.resetProbability } : {}),
    cut: spec.cut,
    ...(st.proxy ? { proxyPort: st.proxy.port } : {}),
    ...(stats
      ? { proxyConnections: stats.connections, proxyBytesUp: stats.bytesUp, proxyBytesDown: stats.bytesDown, proxyResets: stats.resets, proxyRefused: stats.refused }
      : {}),
  };
}

async function startProxy(ctx: FaultContext, st: NetworkState, spec: NetworkSpec): Promise<{ host: string; port: number }> {
  const f = files(ctx.stateDir);
  const rec = readProcessRecord(f.record);
  if (rec && recordAlive(rec) && existsSync(f.ready)) {
    // A previous attempt started it: reuse it.
    return JSON.parse(readFileSync(f.ready, 'utf8')) as { host: string; port: number };
  }
  if (rec) await stopRecordedProcess(rec, 2000);
  rmSync(f.ready, { force: true });
  const started = await startRecordedProcess({
    argv: [
      process.execPath, '--import', 'tsx', join(LIFELINE_ROOT, 'drills', 'fault-proxy-main.ts'),
      '--target', st.target, '--faults', JSON.stringify(proxyFaultsOf(spec)), '--ready', f.ready, '--stats', f.stats,
    ],
    cwd: LIFELINE_ROOT,
    // The proxy needs no secret: only what node needs to run.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
    logFile: f.log,
    recordFile: f.record,
    info: { drill: ctx.drillId, fault: st.faultId, role: 'fault-proxy' },
  });
  return waitFor(
    'the fault proxy to listen',
    () => {
      if (!recordAlive(started)) throw new Error(`the fault proxy exited; see ${f.log}`);
      return existsSync(f.ready) ? (JSON.parse(readFileSync(f.ready, 'utf8')) as { host: string; port: number }) : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );
}

export const networkFault: FaultInjector<NetworkSpec> = {
  kind: 'network',
  placement: () => ({ on: 'drill' }),

  async inject(ctx, spec, faultId): Promise<InjectedFault> {
    const problem = networkFaultProblem(ctx.config);
    if (problem) throw new FaultNotApplicable(problem);
    const routeFile = storageRouteFile(ctx.config);
    let st = readFaultState<NetworkState>(ctx);
    if (st && st.faultId !== faultId) throw new FaultNotApplicable(`fault state ${ctx.stateDir} belongs to fault ${st.faultId}, not ${faultId}`);
    if (st?.phase === 'reverted') throw new FaultNotApplicable(`fault ${faultId} was already injected and reverted; a new injection needs a new fault id`);
    const other = readStorageRoute(routeFile);
    if (other && !(other.drillId === ctx.drillId && other.faultId === faultId)) {
      throw new FaultNotApplicable(`another network fault (drill ${other.drillId}, fault ${other.faultId}) routes storage traffic already; one at a time`);
    }
    if (!st) {
      const url = new URL(storageEndpoint(ctx.config));
      st = { faultId, drillId: ctx.drillId, phase: 'starting', target: `${url.hostname}:${url.port || '80'}`, nodes: spec.node ? [spec.node] : null, injectedAt: new Date().toISOString() };
      // Recorded before the proxy starts: a revert after a crash stops it and removes the route.
      writeFaultState(ctx, st);
    }
    if (st.phase === 'starting') {
      ctx.progress?.('starting the fault proxy');
      const proxy = await startProxy(ctx, st, spec);
      st = { ...st, proxy: { host: proxy.host, port: proxy.port } };
      writeFaultState(ctx, st);
      writeStorageRoute(routeFile, { drillId: ctx.drillId, faultId, endpoint: `http://${proxy.host}:${proxy.port}`, nodes: st.nodes, since: new Date().toISOString() });
      st = { ...st, phase: 'injected', injectedAt: new Date().toISOString() };
      writeFaultState(ctx, st);
      ctx.logger.info({ drill: ctx.drillId, faultId, proxyPort: proxy.port, nodes: st.nodes, faults: proxyFaultsOf(spec) }, 'fault injected: storage traffic routed through the fault proxy');
    }
    return { faultId, kind: 'network', injectedAt: st.injectedAt!, detail: details(st, spec, proxyStats(ctx.stateDir)) };
  },

  async revert(ctx, spec, faultId): Promise<RevertedFault> {
    const st = readFaultState<NetworkState>(ctx);
    const now = () => new Date().toISOString();
    if (!st || st.faultId !== faultId) return { faultId, reverted: false, revertedAt: now(), detail: {} };
    if (st.phase === 'reverted') return { faultId, reverted: false, revertedAt: st.revertedAt!, detail: details(st, spec, proxyStats(ctx.stateDir)) };
    // Route first: new requests go straight to storage while the proxy winds down.
    const routeFile = storageRouteFile(ctx.config);
    const route = readStorageRoute(routeFile);
    if (route && route.drillId === st.drillId && route.faultId === faultId) removeStorageRoute(routeFile);
    const f = files(ctx.stateDir);
    const rec = readProcessRecord(f.record);
    if (rec) {
      await stopRecordedProcess(rec, 5000);
      removeProcessRecord(f.record);
    }
    if (st.proxy) {
      const { host, port } = st.proxy;
      await waitFor(`nothing to listen on the fault proxy's port ${port}`, async () => !(await portInUse(host, port)), { timeoutMs: 15_000, intervalMs: 100 });
    }
    const done: NetworkState = { ...st, phase: 'reverted', revertedAt: now() };
    writeFaultState(ctx, done);
    const stats = proxyStats(ctx.stateDir);
    ctx.logger.info({ drill: ctx.drillId, faultId, ...stats }, 'fault reverted: fault proxy removed, storage traffic direct again');
    return { faultId, reverted: true, revertedAt: done.revertedAt!, detail: details(done, spec, stats) };
  },

  async active(ctx, _spec, faultId): Promise<boolean> {
    const st = readFaultState<NetworkState>(ctx);
    if (!st || st.faultId !== faultId || st.phase === 'reverted') return false;
    const route = readStorageRoute(storageRouteFile(ctx.config));
    if (route && route.faultId === faultId && route.drillId === st.drillId) return true;
    const rec = readProcessRecord(files(ctx.stateDir).record);
    return !!rec && recordAlive(rec);
  },
};
