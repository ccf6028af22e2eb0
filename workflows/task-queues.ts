/** Task queue names (shared by workflow code, workers and the CLI; no Node imports). */
export const ORCHESTRATOR_TASK_QUEUE = 'lifeline-orchestrator';
/** The drill worker's queue: chaos drills run apart from the orchestrator they may crash. */
export const DRILL_TASK_QUEUE = 'lifeline-drill';

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function isValidNodeId(nodeId: string): boolean {
  return NODE_ID.test(nodeId);
}

/** The task queue a node agent polls: `lifeline-node-<nodeId>`. */
export function nodeTaskQueue(nodeId: string): string {
  if (!isValidNodeId(nodeId)) throw new TypeError(`invalid node id ${JSON.stringify(nodeId)} (letters, digits, . _ -; at most 63)`);
  return `lifeline-node-${nodeId}`;
}
