/**
 * The storage faults' pure parts: scenario validation refuses what cannot be
 * injected here (an outage of external storage, a proxy in front of TLS) before
 * anything runs; a network spec maps to proxy faults; the storage route file
 * reaches exactly the workers it names and stops when removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { proxyFaultsOf } from '../../drills/faults/network';
import { parseScenario, scenarioProblems } from '../../drills/scenario';
import { removeStorageRoute, storageRouteResolver, writeStorageRoute } from '../../drills/storage-route';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-storage-faults-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = {
  incident: { environment: 'staging' },
  devstack: { dataDir: join(dir, 'data') },
  nodes: { n1: { root: join(dir, 'n1') } },
};
const embedded = configFromObject(base, { source: 'embedded.yaml' });
const external = (endpoint: string) =>
  configFromObject(
    { ...base, storage: { endpoint, credentials: { accessKeyId: { env: 'K' }, secretAccessKey: { env: 'S' } } } },
    { source: 'external.yaml', env: { K: 'k', S: 's' } },
  );

const scenario = (faults: string) =>
  parseScenario(`name: s\nenvironment: staging\nnode: n1\nobjectives: { rto: 5m }\nfaults:\n${faults}`, 'drill.yaml');

describe('storage fault validation', () => {
  const outage = scenario('  - { kind: storage-outage, duration: 30s }');
  const network = scenario('  - { kind: network, duration: 30s, latency: 200ms, bandwidth: 1MiB }');

  it('a storage outage needs the embedded MinIO', () => {
    expect(scenarioProblems(outage, embedded)).toEqual([]);
    expect(scenarioProblems(outage, external('http://s3.example:9000'))).toEqual([
      'faults[0] (storage-outage): storage is external (storage.endpoint is set): Lifeline can only stop the embedded MinIO; use a network fault with cut: true to cut the link instead',
    ]);
  });

  it('a network fault needs a plain-HTTP endpoint', () => {
    expect(scenarioProblems(network, embedded)).toEqual([]);
    expect(scenarioProblems(network, external('http://s3.example:9000'))).toEqual([]);
    expect(scenarioProblems(network, external('https://s3.example'))[0]).toMatch(/^faults\[0\] \(network\): storage.endpoint uses https: the fault proxy can only stand in front of a plain-HTTP endpoint/);
  });

  it('bad network specs are refused when parsed', () => {
    expect(() => scenario('  - { kind: network, duration: 30s }')).toThrow(/needs at least one of latency, bandwidth, resetProbability or cut/);
    expect(() => scenario('  - { kind: network, duration: 30s, bandwidth: fast }')).toThrow(/faults\[0\]\.bandwidth: expected a rate per second/);
    expect(() => scenario('  - { kind: storage-outage, duration: soon }')).toThrow(/faults\[0\]\.duration: expected a duration/);
  });

  it('a network spec becomes proxy faults', () => {
    const f = scenario('  - { kind: network, duration: 1m, latency: 250ms, bandwidth: 512KiB, resetProbability: 0.2 }').faults[0]!;
    if (f.kind !== 'network') throw new Error('parsed the wrong kind');
    expect(proxyFaultsOf(f)).toEqual({ latencyMs: 250, bandwidthBytesPerSecond: 512 * 1024, resetProbability: 0.2 });
    const cut = scenario('  - { kind: network, duration: 1m, cut: true }').faults[0]!;
    if (cut.kind !== 'network') throw new Error('parsed the wrong kind');
    expect(proxyFaultsOf(cut)).toEqual({ cut: true });
  });
});

describe('storage route', () => {
  const file = join(dir, 'route.json');
  const wait = () => new Promise((r) => setTimeout(r, 300));

  it('routes the named node agent only, then every worker, and nothing once removed', async () => {
    const agent = storageRouteResolver(file, { nodes: new Set(['n1']) });
    const other = storageRouteResolver(file, { nodes: new Set(['n2']) });
    const orchestrator = storageRouteResolver(file, { nodes: new Set() });
    expect([agent(), other(), orchestrator()]).toEqual([undefined, undefined, undefined]);

    writeStorageRoute(file, { drillId: 'd', faultId: 'f0', endpoint: 'http://127.0.0.1:4000', nodes: ['n1'], since: new Date().toISOString() });
    await wait();
    expect([agent(), other(), orchestrator()]).toEqual(['http://127.0.0.1:4000', undefined, undefined]);

    writeStorageRoute(file, { drillId: 'd', faultId: 'f1', endpoint: 'http://127.0.0.1:4001', nodes: null, since: new Date().toISOString() });
    await wait();
    expect([agent(), other(), orchestrator()]).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:4001', 'http://127.0.0.1:4001']);

    removeStorageRoute(file);
    await wait();
    expect([agent(), other(), orchestrator()]).toEqual([undefined, undefined, undefined]);
  });
});
