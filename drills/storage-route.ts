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

/** Which routes a process follows: those for every worker, and those naming a node it is the agent of. */
export interface RouteScope {
  nodes: ReadonlySet<string>;
}

/**
 * The endpoint S3 requests go to right now: the proxy while a route covers the
 * scope, else undefined (the configured endpoint). Reads the file at most every
 * 250 ms, and only when it changed.
 */
export function storageRouteResolver(file: string, scope: RouteScope): () => string | undefined {
  let checkedAt = -Infinity;
  let seen = '';
  let route: StorageRoute | null = null;
  return () => {
    const now = performance.now();
    if (now - checkedAt >= RECHECK_MS) {
      checkedAt = now;
      let stamp = '';
      try {
        const st = statSync(file);
        stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      } catch {
        stamp = '';
      }
      if (stamp !== seen) {
        seen = stamp;
        route = stamp ? readStorageRoute(file) : null;
      }
    }
    // The scope is read each time: a process may become a node's agent after its first request.
    return route && (route.nodes === null || route.nodes.some((n) => scope.nodes.has(n))) ? route.endpoint : undefined;
  };
}

// Only Lifeline workers follow drill routes; CLI commands and the injectors themselves talk to storage directly.
const followed = { on: false, nodes: new Set<string>() };
const resolvers = new Map<string, () => string | undefined>();

/** Called by every worker at start (node agents with their node): storage resolved in this process from now on follows drill routes. */
export function followStorageRoutes(scope: { nodeId?: string }): void {
  followed.on = true;
  if (scope.nodeId) followed.nodes.add(scope.nodeId);
}

/** The route of storage resolved in this process (see `resolveStorage`), or undefined when this process follows none. */
export function processStorageRoute(config: LoadedConfig): (() => string | undefined) | undefined {
  if (!followed.on) return undefined;
  const file = storageRouteFile(config);
  let r = resolvers.get(file);
  if (!r) resolvers.set(file, (r = storageRouteResolver(file, followed)));
  return r;
}
