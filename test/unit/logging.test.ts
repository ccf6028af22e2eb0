import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { generateX25519Identity } from 'age-encryption';
import { afterAll, describe, expect, it } from 'vitest';
import { readSecret } from '../../config/secrets';
import { SigningKey } from '../../engine/crypto/signing';
import { createBufferLogger, createLogger, registerSecret, REDACTED } from '../../logging/logger';
import { scrubString, scrubValue } from '../../logging/redact';
import { PinoTemporalLogger } from '../../logging/temporal';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-logging-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('logger', () => {
  it('writes JSON lines at the configured level', () => {
    const { logger, lines } = createBufferLogger({ level: 'info' });
    logger.debug('hidden');
    logger.info({ bucket: 'b' }, 'shown');
    const out = lines().map((l) => JSON.parse(l));
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ level: 30, msg: 'shown', bucket: 'b', name: 'lifeline' });
  });

  it('redacts secret-named fields at any depth', () => {
    const { logger, text } = createBufferLogger({ level: 'debug' });
    logger.info(
      {
        storage: { bucket: 'b', credentials: { accessKeyId: 'AKIAFIELD0001', secretAccessKey: 'field-secret-0001' } },
        deep: { a: { b: { c: { secretAccessKey: 'deep-secret-0002', password: 'deep-password-0003' } } } },
        req: { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIAHEADER/…, Signature=abcdef0123456789abcdef' } },
        tenant: { signingKey: 'signing-key-0004', identities: ['AGE-SECRET-KEY-1QQQQ'] },
      },
      'storage config',
    );
    const t = text();
    for (const s of ['AKIAFIELD0001', 'field-secret-0001', 'deep-secret-0002', 'deep-password-0003', 'AKIAHEADER', 'signing-key-0004', 'AGE-SECRET-KEY-1QQQQ']) {
      expect(t).not.toContain(s);
    }
    const line = JSON.parse(t);
    expect(line.storage.bucket).toBe('b');
    expect(line.storage.credentials).toBe(REDACTED);
    expect(line.deep.a.b.c).toEqual({ secretAccessKey: REDACTED, password: REDACTED });
    expect(line.req.headers.authorization).toBe(REDACTED);
  });

  it('scrubs registered secret values from messages, fields, errors and child bindings', () => {
    registerSecret('registered-secret-value-9f8e7d');
    const { logger, text } = createBufferLogger({ level: 'debug' });
    const child = logger.child({ url: 'http://user:registered-secret-value-9f8e7d@host/' });
    child.info('connecting with registered-secret-value-9f8e7d now');
    child.info({ note: ['x', { inner: 'prefix-registered-secret-value-9f8e7d-suffix' }] }, 'nested');
    const err = new Error('S3 said: bad key registered-secret-value-9f8e7d');
    child.error({ err }, 'failed');
    child.error(err);
    const t = text();
    expect(t).not.toContain('registered-secret-value-9f8e7d');
    expect(t.match(/\[REDACTED\]/g)!.length).toBeGreaterThanOrEqual(6);
    const failed = t.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.msg === 'failed');
    expect(failed.err.message).toBe('S3 said: bad key [REDACTED]');
    expect(failed.err.stack).toContain('S3 said: bad key [REDACTED]');
  });

  it('secrets read through config references are scrubbed from then on', () => {
    const f = join(dir, 'secret');
    writeFileSync(f, 'from-a-secret-file-5566\n');
    expect(scrubString('x from-a-secret-file-5566 y')).toBe('x from-a-secret-file-5566 y');
    expect(readSecret({ file: f }, { source: 'test', path: 'storage.credentials.secretAccessKey' })).toBe('from-a-secret-file-5566');
    expect(scrubString('x from-a-secret-file-5566 y')).toBe(`x ${REDACTED} y`);
  });

  it('scrubs secrets it has never seen by their shape', async () => {
    // A genuine identity made now (never registered), so the shape match is tested on a real key.
    const identity = await generateX25519Identity();
    expect(scrubString(`key ${identity} here`)).toBe(`key ${REDACTED} here`);
    expect(scrubString('pq AGE-SECRET-KEY-PQ-1ABCDEF234567')).toBe(`pq ${REDACTED}`);
    expect(scrubString('Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x')).toBe(`Authorization: Bearer ${REDACTED}`);
    expect(scrubString(SigningKey.generate().toPem().trim())).toBe(REDACTED);
    expect(scrubString('https://h/b/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=0123456789abcdef0123')).toBe(
      `https://h/b/k?${REDACTED}&${REDACTED}`,
    );
    expect(scrubString('nothing secret here')).toBe('nothing secret here');
  });

  it('scrubValue handles cycles, buffers and errors with causes', () => {
    registerSecret('cause-secret-000111');
    const o: Record<string, unknown> = { buf: Buffer.alloc(10) };
    o.self = o;
    o.err = new Error('outer', { cause: new Error('inner cause-secret-000111') });
    const v = scrubValue(o) as Record<string, any>;
    expect(v.self).toBe('[circular]');
    expect(v.buf).toBe('[10 bytes]');
    expect(v.err.cause.message).toBe(`inner ${REDACTED}`);
  });

  it('pretty format is human text and still scrubbed', () => {
    registerSecret('pretty-secret-424242');
    let out = '';
    const sink = new Writable({
      write(c, _e, cb) {
        out += String(c);
        cb();
      },
    });
    const logger = createLogger({ format: 'pretty', destination: sink, level: 'info' });
    logger.info({ token: 'tok-pretty-1', detail: 'uses pretty-secret-424242' }, 'hello pretty');
    expect(out).toContain('hello pretty');
    expect(() => JSON.parse(out)).toThrow();
    expect(out).not.toContain('pretty-secret-424242');
    expect(out).not.toContain('tok-pretty-1');
  });
});

describe('Temporal SDK logger adapter', () => {
  it('maps levels and keeps workflow/activity context as fields', () => {
    const { logger, lines } = createBufferLogger({ level: 'debug' });
    const t = new PinoTemporalLogger(logger);
    t.info('Activity completed', { sdkComponent: 'activity', workflowId: 'wf-1', runId: 'run-1', activityId: '1', activityType: 'smokeWrite', taskQueue: 'q' });
    t.warn('Workflow task failed', { sdkComponent: 'worker', workflowId: 'wf-1', error: new Error('boom') });
    t.trace('too verbose');
    const out = lines().map((l) => JSON.parse(l));
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({ level: 30, msg: 'Activity completed', workflowId: 'wf-1', runId: 'run-1', activityId: '1', activityType: 'smokeWrite' });
    expect(out[1]).toMatchObject({ level: 40, workflowId: 'wf-1', err: { type: 'Error', message: 'boom' } });
  });
});
