/**
 * Node health, one long-running workflow per node (`node-health-<node>`): every
 * `probeEvery` it runs a tiny probe activity on the node's task queue — only
 * that node's agent can answer it. A probe still unanswered after `lostAfter`
 * means the node is silent: a `node-lost` incident is opened (or joined), once
 * per outage; the next answered probe marks the node alive again. Each answer
 * also lists the node's training jobs that died before finishing (the job
 * watchdog): each dead run opens one incident, whose approved rebuild-node step
 * restarts the job on the intact node. Continues as
 * new after PROBES_PER_RUN probes to keep the history short.
 */
import { ActivityFailure, continueAsNew, defineQuery, patched, proxyActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { nodeTaskQueue } from './task-queues';

export interface NodeHealthInput {
  node: string;
  /** seconds between probes */
  probeEverySeconds: number;
  /** seconds a probe may stay unanswered before the node counts as lost */
  lostAfterSeconds: number;
  /** carried over continue-as-new */
  lastSeen?: string | null;
  lost?: boolean;
  incident?: string | null;
  /** run ids of dead training jobs already reported (the newest few) */
  reportedRuns?: string[];
}

export interface NodeHealthView {
  node: string;
  state: 'unknown' | 'alive' | 'lost';
  lastSeen: string | null;
  /** the node-lost incident opened for the current (or last) outage */
  incident: string | null;
  probes: number;
  /** incidents opened by the job watchdog (the newest few) */
  jobIncidents: Array<{ job: string; runId: string; incident: string; at: string }>;
}

export const nodeHealthQuery = defineQuery<NodeHealthView>('health');

const PROBES_PER_RUN = 500;

const acts = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});

export async function nodeHealthWorkflow(input: NodeHealthInput): Promise<void> {
  const probe = proxyActivities<ReturnType<typeof createActivities>>({
    taskQueue: nodeTaskQueue(input.node),
    scheduleToCloseTimeout: `${input.lostAfterSeconds} seconds`,
    retry: { maximumAttempts: 1 },
  });
  const view: NodeHealthView = {
    node: input.node,
    state: input.lost ? 'lost' : input.lastSeen ? 'alive' : 'unknown',
    lastSeen: input.lastSeen ?? null,
    incident: input.incident ?? null,
    probes: 0,
    jobIncidents: [],
  };
  const reportedRuns = [...(input.reportedRuns ?? [])];
  const started = new Date().toISOString();
  setHandler(nodeHealthQuery, () => view);

  while (view.probes < PROBES_PER_RUN) {
    view.probes++;
    try {
      const r = await probe.probeNode({ node: input.node });
      // Only deaths seen after a lost node are its recovery's business. A dead job seen by the first probe of a
      // new watch (a drill starts the watch and kills the job at once) is reported too (patched: older runs skipped it).
      const skipDead = patched('job-watchdog-first-probe') ? view.state === 'lost' : view.state !== 'alive';
      view.lastSeen = r.time;
      view.state = 'alive';
      // the job watchdog: a job that died before finishing opens an incident, once per run
      for (const d of r.deadJobs ?? []) {
        if (reportedRuns.includes(d.runId)) continue;
        if (skipDead) {
          reportedRuns.push(d.runId);
          continue;
        }
        const incident = await acts.reportJobDied({ node: input.node, job: d.job, runId: d.runId, step: d.step, detectedAt: r.time, reporter: workflowInfo().workflowId });
        reportedRuns.push(d.runId);
        if (reportedRuns.length > 20) reportedRuns.shift();
        view.jobIncidents.push({ job: d.job, runId: d.runId, incident, at: r.time });
        if (view.jobIncidents.length > 20) view.jobIncidents.shift();
      }
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      if (view.state !== 'lost') {
        view.state = 'lost';
        view.incident = await acts.reportNodeLost({ node: input.node, lastSeen: view.lastSeen ?? started, reporter: workflowInfo().workflowId });
      }
    }
    await sleep(`${input.probeEverySeconds} seconds`);
  }
  await continueAsNew<typeof nodeHealthWorkflow>({ ...input, lastSeen: view.lastSeen, lost: view.state === 'lost', incident: view.incident, reportedRuns });
}
