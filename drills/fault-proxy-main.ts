/**
 * The fault proxy as its own process, started detached by the network fault
 * (drills/faults/network.ts) so that it outlives a crashed drill worker and is
 * stopped by pid from the fault's state. Writes `{ host, port, pid }` to the
 * ready file once it listens, and its counters to the stats file every 500 ms
 * and when it stops (SIGTERM/SIGINT).
 *
 *   node --import tsx drills/fault-proxy-main.ts --target 127.0.0.1:9000 \
 *     --faults '{"latencyMs":200}' --ready <file> --stats <file>
 */
import { parseArgs } from 'node:util';
import { writeJsonAtomic } from '../nodes/processes';
import { startFaultProxy, type ProxyFaults } from './fault-proxy';

const { values } = parseArgs({
  options: {
    target: { type: 'string' },
    faults: { type: 'string', default: '{}' },
    ready: { type: 'string' },
    stats: { type: 'string' },
  },
  strict: true,
});
const target = /^(.+):(\d+)$/.exec(values.target ?? '');
if (!target || !values.ready || !values.stats) {
  console.error('usage: fault-proxy-main --target host:port --ready <file> --stats <file> [--faults <json>]');
  process.exit(2);
}
const faults = JSON.parse(values.faults!) as ProxyFaults;
const proxy = await startFaultProxy({ target: { host: target[1]!, port: Number(target[2]) }, faults });
const statsFile = values.stats;
const writeStats = () => writeJsonAtomic(statsFile, { ...proxy.stats(), at: new Date().toISOString() });
writeStats();
writeJsonAtomic(values.ready, { host: proxy.host, port: proxy.port, pid: process.pid });
console.log(JSON.stringify({ msg: 'fault proxy listening', host: proxy.host, port: proxy.port, target: values.target, faults }));
const timer = setInterval(writeStats, 500);
const stop = async () => {
  clearInterval(timer);
  await proxy.close();
  writeStats();
  console.log(JSON.stringify({ msg: 'fault proxy stopped', ...proxy.stats() }));
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
