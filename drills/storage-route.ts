/**
 * Storage routing for network drills: while a network fault is active, a route
 * file under the data folder (`<dataDir>/drills/storage-route.json`) says that
 * the S3 traffic of one node's agent (or of every Lifeline worker) goes to the
 * fault proxy instead of the storage endpoint. Every S3 store a worker builds
 * asks `storageRouteResolver` for its endpoint on each request, so traffic moves
 * to the proxy when the route appears and back to the direct endpoint when it is
 * removed — no worker restarts. Works where the workers share the data folder
 * (the embedded stack and local nodes).
 *
 * Plain domain code (no Temporal). The file holds ports and ids only.
 */
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedConfig } from '../config/load';
import { stackSettings } from '../devstack/layout';
import { writeJsonAtomic } from '../nodes/processes';

export interface StorageRoute {
  drillId: string;
  faultId: string;
  /** the proxy, e.g. http://127.0.0.1:40123 */
  endpoint: string;
  /** the nodes whose agents are routed; null: every Lifeline worker */
  nodes: string[] | null;
  since: string;
}

export function storageRouteFile(config: LoadedConfig): string {
  return join(stackSettings(config).dataDir, 'drills', 'storage-route.json');
}

export function readStorageRoute(file: string): StorageRoute | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as StorageRoute;
  } catch {
    return null;
  }
}

export function writeStorageRoute(file: string, route: StorageRoute): void {
  writeJsonAtomic(file, route);
}

export function removeStorageRoute(file: string): void {
  rmSync(file, { force: true });
}

/** How long a worker trusts what it read before looking at the route file again. */
const RECHECK_MS = 250;

/**
 * The endpoint a worker's S3 requests go to right now: the proxy while a route
 * covers this worker (`nodeId` = the node agent's node; orchestrator and drill
 * workers have none and follow only routes for every worker), else undefined
 * (the configured endpoint).
 */
export function storageRouteResolver(file: string, scope: { nodeId?: string }): () => string | undefined {
  let checkedAt = -Infinity;
  let seen = '';
  let current: string | undefined;
  return () => {
    const now = performance.now();
    if (now - checkedAt < RECHECK_MS) return current;
    checkedAt = now;
    let stamp = '';
    try {
      const st = statSync(file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      stamp = '';
    }
    if (stamp === seen) return current;
    seen = stamp;
    const route = stamp ? readStorageRoute(file) : null;
    current = route && (route.nodes === null || (scope.nodeId !== undefined && route.nodes.includes(scope.nodeId))) ? route.endpoint : undefined;
    return current;
  };
}
