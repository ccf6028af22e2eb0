/** Which Temporal Schedules a config asks for (schedules/desired.ts): ids, specs, policies and change detection. */
import { describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { desiredSchedules, parseScheduleId, scheduleScope } from '../../schedules/desired';

const base = () => ({
  tenants: { acme: { identity: { file: '/k/a' }, signingKey: { file: '/k/s' } } },
  nodes: { n1: {} },
  assets: {
    llm: { node: 'n1', tenant: 'acme', kind: 'model', path: '/m', policy: 'hourly' },
    data: { node: 'n1', tenant: 'acme', kind: 'dataset', path: '/d', policy: 'nightly' },
    scratch: { node: 'n1', tenant: 'acme', kind: 'dataset', path: '/s' },
  },
  policies: {
    hourly: {
      backup: { every: '1h', offset: '5m' },
      verify: { shallow: { every: '6h' }, deep: { cron: '0 3 * * 0', samplePercent: 25 } },
      retention: { keepLast: 24, schedule: { cron: '30 4 * * *' }, gcGrace: '2h' },
      overlap: 'buffer-one',
      catchupWindow: '10m',
    },
    nightly: { backup: { cron: '0 2 * * *' } },
  },
});
const load = (o: object) => configFromObject(o, { checkSecrets: false });

describe('desired schedules', () => {
  it('one schedule per asset and configured action, with deterministic ids, specs, args and policies', () => {
    const list = desiredSchedules(load(base()), { taskQueue: 'q' });
    expect(list.map((d) => d.id)).toEqual(['lifeline:data:backup', 'lifeline:llm:backup', 'lifeline:llm:retention', 'lifeline:llm:verify-deep', 'lifeline:llm:verify-shallow']);
    const byId = Object.fromEntries(list.map((d) => [d.id, d]));
    expect(byId['lifeline:llm:backup']).toMatchObject({
      spec: { every: '1h', offset: '5m' },
      specText: 'every 1h offset 5m',
      workflowType: 'backupWorkflow',
      args: [{ asset: 'llm', trigger: 'schedule' }],
      overlap: 'BUFFER_ONE',
      catchupWindowMs: 600_000,
      taskQueue: 'q',
    });
    expect(byId['lifeline:llm:verify-deep']).toMatchObject({ spec: { cron: '0 3 * * 0' }, workflowType: 'verifyWorkflow', args: [{ asset: 'llm', mode: 'deep', samplePercent: 25 }] });
    expect(byId['lifeline:llm:verify-shallow']!.args).toEqual([{ asset: 'llm', mode: 'shallow' }]);
    expect(byId['lifeline:llm:retention']).toMatchObject({ workflowType: 'retentionWorkflow', args: [{ asset: 'llm' }], specText: 'cron 30 4 * * *' });
    // Defaults: overlap skip, catch-up window 1h.
    expect(byId['lifeline:data:backup']).toMatchObject({ overlap: 'SKIP', catchupWindowMs: 3_600_000 });
  });

  it('the hash changes with what a schedule is made of, and only then', () => {
    const before = Object.fromEntries(desiredSchedules(load(base())).map((d) => [d.id, d.hash]));
    const edited = base();
    edited.policies.hourly.backup.every = '30m';
    edited.policies.hourly.retention.keepLast = 48; // not part of any schedule: retention reads it when it runs
    const after = Object.fromEntries(desiredSchedules(load(edited)).map((d) => [d.id, d.hash]));
    const changed = Object.keys(before).filter((id) => before[id] !== after[id]);
    expect(changed).toEqual(['lifeline:llm:backup']);
    expect(desiredSchedules(load(base()), { taskQueue: 'other' }).every((d) => d.hash !== before[d.id])).toBe(true);
  });

  it('parses its ids back, and rejects others', () => {
    expect(parseScheduleId('lifeline:llm:verify-deep')).toEqual({ asset: 'llm', action: 'verify-deep' });
    expect(parseScheduleId('lifeline:llm:compact')).toBeNull();
    expect(parseScheduleId('nightly-backup')).toBeNull();
    expect(scheduleScope(load(base()))).toBe('embedded|lifeline|');
  });
});
