import { describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { incidentTrigger } from '../../events/dispatch';
import { EventValidationError, parseEvent, type IncidentEvent } from '../../events/schema';
import { defaultSeverity, incidentId, plannedSteps } from '../../incidents/model';
import { ownPrincipals, tenantPrefixes, watchedBuckets } from '../../alarm/layout';
import { eventFromOptions } from '../../cli/incident';
import {
  BurstCoalescer,
  burstEvent,
  classifyEvent,
  locateKey,
  needsPriorVersionCheck,
  parseRecord,
  principalLabel,
  replacedLiveVersion,
  type BucketEvent,
  type TamperFinding,
  type TenantPrefix,
  type WatchedBucket,
} from '../../alarm/tamper';

const repo: WatchedBucket = { bucket: 'lifeline', role: 'repository', prefix: 'prod/', probePrefix: 'prod/.lifeline-alarm/' };
const audit: WatchedBucket = { bucket: 'lifeline-audit', role: 'audit', prefix: 'prod/audit/', probePrefix: 'prod/.lifeline-alarm/' };
const tenants: TenantPrefix[] = [
  { tenant: 'acme', prefix: 'prod/tenants/acme/' },
  { tenant: 'acme-eu', prefix: 'prod/tenants/acme/eu/' },
  { tenant: 'beta', prefix: 'prod/tenants/beta/' },
];
const LIFELINE_KEY = 'lifeline-backup-writer';
const isOwn = (p: string) => p === LIFELINE_KEY;

/** A MinIO notification record as listenBucketNotification delivers it. */
function record(eventName: string, key: string, principal: string, extra: { bucket?: string; versionId?: string } = {}) {
  return {
    eventVersion: '2.0',
    eventSource: 'minio:s3',
    awsRegion: '',
    eventTime: '2026-11-26T09:00:00.123Z',
    eventName,
    userIdentity: { principalId: principal },
    requestParameters: { principalId: principal, region: '', sourceIPAddress: '127.0.0.1' },
    responseElements: { 'x-amz-request-id': '18EB8FA873A43274' },
    s3: {
      s3SchemaVersion: '1.0',
      bucket: { name: extra.bucket ?? 'lifeline', ownerIdentity: { principalId: principal }, arn: 'arn:aws:s3:::lifeline' },
      object: { key: encodeURIComponent(key).replace(/%2F/g, '/'), size: 10, sequencer: '1', ...(extra.versionId ? { versionId: extra.versionId } : {}) },
    },
  };
}

function judge(eventName: string, key: string, principal: string, opts: { bucket?: WatchedBucket; hadEarlierVersion?: boolean } = {}): TamperFinding | null {
  const b = opts.bucket ?? repo;
  const ev = parseRecord(record(eventName, key, principal, { bucket: b.bucket }))!;
  return classifyEvent(ev, locateKey(ev.key, b, tenants), { isOwn, hadEarlierVersion: opts.hadEarlierVersion });
}

describe('bucket event records', () => {
  it('parses a MinIO record: decoded key, principal, time, version', () => {
    const ev = parseRecord(record('s3:ObjectRemoved:DeleteMarkerCreated', 'prod/tenants/acme/data/ab/ab12 x', 'root', { versionId: 'v1' }));
    expect(ev).toMatchObject({ eventName: 's3:ObjectRemoved:DeleteMarkerCreated', bucket: 'lifeline', key: 'prod/tenants/acme/data/ab/ab12 x', principal: 'root', time: '2026-11-26T09:00:00.123Z', versionId: 'v1' });
    // The same event delivered twice has the same id; another key of the same request does not.
    expect(parseRecord(record('s3:ObjectRemoved:DeleteMarkerCreated', 'prod/tenants/acme/data/ab/ab12 x', 'root', { versionId: 'v1' }))!.id).toBe(ev!.id);
    expect(parseRecord(record('s3:ObjectRemoved:DeleteMarkerCreated', 'prod/tenants/acme/data/ab/ab13', 'root', { versionId: 'v1' }))!.id).not.toBe(ev!.id);
    expect(parseRecord({ eventName: 's3:ObjectCreated:Put', s3: { bucket: { name: 'b' }, object: { key: 'a+b%2Bc' } } })!.key).toBe('a b+c');
    expect(parseRecord(null)).toBeNull();
    expect(parseRecord({ eventName: 's3:BucketCreated:*', s3: { bucket: { name: 'b' } } })).toBeNull();
  });

  it('locates every kind of repository key, the tenant by the longest prefix, the audit log and the probe', () => {
    expect(locateKey('prod/tenants/acme/config', repo, tenants)).toEqual({ kind: 'config', tenant: 'acme' });
    expect(locateKey('prod/tenants/acme/data/ab/abcd', repo, tenants)).toEqual({ kind: 'pack', tenant: 'acme' });
    expect(locateKey('prod/tenants/acme/index/1234', repo, tenants)).toEqual({ kind: 'index', tenant: 'acme' });
    expect(locateKey('prod/tenants/beta/snapshots/5678', repo, tenants)).toEqual({ kind: 'snapshot', tenant: 'beta' });
    for (const f of ['verifications/s/x', 'holds/s/h/placed', 'quarantine/s/m/released', 'bom/s']) expect(locateKey(`prod/tenants/acme/${f}`, repo, tenants)).toEqual({ kind: 'record', tenant: 'acme' });
    expect(locateKey('prod/tenants/acme/locks/l1', repo, tenants)).toEqual({ kind: 'lock', tenant: 'acme' });
    expect(locateKey('prod/tenants/acme/tombstones/t1', repo, tenants)).toEqual({ kind: 'tombstone', tenant: 'acme' });
    expect(locateKey('prod/tenants/acme/eu/data/cd/cdef', repo, tenants)).toEqual({ kind: 'pack', tenant: 'acme-eu' });
    expect(locateKey('prod/tenants/acme/notes.txt', repo, tenants)).toEqual({ kind: 'foreign' });
    expect(locateKey('prod/smoke/obj', repo, tenants)).toEqual({ kind: 'foreign' });
    expect(locateKey('prod/.lifeline-alarm/probe-1', repo, tenants)).toEqual({ kind: 'probe' });
    expect(locateKey('prod/audit/entries/00000001', audit, tenants)).toEqual({ kind: 'audit' });
    expect(locateKey('other/file', audit, tenants)).toEqual({ kind: 'foreign' });
  });
});

describe('classifying bucket events', () => {
  it('a delete by anyone but Lifeline is tampering, whatever the kind', () => {
    expect(judge('s3:ObjectRemoved:Delete', 'prod/tenants/acme/data/ab/abcd', 'minioadmin')).toMatchObject({ kind: 'pack', tenant: 'acme', action: 'delete', own: false, principal: 'minioadmin' });
    expect(judge('s3:ObjectRemoved:DeleteMarkerCreated', 'prod/tenants/beta/snapshots/5678', 'attacker')).toMatchObject({ kind: 'snapshot', tenant: 'beta', action: 'delete' });
    expect(judge('s3:ObjectRemoved:DeleteAllVersions', 'prod/tenants/acme/holds/s/h/placed', 'attacker')).toMatchObject({ kind: 'record', action: 'delete' });
    expect(judge('s3:ObjectRemoved:Delete', 'prod/tenants/acme/locks/l1', 'attacker')).toMatchObject({ kind: 'lock', action: 'delete' });
  });

  it("Lifeline's own deletes (garbage collection, forgetting, lock release) are not, except in the append-only audit log", () => {
    for (const k of ['data/ab/abcd', 'index/1234', 'snapshots/5678', 'locks/l1', 'tombstones/t1', 'verifications/s/x']) {
      expect(judge('s3:ObjectRemoved:Delete', `prod/tenants/acme/${k}`, LIFELINE_KEY)).toBeNull();
    }
    expect(judge('s3:ObjectRemoved:DeleteMarkerCreated', 'prod/audit/entries/00000001', LIFELINE_KEY, { bucket: audit })).toMatchObject({ kind: 'audit', action: 'delete', own: true });
    expect(judge('s3:ObjectRemoved:Delete', 'prod/audit/checkpoints/00000002', 'attacker', { bucket: audit })).toMatchObject({ kind: 'audit', action: 'delete', own: false });
  });

  it('writes: an overwrite of a write-once object is tampering even with Lifeline\'s key; new objects by Lifeline and lock renewals are not', () => {
    expect(judge('s3:ObjectCreated:Put', 'prod/tenants/acme/snapshots/5678', LIFELINE_KEY, { hadEarlierVersion: true })).toMatchObject({ action: 'overwrite', own: true });
    expect(judge('s3:ObjectCreated:CompleteMultipartUpload', 'prod/tenants/acme/data/ab/abcd', LIFELINE_KEY, { hadEarlierVersion: true })).toMatchObject({ action: 'overwrite', kind: 'pack' });
    expect(judge('s3:ObjectCreated:Put', 'prod/tenants/acme/data/ab/abcd', LIFELINE_KEY, { hadEarlierVersion: false })).toBeNull();
    expect(judge('s3:ObjectCreated:Put', 'prod/tenants/acme/data/ab/abcd', LIFELINE_KEY)).toBeNull(); // unversioned bucket: unknown
    expect(judge('s3:ObjectCreated:Put', 'prod/tenants/acme/locks/l1', LIFELINE_KEY, { hadEarlierVersion: true })).toBeNull();
    expect(judge('s3:ObjectCreated:Put', 'prod/audit/entries/00000003', LIFELINE_KEY, { bucket: audit, hadEarlierVersion: false })).toBeNull();
    expect(judge('s3:ObjectCreated:Copy', 'prod/tenants/acme/index/1234', 'attacker', { hadEarlierVersion: true })).toMatchObject({ action: 'overwrite', own: false });
    expect(judge('s3:ObjectCreated:Put', 'prod/tenants/acme/snapshots/planted', 'attacker', { hadEarlierVersion: false })).toMatchObject({ action: 'write' });
  });

  it('retention, legal hold and tag changes by others are tampering; by Lifeline (incident holds) not', () => {
    expect(judge('s3:ObjectCreated:PutRetention', 'prod/tenants/acme/data/ab/abcd', 'attacker')).toMatchObject({ action: 'retention' });
    expect(judge('s3:ObjectCreated:PutLegalHold', 'prod/audit/entries/00000001', 'attacker', { bucket: audit })).toMatchObject({ action: 'legal-hold', kind: 'audit' });
    expect(judge('s3:ObjectCreated:PutTagging', 'prod/tenants/acme/snapshots/5678', 'attacker')).toMatchObject({ action: 'tagging' });
    expect(judge('s3:ObjectCreated:PutLegalHold', 'prod/tenants/acme/snapshots/5678', LIFELINE_KEY)).toBeNull();
    expect(judge('s3:ObjectCreated:PutRetention', 'prod/tenants/acme/snapshots/5678', LIFELINE_KEY)).toBeNull();
  });

  it('ignores reads, no-op deletes, the probe and keys that are not Lifeline\'s', () => {
    expect(judge('s3:ObjectAccessed:Get', 'prod/tenants/acme/data/ab/abcd', 'attacker')).toBeNull();
    expect(judge('s3:ObjectAccessed:Head', 'prod/tenants/acme/snapshots/5678', 'attacker')).toBeNull();
    expect(judge('s3:ObjectRemoved:NoOP', 'prod/tenants/acme/data/ab/abcd', 'attacker')).toBeNull();
    expect(judge('s3:ObjectRemoved:Delete', 'prod/.lifeline-alarm/probe-1', 'attacker')).toBeNull();
    expect(judge('s3:ObjectRemoved:Delete', 'prod/smoke/obj', 'attacker')).toBeNull();
  });

  it('asks for the prior version only for writes to write-once objects', () => {
    const ev = (name: string, key: string): BucketEvent => ({ eventName: name, bucket: 'lifeline', key, principal: 'x', time: '2026-11-26T09:00:00.000Z', id: key });
    expect(needsPriorVersionCheck(ev('s3:ObjectCreated:Put', 'prod/tenants/acme/data/ab/abcd'), { kind: 'pack', tenant: 'acme' })).toBe(true);
    expect(needsPriorVersionCheck(ev('s3:ObjectCreated:Put', 'prod/tenants/acme/locks/l'), { kind: 'lock', tenant: 'acme' })).toBe(false);
    expect(needsPriorVersionCheck(ev('s3:ObjectRemoved:Delete', 'prod/tenants/acme/data/ab/abcd'), { kind: 'pack', tenant: 'acme' })).toBe(false);
    expect(needsPriorVersionCheck(ev('s3:ObjectCreated:Put', 'prod/x'), { kind: 'foreign' })).toBe(false);
  });

  it('an overwrite replaced a live version; a write after a delete marker did not', () => {
    expect(replacedLiveVersion([{ versionId: 'v2', deleteMarker: false }, { versionId: 'v1', deleteMarker: false }], 'v2')).toBe(true);
    expect(replacedLiveVersion([{ versionId: 'v3', deleteMarker: false }, { versionId: 'd1', deleteMarker: true }, { versionId: 'v1', deleteMarker: false }], 'v3')).toBe(false);
    expect(replacedLiveVersion([{ versionId: 'v1', deleteMarker: false }], 'v1')).toBe(false);
    expect(replacedLiveVersion([{ versionId: 'v1', deleteMarker: false }], 'other')).toBeUndefined();
    expect(replacedLiveVersion([], undefined)).toBeUndefined();
  });

  it('shortens principals so a full access key id never leaves the watcher', () => {
    expect(principalLabel('AKIAIOSFODNN7EXAMPLE', false)).toBe('AKIA…MPLE');
    expect(principalLabel('AKIAIOSFODNN7EXAMPLE', true)).toBe('lifeline-key:AKIA…MPLE');
    expect(principalLabel('root', false)).toBe('ro…');
    expect(principalLabel('', false)).toBe('unknown');
  });
});

describe('bursts', () => {
  const finding = (i: number, over: Partial<TamperFinding> = {}): TamperFinding => ({
    bucket: 'lifeline',
    key: `prod/tenants/acme/data/${String(i).padStart(4, '0')}`,
    kind: 'pack',
    tenant: 'acme',
    action: 'delete',
    principal: 'attacker-key-1234',
    own: false,
    time: new Date(Date.UTC(2026, 10, 26, 9, 0, 0, i)).toISOString(),
    ...over,
  });

  it('a mass delete of 1000 objects is one burst with the count, kinds, tenants and a bounded sample', () => {
    const c = new BurstCoalescer({ quietMs: 5000, maxMs: 60_000 });
    for (let i = 0; i < 1000; i++) c.add(finding(i, i === 999 ? { kind: 'snapshot', tenant: 'beta', key: 'prod/tenants/beta/snapshots/s' } : {}), 1000 + i);
    expect(c.due(1999 + 4999)).toEqual([]);
    const [b, ...rest] = c.due(1999 + 5000);
    expect(rest).toEqual([]);
    expect(b).toMatchObject({ bucket: 'lifeline', count: 1000, kinds: { pack: 999, snapshot: 1 }, actions: { delete: 1000 }, tenants: ['acme', 'beta'], principals: ['atta…1234'] });
    expect(b!.sampleKeys).toHaveLength(20);
    expect(b!.firstAt).toBe('2026-11-26T09:00:00.000Z');
    expect(b!.lastAt).toBe('2026-11-26T09:00:00.999Z');
    expect(c.pending).toBe(0);
    const ev = parseEvent(burstEvent(b!, 'lifeline-alarm'));
    expect(ev).toMatchObject({ type: 'storage-tamper', bucket: 'lifeline', count: 1000, actions: ['delete'], kinds: { pack: 999, snapshot: 1 } });
  });

  it('a quiet gap splits bursts; an endless trickle is still reported after maxMs; buckets are separate', () => {
    const c = new BurstCoalescer({ quietMs: 1000, maxMs: 10_000 });
    c.add(finding(1), 0);
    c.add(finding(2, { bucket: 'lifeline-audit', kind: 'audit' }), 0);
    expect(c.due(1000).map((b) => b.bucket).sort()).toEqual(['lifeline', 'lifeline-audit']);
    for (let t = 0; t <= 10_000; t += 500) c.add(finding(t), 2000 + t);
    expect(c.due(11_999)).toEqual([]);
    expect(c.due(12_000)).toHaveLength(1);
    c.add(finding(1), 20_000);
    expect(c.drain()).toHaveLength(1);
  });
});

describe('storage-tamper events and incidents', () => {
  const config = configFromObject(
    {
      storage: { bucket: 'lifeline', prefix: 'prod/' },
      tenants: { acme: { identity: { file: '/k/a.age' }, signingKey: { file: '/k/a.pem' } }, beta: { identity: { file: '/k/b.age' }, signingKey: { file: '/k/b.pem' } } },
      nodes: { gpu1: { root: '/data' } },
      assets: {
        llm: { node: 'gpu1', tenant: 'acme', kind: 'model', path: '/data/llm' },
        ckpt: { node: 'gpu1', tenant: 'acme', kind: 'checkpoint', path: '/data/ckpt' },
        other: { node: 'gpu1', tenant: 'beta', kind: 'dataset', path: '/data/other' },
      },
      alarm: { ownPrincipals: ['lifeline-retention'] },
    },
    { checkSecrets: false },
  );

  it('watches the repository and audit buckets and knows every tenant prefix and own principal', () => {
    expect(watchedBuckets(config)).toEqual([
      { bucket: 'lifeline', role: 'repository', prefix: 'prod/', probePrefix: 'prod/.lifeline-alarm/' },
      { bucket: 'lifeline-audit', role: 'audit', prefix: 'prod/audit/', probePrefix: 'prod/.lifeline-alarm/' },
    ]);
    expect(tenantPrefixes(config)).toEqual([
      { tenant: 'acme', prefix: 'prod/tenants/acme/' },
      { tenant: 'beta', prefix: 'prod/tenants/beta/' },
    ]);
    expect([...ownPrincipals(config, { credentials: { accessKeyId: 'lifeline-writer', secretAccessKey: 'x' } })].sort()).toEqual(['lifeline-retention', 'lifeline-writer']);
  });

  it('maps a burst to the affected tenants and all their assets; one incident per bucket', () => {
    const ev = parseEvent({ type: 'storage-tamper', bucket: 'lifeline', keys: ['prod/tenants/acme/data/ab/abcd', 'prod/tenants/acme/snapshots/5678'], actions: ['delete'], principals: ['ro…'] }) as IncidentEvent;
    const t = incidentTrigger(config, ev, 'lifeline-alarm', '2026-11-26T09:00:05.000Z');
    expect(t).toMatchObject({ type: 'storage-tamper', nodes: [], assets: ['ckpt', 'llm'], detectedAt: '2026-11-26T09:00:05.000Z' });
    expect(t.tamper).toEqual({
      bucket: 'lifeline',
      count: 2,
      kinds: { pack: 1, snapshot: 1 },
      actions: ['delete'],
      tenants: ['acme'],
      principals: ['ro…'],
      firstAt: '2026-11-26T09:00:05.000Z',
      lastAt: '2026-11-26T09:00:05.000Z',
      sampleKeys: ['prod/tenants/acme/data/ab/abcd', 'prod/tenants/acme/snapshots/5678'],
    });
    expect(incidentId(t)).toBe('incident-storage-tamper-lifeline');
    expect(defaultSeverity('storage-tamper')).toBe('critical');
    expect(plannedSteps(t)).toEqual(['restore']);
    const auditEv = parseEvent({ type: 'storage-tamper', bucket: 'lifeline-audit', keys: ['prod/audit/entries/00000001'], count: 3, actions: ['overwrite'] }) as IncidentEvent;
    expect(incidentTrigger(config, auditEv, 'x').tamper).toMatchObject({ count: 3, kinds: { audit: 1 }, tenants: [] });
  });

  it('refuses bad storage-tamper events field by field', () => {
    const problems = (raw: unknown) => {
      try {
        const ev = parseEvent(raw) as IncidentEvent;
        incidentTrigger(config, ev, 'x');
      } catch (err) {
        expect(err).toBeInstanceOf(EventValidationError);
        return (err as EventValidationError).issues;
      }
      throw new Error('accepted');
    };
    expect(problems({ type: 'storage-tamper', bucket: 'somebody-elses', keys: ['k'], actions: ['delete'] })).toEqual([{ field: 'bucket', problem: 'somebody-elses is not a Lifeline bucket (watched: lifeline, lifeline-audit)' }]);
    expect(problems({ type: 'storage-tamper', bucket: 'lifeline', keys: [], actions: ['delete'] })).toEqual([{ field: 'keys', problem: 'expected at least one object key' }]);
    expect(problems({ type: 'storage-tamper', bucket: 'lifeline', keys: ['k'], actions: ['explode'] })[0]).toMatchObject({ field: 'actions.0', problem: expect.stringContaining('expected one of delete, overwrite') });
    expect(problems({ type: 'storage-tamper', bucket: 'lifeline', keys: ['a', 'b'], count: 1, actions: ['delete'] })).toEqual([{ field: 'count', problem: 'expected at least as many objects as keys listed' }]);
    expect(problems({ type: 'storage-tamper', bucket: 'lifeline', actions: ['delete'] })).toEqual([{ field: 'keys', problem: 'required: a list of affected object keys' }]);
    expect(problems({ type: 'storage-tamper', bucket: 'lifeline', keys: ['k'], actions: ['delete'], kinds: { secrets: 1 } })).toEqual([{ field: 'kinds.secrets', problem: 'unknown field' }]);
  });

  it('builds the event from CLI options (lifeline incident open storage-tamper)', () => {
    const raw = eventFromOptions('storage-tamper', { bucket: 'lifeline', key: ['prod/tenants/acme/data/ab/abcd'], count: '40', action: ['delete'], principal: ['ro…'], taskQueue: 'q' });
    expect(parseEvent(raw)).toMatchObject({ type: 'storage-tamper', bucket: 'lifeline', count: 40, actions: ['delete'] });
    expect(() => parseEvent(eventFromOptions('storage-tamper', { bucket: 'lifeline', key: ['k'], count: 'many', action: ['delete'], taskQueue: 'q' }))).toThrow(/count: expected a whole number/);
  });
});
