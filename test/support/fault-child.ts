/**
 * One fault-injector call in its own process (`inject`, `revert` or `active`),
 * so tests can show that a fault injected by one process is reverted by
 * another that has only the fault's state folder (a crashed drill worker's
 * successor). argv[2] is JSON settings; prints the result as one JSON line.
 */
import { loadConfig } from '../../config/load';
import { corruptObjectFault, deleteObjectFault } from '../../drills/faults/stored-object';
import { networkFault } from '../../drills/faults/network';
import { storageOutageFault } from '../../drills/faults/storage-outage';
import type { FaultInjector } from '../../drills/fault';
import type { FaultSpec } from '../../drills/scenario';
import { createLogger } from '../../logging/logger';

const injectors: Record<string, FaultInjector<any>> = {
  'corrupt-object': corruptObjectFault,
  'delete-object': deleteObjectFault,
  'storage-outage': storageOutageFault,
  network: networkFault,
};

const s = JSON.parse(process.argv[2]!) as { configFile: string; op: 'inject' | 'revert' | 'active'; spec: FaultSpec; faultId: string; drillId: string; stateDir: string };
const config = loadConfig({ configPath: s.configFile, env: {} });
const ctx = { config, drillId: s.drillId, stateDir: s.stateDir, logger: createLogger({ level: 'warn', format: 'json' }) };
const injector = injectors[s.spec.kind]!;
const result = await injector[s.op](ctx, s.spec, s.faultId);
process.stdout.write(JSON.stringify({ result }) + '\n');
process.exit(0);
