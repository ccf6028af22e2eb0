/** A realistic DrillReport for report tests (times relative to a fixed start). */
import type { DrillReport } from '../../drills/report';

export function sampleDrillReport(over: Partial<DrillReport> = {}): DrillReport {
  const t0 = Date.parse('2026-11-26T10:00:00.000Z');
  const at = (s: number) => new Date(t0 + s * 1000).toISOString();
  return {
    format: 'lifeline-drill-report',
    version: 1,
    id: 'drill-main-job-20261126T100000Z',
    scenario: 'main-job',
    environment: 'staging',
    node: 'gpu-1',
    startedAt: at(0),
    finishedAt: at(95),
    verdict: 'pass',
    aborted: false,
    timeline: [
      { event: 'drill-started', at: at(0) },
      { event: 'preconditions-met', at: at(1.5), detail: '4 assets verified' },
      { event: 'fault-injected', at: at(3), detail: 'destroy-node gpu-1' },
      { event: 'fault-injected', at: at(4), detail: 'corrupt-object checkpoints' },
      { event: 'detected', at: at(21), detail: 'node-lost gpu-1' },
      { event: 'incident-opened', at: at(22), detail: 'incident-node-lost-gpu-1' },
      { event: 'approved', at: at(23), detail: 'drill:drill-main-job' },
      { event: 'node-rebuilt', at: at(30) },
      { event: 'data-restored', at: at(61), detail: '4 assets' },
      { event: 'training-resumed', at: at(72), detail: 'job train from step 40' },
      { event: 'fault-reverted', at: at(80), detail: 'destroy-node' },
      { event: 'drill-finished', at: at(95) },
    ],
    measured: { rtoSeconds: 69, rpoSeconds: 41.5, rpoSteps: 20 },
    objectives: [
      { name: 'rto', target: '5m', measured: '69 s', pass: true },
      { name: 'rpo', target: '10m', measured: '41.5 s', pass: true },
      { name: 'training-resumes', target: 'training-resumes', measured: 'step 40 → 61', pass: true },
    ],
    restored: [
      { asset: 'platform', snapshotId: 'a'.repeat(64), snapshotTime: at(-200), source: 'last-verified' },
      { asset: 'checkpoints', snapshotId: 'b'.repeat(64), snapshotTime: at(-40), source: 'last-verified' },
    ],
    faults: [
      { id: 'f0-destroy-node', kind: 'destroy-node', injectedAt: at(3), revertedAt: at(80), reverted: true, detail: { node: 'gpu-1' } },
      { id: 'f1-corrupt-object', kind: 'corrupt-object', injectedAt: at(4), revertedAt: at(81), reverted: true, detail: { asset: 'checkpoints', object: 'pack' } },
    ],
    workflows: [
      { role: 'drill', workflowId: 'drill-main-job-20261126T100000Z', url: 'http://127.0.0.1:8233/namespaces/default/workflows/drill-main-job-20261126T100000Z' },
      { role: 'incident', workflowId: 'incident-node-lost-gpu-1' },
    ],
    errors: [],
    ...over,
  };
}
