import { describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { ConfigError } from '../../config/errors';
import { incidentTrigger } from '../../events/dispatch';
import { EventValidationError, parseEvent, type IncidentEvent } from '../../events/schema';
import { decisionProblem, incidentId, plannedSteps, summarize, suspectSnapshots, type IncidentTrigger } from '../../incidents/model';
import { eventFromOptions, nodeHealthInput } from '../../cli/incident';

const issues = (raw: unknown) => {
  try {
    parseEvent(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(EventValidationError);
    return (err as EventValidationError).issues;
  }
  throw new Error('accepted');
};

describe('incident events', () => {
  it('accepts the four incident types and normalises times', () => {
    expect(parseEvent({ type: 'node-lost', node: 'gpu1' })).toEqual({ type: 'node-lost', node: 'gpu1' });
    expect(parseEvent({ type: 'node-lost', node: 'gpu1', detectedAt: '2026-11-26T08:00:00+01:00' })).toEqual({ type: 'node-lost', node: 'gpu1', detectedAt: '2026-11-26T07:00:00.000Z' });
    expect(parseEvent({ type: 'integrity-failure', tenant: 't', asset: 'llm', snapshot: 'abcdef12', object: 'data/ab/x' })).toMatchObject({ snapshot: 'abcdef12' });
    expect(parseEvent({ type: 'suspected-compromise', assets: ['llm'], compromisedAt: '2026-11-26T07:00:00Z', source: 'ids' })).toMatchObject({ compromisedAt: '2026-11-26T07:00:00.000Z' });
    expect(parseEvent({ type: 'manual', summary: ' disk smoke ', severity: 'low' })).toEqual({ type: 'manual', summary: 'disk smoke', severity: 'low' });
  });

  it('names the field of every problem', () => {
    expect(issues({ type: 'node-lost' })).toEqual([{ field: 'node', problem: 'required: a node name' }]);
    expect(issues({ type: 'node-lost', node: 'gpu1', detectedAt: 'yesterday' })[0]!.field).toBe('detectedAt');
    expect(issues({ type: 'suspected-compromise', assets: ['llm'], compromisedAt: '2026-11-26', source: 'ids' })).toEqual([
      { field: 'compromisedAt', problem: 'expected compromisedAt as an ISO time with a zone, like 2026-11-26T08:00:00Z' },
    ]);
    expect(issues({ type: 'suspected-compromise', compromisedAt: '2026-11-26T07:00:00Z', source: 'ids' })).toEqual([{ field: 'nodes', problem: 'required: nodes or assets (what is suspected)' }]);
    expect(issues({ type: 'integrity-failure', tenant: 't', asset: 'llm', snapshot: 'XYZ' })[0]!.field).toBe('snapshot');
    expect(issues({ type: 'manual', summary: 'x', severity: 'huge' })).toEqual([{ field: 'severity', problem: 'expected one of low, medium, high, critical' }]);
    expect(issues({ type: 'manual', summary: 'x', severity: 'low', secret: 1 })).toEqual([{ field: 'secret', problem: 'unknown field' }]);
  });

  const config = configFromObject(
    {
      tenants: { t: { identity: { file: '/k/t.age' }, signingKey: { file: '/k/t.pem' } } },
      nodes: { gpu1: { root: '/data' }, gpu2: { root: '/data' } },
      assets: { llm: { node: 'gpu1', tenant: 't', kind: 'model', path: '/data/llm' } },
    },
    { checkSecrets: false },
  );

  it('refuses unknown nodes and assets, and a tenant that does not own the asset', () => {
    const bad = (raw: unknown) => {
      try {
        incidentTrigger(config, parseEvent(raw) as IncidentEvent, 'me');
      } catch (err) {
        return (err as EventValidationError).issues;
      }
      throw new Error('accepted');
    };
    expect(bad({ type: 'node-lost', node: 'gpu9' })).toEqual([{ field: 'node', problem: 'unknown node "gpu9" (declared: gpu1, gpu2)' }]);
    expect(bad({ type: 'suspected-compromise', assets: ['llm', 'x'], compromisedAt: '2026-11-26T07:00:00Z', source: 'ids' })).toEqual([{ field: 'assets.1', problem: 'unknown asset "x" (declared: llm)' }]);
    expect(bad({ type: 'integrity-failure', tenant: 'u', asset: 'llm', snapshot: 'abcdef' })).toEqual([{ field: 'tenant', problem: 'asset llm belongs to tenant t, not u' }]);
  });

  it('derives the incident id from type and subject, so the same report joins one incident', () => {
    const at = '2026-11-26T07:00:00.000Z';
    const t1 = incidentTrigger(config, parseEvent({ type: 'node-lost', node: 'gpu1' }) as IncidentEvent, 'a', at);
    const t2 = incidentTrigger(config, parseEvent({ type: 'node-lost', node: 'gpu1', detectedAt: '2026-11-26T06:00:00Z' }) as IncidentEvent, 'b', '2026-11-26T08:00:00.000Z');
    expect(incidentId(t1)).toBe('incident-node-lost-gpu1');
    expect(incidentId(t2)).toBe(incidentId(t1));
    const c1 = { type: 'suspected-compromise' as const, nodes: ['gpu2', 'gpu1'], assets: ['llm'], at };
    expect(incidentId(c1)).toBe('incident-suspected-compromise-gpu1+gpu2+llm');
    expect(incidentId({ type: 'integrity-failure', nodes: [], assets: ['llm'], snapshot: 'abcdef0123456789', at })).toBe('incident-integrity-failure-llm-abcdef012345');
    expect(incidentId({ type: 'manual', nodes: [], assets: [], at, nonce: 'x1' })).not.toBe(incidentId({ type: 'manual', nodes: [], assets: [], at, nonce: 'x2' }));
  });

  it('the CLI options become the event the schema validates', () => {
    expect(eventFromOptions('suspected-compromise', { node: ['gpu1'], asset: [], compromisedAt: 'T', source: 's', taskQueue: 'q' })).toEqual({
      type: 'suspected-compromise',
      nodes: ['gpu1'],
      compromisedAt: 'T',
      source: 's',
    });
    expect(eventFromOptions('node-lost', { node: ['gpu1'], asset: [], taskQueue: 'q' })).toEqual({ type: 'node-lost', node: 'gpu1' });
  });
});

describe('incident model', () => {
  it('plans the destructive steps per type', () => {
    expect(plannedSteps({ type: 'node-lost', nodes: ['n'], assets: [] })).toEqual(['rebuild-node']);
    expect(plannedSteps({ type: 'suspected-compromise', nodes: [], assets: ['a'] })).toEqual(['restore']);
    expect(plannedSteps({ type: 'suspected-compromise', nodes: ['n'], assets: [] })).toEqual(['rebuild-node', 'restore']);
    expect(plannedSteps({ type: 'manual', nodes: [], assets: [] })).toEqual([]);
  });

  it('refuses decisions on unknown steps, steps not awaiting approval, and rejections without a reason', () => {
    const steps = { 'rebuild-node': 'awaiting-approval' as const, restore: 'planned' as const };
    expect(decisionProblem('approve', { step: 'rebuild-node', actor: 'ann' }, steps, 'awaiting-approval')).toBeNull();
    expect(decisionProblem('approve', { step: 'format-disk' }, steps, 'awaiting-approval')).toBe('unknown step "format-disk" (known steps: rebuild-node, restore)');
    expect(decisionProblem('approve', { step: 'restore' }, steps, 'awaiting-approval')).toBe('step restore is not awaiting approval (it is planned)');
    expect(decisionProblem('approve', { step: 'restore' }, { 'rebuild-node': 'awaiting-approval' }, 'awaiting-approval')).toBe('step restore is not part of this incident (its steps: rebuild-node)');
    expect(decisionProblem('reject', { step: 'rebuild-node' }, steps, 'awaiting-approval')).toBe('reject: required: reason');
    expect(decisionProblem('approve', { step: 'rebuild-node' }, steps, 'expired')).toBe('the incident is expired; nothing awaits approval');
    expect(decisionProblem('approve', undefined, steps, 'open')).toMatch(/^approve: required: step/);
  });

  it('suspect snapshots are those taken strictly after the compromise time', () => {
    const snaps = [
      { id: 'a', time: '2026-11-26T06:00:00.000Z' },
      { id: 'b', time: '2026-11-26T07:00:00.000Z' },
      { id: 'c', time: '2026-11-26T07:00:00.001Z' },
    ];
    expect(suspectSnapshots(snaps, '2026-11-26T07:00:00Z').map((s) => s.id)).toEqual(['c']);
  });

  it('summarises restore points, the data-loss window and the time to recover', () => {
    const trigger: IncidentTrigger = { type: 'suspected-compromise', nodes: [], assets: ['a', 'b'], compromisedAt: '2026-11-26T07:00:00.000Z', actor: 'ids', at: '2026-11-26T07:30:00.000Z' };
    const s = summarize({
      trigger,
      outcome: 'resolved',
      openedAt: '2026-11-26T07:30:00.000Z',
      closedAt: '2026-11-26T07:45:00.000Z',
      contained: [
        { asset: 'a', tenant: 't', held: ['1', '2'], quarantined: ['2'], restorePoint: { snapshot: '1', time: '2026-11-26T06:00:00.000Z' } },
        { asset: 'b', tenant: 't', held: [], quarantined: [], restorePoint: null },
      ],
      holdsReleased: 2,
      recovery: 'manual',
    });
    expect(s).toEqual({
      outcome: 'resolved',
      what: 'suspected-compromise of asset a, asset b at 2026-11-26T07:00:00.000Z: resolved (manual)',
      restorePoints: [
        { asset: 'a', snapshot: '1', time: '2026-11-26T06:00:00.000Z' },
        { asset: 'b', snapshot: null, time: null },
      ],
      dataLossWindowSeconds: 3600,
      timeToRecoverSeconds: 900,
      holdsReleased: 2,
      quarantined: 1,
      restored: [],
    });
    expect(summarize({ trigger, outcome: 'rejected', openedAt: trigger.at, closedAt: trigger.at, contained: [], holdsReleased: 0, recovery: 'manual' }).timeToRecoverSeconds).toBeNull();
  });
});

describe('incident config', () => {
  it('allows auto-approval only in staging and refuses secrets inline in webhook headers', () => {
    expect(configFromObject({ incident: { environment: 'staging', autoApprove: true } }).incident.autoApprove).toBe(true);
    expect(() => configFromObject({ incident: { autoApprove: true } })).toThrow(ConfigError);
    expect(() => configFromObject({ incident: { autoApprove: true } })).toThrow(/incident\.autoApprove: true is only allowed with incident\.environment: staging/);
    expect(() => configFromObject({ incident: { webhooks: [{ url: 'https://x.test/h', headers: { Authorization: 'Bearer abc' } }] } })).toThrow(/inline secrets are not allowed/);
    expect(() => configFromObject({ incident: { webhooks: [{ url: 'https://u:p@x.test/h' }] } })).toThrow(/credentials in the URL/);
    const c = configFromObject({ incident: { webhooks: [{ url: 'http://127.0.0.1:1/h', headers: { Authorization: { env: 'HOOK' } } }], approvalTimeout: '5s' } });
    expect(configFromObject({}).incident).toEqual({ environment: 'production', webhooks: [], approvalTimeout: '4h', autoApprove: false, nodeProbeEvery: '30s', nodeLostAfter: '2m', recovery: 'manual' });
    expect(nodeHealthInput(configFromObject({ incident: { nodeProbeEvery: '500ms', nodeLostAfter: '90s' } }), 'gpu1')).toEqual({ node: 'gpu1', probeEverySeconds: 1, lostAfterSeconds: 90 });
    expect(c.incident).toMatchObject({ environment: 'production', approvalTimeout: '5s', recovery: 'manual', webhooks: [{ url: 'http://127.0.0.1:1/h', headers: { Authorization: { env: 'HOOK' } } }] });
  });
});
