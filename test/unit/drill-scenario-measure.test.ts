import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { formatDrillRunResult } from '../../cli/drill';
import { configFromObject } from '../../config/load';
import { FAULT_INJECTORS, faultId, missingInjectors } from '../../drills/faults';
import { buildDrillReport, emptyObservation, evaluateObjectives, measureRpo, measureRto, objectFaultIncidents, followedObjectIncidents, type DrillObservation, type MeasureInput } from '../../drills/measure';
import type { DrillFaultRecord } from '../../drills/report';
import { parseScenario, scenarioProblems, ScenarioError } from '../../drills/scenario';

const base = { name: 'd1', environment: 'staging', node: 'gpu1', faults: [{ kind: 'destroy-node', node: 'gpu1' }], objectives: { rto: '5m' } };
const yaml = (o: unknown) => stringify(o);

describe('drill scenarios are validated before anything is injected', () => {
  it('an unknown fault kind names the path and the known kinds', () => {
    const err = (() => {
      try {
        parseScenario(yaml({ ...base, faults: [{ kind: 'unplug-rack', node: 'gpu1' }] }), 'drills/x.yaml');
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(ScenarioError);
    expect(err!.message).toMatch(/^drills\/x\.yaml: invalid drill scenario:\n {2}faults\[0\]\.kind: unknown fault kind; expected one of: kill-training-job, kill-node-agent, destroy-node/);
  });

  it('a bad duration names the field', () => {
    expect(() => parseScenario(yaml({ ...base, faults: [{ kind: 'destroy-node', node: 'gpu1', at: 'soon' }] }), 's.yaml')).toThrow(/faults\[0\]\.at: expected a duration like 30s/);
    expect(() => parseScenario(yaml({ ...base, objectives: { rto: '5 minutes' } }), 's.yaml')).toThrow(/objectives\.rto: expected a duration/);
    expect(() => parseScenario(yaml({ ...base, faults: [{ kind: 'crash-orchestrator', restartAfter: '-1s' }] }), 's.yaml')).toThrow(/faults\[0\]\.restartAfter/);
  });

  it('an environment other than staging is refused by the schema, an installation not marked staging by scenarioProblems', () => {
    expect(() => parseScenario(yaml({ ...base, environment: 'production' }), 's.yaml')).toThrow(/environment: drills run only in staging/);
    const s = parseScenario(yaml(base), 's.yaml');
    const cfg = (environment: string) => configFromObject({ nodes: { gpu1: {} }, incident: { environment } });
    expect(scenarioProblems(s, cfg('production'))).toEqual(['this installation is incident.environment: production; drills run only where it is staging']);
    expect(scenarioProblems(s, cfg('staging'))).toEqual([]);
  });

  it('an undeclared node, job or asset is a problem naming the fault', () => {
    const s = parseScenario(
      yaml({ ...base, node: 'gpu9', faults: [{ kind: 'kill-node-agent', node: 'gpu7' }, { kind: 'kill-training-job', job: 'train' }, { kind: 'ransomware', node: 'gpu1', assets: ['ckpt'] }] }),
      's.yaml',
    );
    const cfg = configFromObject({ nodes: { gpu1: {} }, incident: { environment: 'staging' } });
    expect(scenarioProblems(s, cfg)).toEqual([
      'node: node "gpu9" is not declared under nodes',
      'faults[0] (kill-node-agent): node "gpu7" is not declared under nodes',
      'faults[1] (kill-training-job): training job "train" is not declared under trainingJobs',
      'faults[2] (ransomware): asset "ckpt" is not declared under assets',
    ]);
  });

  it('the registry has an injector for every process fault kind, and says which kinds it lacks', () => {
    for (const k of ['kill-training-job', 'kill-node-agent', 'destroy-node', 'crash-orchestrator', 'ransomware'] as const) expect(FAULT_INJECTORS[k]?.kind).toBe(k);
    expect(missingInjectors(['destroy-node', 'destroy-node'])).toEqual([]);
    expect(faultId(2, 'ransomware')).toBe('f2-ransomware');
  });
});

describe('measuring a drill', () => {
  const fault = (over: Partial<DrillFaultRecord> = {}): DrillFaultRecord => ({
    id: 'f0-destroy-node',
    kind: 'destroy-node',
    injectedAt: '2026-01-01T10:00:00.000Z',
    revertedAt: '2026-01-01T10:05:00.000Z',
    reverted: true,
    detail: {},
    ...over,
  });
  const recovered = (): DrillObservation => ({
    ...emptyObservation(),
    detectedAt: '2026-01-01T10:00:08.000Z',
    detectedBy: 'node health',
    incidentId: 'incident-node-lost-gpu1',
    incidentOpenedAt: '2026-01-01T10:00:09.000Z',
    incidentStatus: 'resolved',
    incidentClosedAt: '2026-01-01T10:02:00.000Z',
    approvals: [{ step: 'rebuild-node', actor: 'drill:d1', at: '2026-01-01T10:00:10.000Z' }],
    recoveryStartedAt: '2026-01-01T10:00:11.000Z',
    recovery: {
      workflowId: 'incident-node-lost-gpu1-recover-gpu1',
      mode: 'rebuild',
      startedAt: '2026-01-01T10:00:11.000Z',
      finishedAt: '2026-01-01T10:01:13.500Z',
      nodeRebuiltAt: '2026-01-01T10:00:30.000Z',
      assets: [
        { asset: 'ckpt', snapshotId: 'a'.repeat(64), snapshotTime: '2026-01-01T09:58:00.000Z', source: 'last-verified' },
        { asset: 'weights', snapshotId: 'b'.repeat(64), snapshotTime: '2026-01-01T09:00:00.000Z', source: 'last-verified' },
      ],
      jobs: [{ job: 'train', restoredStep: 80, stepAtFailure: 130, rpoSteps: 50 }],
    },
    trainingResumedAt: '2026-01-01T10:01:13.500Z',
  });
  const input = (over: Partial<MeasureInput> = {}): MeasureInput => ({
    id: 'drill-d1',
    scenario: 'd1',
    node: 'gpu1',
    startedAt: '2026-01-01T09:59:59.000Z',
    finishedAt: '2026-01-01T10:05:01.000Z',
    preconditionsMetAt: '2026-01-01T09:59:59.500Z',
    aborted: false,
    faults: [fault()],
    observation: recovered(),
    objectives: { rto: '5m', rtoMs: 300_000, rpo: '2h', rpoMs: 7_200_000, expect: ['training-resumes', 'restored-from-verified', 'restored-from-before-fault', 'incident-opened'] },
    workflows: [{ role: 'drill', workflowId: 'drill-d1' }],
    errors: [],
    ...over,
  });

  it('RTO is first fault → training resumed; RPO the oldest restored snapshot → failure; steps from the jobs', () => {
    const r = buildDrillReport(input());
    expect(r.measured).toEqual({ rtoSeconds: 73.5, rpoSeconds: 3600, rpoSteps: 50 });
    expect(r.verdict).toBe('pass');
    expect(r.objectives.map((o) => [o.name, o.measured, o.pass])).toEqual([
      ['rto', '73.5 s', true],
      ['rpo', '3600 s', true],
      ['training-resumes', 'yes', true],
      ['restored-from-verified', 'yes', true],
      ['restored-from-before-fault', 'yes', true],
      ['incident-opened', 'yes', true],
    ]);
    expect(r.timeline.map((e) => e.event)).toEqual([
      'drill-started',
      'preconditions-met',
      'fault-injected',
      'detected',
      'incident-opened',
      'approved',
      'node-rebuilt',
      'data-restored',
      'training-resumed',
      'fault-reverted',
      'drill-finished',
    ]);
  });

  it('an unreachable RTO (1 s) fails with the measured number', () => {
    const r = buildDrillReport(input({ objectives: { rto: '1s', rtoMs: 1000, expect: [] } }));
    expect(r.verdict).toBe('fail');
    expect(r.objectives).toEqual([{ name: 'rto', target: '1s', measured: '73.5 s', pass: false, detail: '73.5 s exceeds 1s' }]);
  });

  it('a fault left active, an aborted drill or no recovery fails the verdict', () => {
    expect(buildDrillReport(input({ faults: [fault({ reverted: false })] })).verdict).toBe('fail');
    expect(buildDrillReport(input({ aborted: true })).verdict).toBe('fail');
    const none = buildDrillReport(input({ observation: emptyObservation() }));
    expect(none.verdict).toBe('fail');
    expect(none.measured).toEqual({ rtoSeconds: null, rpoSeconds: null, rpoSteps: null });
    expect(none.objectives[0]).toMatchObject({ name: 'rto', measured: null, pass: false, detail: 'recovery did not complete' });
  });

  it('a snapshot taken after the first fault fails restored-from-before-fault; an intact node restarted restores nothing (RPO 0)', () => {
    const o = recovered();
    o.recovery!.assets[0]!.snapshotTime = '2026-01-01T10:00:01.000Z';
    const r = evaluateObjectives({ faults: [fault()], observation: o, objectives: { rto: '5m', rtoMs: 300_000, expect: ['restored-from-before-fault'] } });
    expect(r[1]).toMatchObject({ pass: false, detail: `taken after the first fault: ckpt@${'a'.repeat(12)}` });
    const restart = recovered();
    restart.recovery = { ...restart.recovery!, mode: 'restart', assets: [] };
    expect(measureRpo([fault()], restart)).toBe(0);
    expect(measureRto([fault()], restart)).toBe(73.5);
  });

  it('the CLI summary shows the verdict, RTO/RPO against the objectives and the report path', () => {
    const r = buildDrillReport(input({ objectives: { rto: '1s', rtoMs: 1000, expect: ['training-resumes'] } }));
    const text = formatDrillRunResult({
      id: r.id,
      verdict: r.verdict,
      aborted: false,
      rtoSeconds: r.measured.rtoSeconds,
      rpoSeconds: r.measured.rpoSeconds,
      rpoSteps: r.measured.rpoSteps,
      objectives: r.objectives,
      faultsLeft: [],
      errors: [],
      jsonPath: '/data/drills/drill-d1/report.json',
      htmlPath: '/data/drills/drill-d1/report.html',
    });
    expect(text).toContain('drill drill-d1: FAIL');
    expect(text).toContain('RTO 73.5 s; RPO 3600 s (50 training step(s) lost)');
    expect(text).toMatch(/FAIL {2}rto +target 1s +measured 73\.5 s/);
    expect(text).toMatch(/pass {2}training-resumes +target training-resumes +measured yes/);
    expect(text).toContain('report /data/drills/drill-d1/report.html (JSON: /data/drills/drill-d1/report.json)');
  });
});

describe('measuring a stored-object drill', () => {
  const snap = 'ab'.repeat(32);
  const corrupt: DrillFaultRecord = { id: 'f0-corrupt-object', kind: 'corrupt-object', injectedAt: '2026-01-01T10:00:00.000Z', revertedAt: '2026-01-01T10:03:00.000Z', reverted: true, detail: { asset: 'model', snapshot: snap, object: 'pack' } };

  it('follows the integrity-failure incident the verification opens for the damaged snapshot', () => {
    expect(objectFaultIncidents([corrupt, { ...corrupt, id: 'f1-delete-object', kind: 'delete-object' }])).toEqual([`incident-integrity-failure-model-${snap.slice(0, 12)}`]);
    // not injected, or another kind: nothing to follow
    expect(objectFaultIncidents([{ ...corrupt, injectedAt: null }, { ...corrupt, kind: 'destroy-node' }])).toEqual([]);
  });

  it('a drill that also breaks the node follows the node incident, not the verification one', () => {
    const destroy: DrillFaultRecord = { id: 'f1-destroy-node', kind: 'destroy-node', injectedAt: '2026-01-01T10:00:45.000Z', revertedAt: null, reverted: false, detail: {} };
    expect(followedObjectIncidents([corrupt])).toEqual(objectFaultIncidents([corrupt]));
    expect(followedObjectIncidents([corrupt, destroy])).toEqual([]);
    expect(followedObjectIncidents([corrupt, { ...destroy, kind: 'storage-outage' }])).toEqual(objectFaultIncidents([corrupt]));
  });

  it('RTO ends when the incident is resolved (no node to recover); an unresolved incident measures nothing', () => {
    const o: DrillObservation = { ...emptyObservation(), incidentId: 'i', incidentOpenedAt: '2026-01-01T10:00:30.000Z', detectedAt: '2026-01-01T10:00:30.000Z', incidentStatus: 'resolved', incidentClosedAt: '2026-01-01T10:01:15.500Z' };
    expect(measureRto([corrupt], o)).toBe(75.5);
    expect(measureRto([corrupt], { ...o, incidentStatus: 'expired' })).toBeNull();
    const [rto] = evaluateObjectives({ faults: [corrupt], observation: o, objectives: { rto: '1s', rtoMs: 1000, expect: [] } });
    expect(rto).toMatchObject({ name: 'rto', pass: false, measured: '75.5 s' });
  });
});

describe('a stored-object drill restores from verified', () => {
  const snap = 'cd'.repeat(32);
  const corrupt: DrillFaultRecord = { id: 'f0-corrupt-object', kind: 'corrupt-object', injectedAt: '2026-01-01T10:00:00.000Z', revertedAt: null, reverted: false, detail: { asset: 'model', snapshot: snap } };
  it('passes when the incident restore point is another verified snapshot, fails when it is the damaged one', () => {
    const rp = (snapshotId: string): DrillObservation => ({ ...emptyObservation(), restorePoints: [{ asset: 'model', snapshotId, snapshotTime: '2026-01-01T09:00:00.000Z', source: 'last-verified' }] });
    const [ok] = evaluateObjectives({ faults: [corrupt], observation: rp('ef'.repeat(32)), objectives: { rto: '5m', rtoMs: 300_000, expect: ['restored-from-verified'] } }).slice(1);
    expect(ok).toMatchObject({ pass: true, measured: 'yes' });
    const [bad] = evaluateObjectives({ faults: [corrupt], observation: rp(snap), objectives: { rto: '5m', rtoMs: 300_000, expect: ['restored-from-verified'] } }).slice(1);
    expect(bad).toMatchObject({ pass: false, measured: 'no' });
  });
});
