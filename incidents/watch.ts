/** The node health workflow of a node: its id and input from the config (used by the CLI and the drill worker). */
import type { LoadedConfig } from '../config/load';
import { durationMs } from '../config/platform';
import type { NodeHealthInput } from '../workflows/node-health';

export const nodeHealthId = (node: string) => `node-health-${node}`;

export function nodeHealthInput(config: LoadedConfig, node: string): NodeHealthInput {
  return {
    node,
    probeEverySeconds: Math.max(1, Math.round(durationMs(config.incident.nodeProbeEvery) / 1000)),
    lostAfterSeconds: Math.max(1, Math.round(durationMs(config.incident.nodeLostAfter) / 1000)),
  };
}

