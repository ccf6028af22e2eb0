/**
 * Events Lifeline reacts to, validated with zod. Every event has a `type`;
 * each type has its own strict schema, so adding a type (incident events are
 * next) means adding a schema here and a handler in dispatch.ts.
 *
 * A malformed event is rejected with one problem per field ("step: expected
 * …") and starts nothing.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { UserError } from '../config/errors';
import { KEY_KINDS, TAMPER_ACTIONS } from '../alarm/tamper';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const STEP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const STEP_MESSAGE = 'expected the training step: a non-negative integer or a short name (letters, digits, . _ -; at most 64)';

const required = (what: string) => (iss: { input: unknown }) => (iss.input === undefined ? `required: ${what}` : `expected ${what}`);

const Name = (what: string) => z.string({ error: required(`a ${what} name`) }).regex(NAME, `expected a ${what} name (letters, digits, . _ -; at most 63 characters)`);

export const CheckpointEventSchema = z
  .object({
    type: z.literal('checkpoint'),
    /** node the checkpoint was written on */
    node: Name('node'),
    /** absolute path of the checkpoint on that node (inside the asset's folder) */
    path: z
      .string({ error: required('the absolute path of the checkpoint on the node') })
      .min(1, 'expected the absolute path of the checkpoint on the node')
      .refine((p) => p.startsWith('/'), 'expected an absolute path (starting with /) on the node')
      .refine((p) => !p.includes('\0') && !p.split('/').includes('..'), 'expected a plain absolute path (no .. segments)')
      .transform((p) => posix.normalize(p).replace(/(.)\/+$/, '$1')),
    step: z
      .union([z.number().int(STEP_MESSAGE).nonnegative(STEP_MESSAGE), z.string().regex(STEP, STEP_MESSAGE)], {
        error: (iss) => (iss.input === undefined ? `required: ${STEP_MESSAGE.replace(/^expected /, '')}` : STEP_MESSAGE),
      })
      .transform((s) => String(s)),
    /** which asset; optional when the path lies inside exactly one asset of the node */
    asset: Name('asset').optional(),
  })
  .strict();

export type CheckpointEvent = z.output<typeof CheckpointEventSchema>;

const IsoTime = (what: string) =>
  z
    .string({ error: required(`${what} as an ISO time like 2026-11-26T08:00:00Z`) })
    .refine((t) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(t) && !Number.isNaN(Date.parse(t)), `expected ${what} as an ISO time with a zone, like 2026-11-26T08:00:00Z`)
    .transform((t) => new Date(t).toISOString());
const SNAPSHOT = /^[0-9a-f]{6,64}$/;
const Names = (what: string) => z.array(Name(what), { error: required(`a list of ${what} names`) }).min(1, `expected at least one ${what} name`).max(100, `at most 100 ${what} names`);
const Text = (what: string, max: number) => z.string({ error: required(what) }).trim().min(1, `expected ${what}`).max(max, `${what}: at most ${max} characters`);
export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;

/** A node stopped answering (its health check, or a person, says so). */
export const NodeLostEventSchema = z
  .object({
    type: z.literal('node-lost'),
    node: Name('node'),
    /** when the node was last known alive; default now */
    detectedAt: IsoTime('detectedAt').optional(),
  })
  .strict();

/** A verification found a corrupt snapshot (VerifyWorkflow raises this itself). */
export const IntegrityFailureIncidentEventSchema = z
  .object({
    type: z.literal('integrity-failure'),
    tenant: Name('tenant'),
    asset: Name('asset'),
    snapshot: z.string({ error: required('a snapshot id (hex)') }).regex(SNAPSHOT, 'expected a snapshot id (6–64 lowercase hex characters)'),
    /** storage key of the damaged object */
    object: z.string().min(1).max(1024, 'object: at most 1024 characters').optional(),
  })
  .strict();

/** Someone or something (an intrusion / inference-attack detector) believes nodes or assets are compromised since a time. */
export const SuspectedCompromiseEventSchema = z
  .object({
    type: z.literal('suspected-compromise'),
    nodes: Names('node').optional(),
    assets: Names('asset').optional(),
    compromisedAt: IsoTime('compromisedAt'),
    /** who reports it, e.g. `ids:falco` or a person */
    source: Text('the reporting source', 200),
    details: Text('details', 2000).optional(),
  })
  .strict()
  .refine((e) => (e.nodes?.length ?? 0) + (e.assets?.length ?? 0) > 0, { message: 'required: nodes or assets (what is suspected)', path: ['nodes'] });

/** An incident opened by a person. */
export const ManualIncidentEventSchema = z
  .object({
    type: z.literal('manual'),
    summary: Text('a summary', 500),
    nodes: Names('node').optional(),
    assets: Names('asset').optional(),
    severity: z.enum(SEVERITIES, { error: (iss) => (iss.input === undefined ? `required: one of ${SEVERITIES.join(', ')}` : `expected one of ${SEVERITIES.join(', ')}`) }),
  })
  .strict();

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const enumOf = (what: string, values: readonly string[]) => (iss: { input: unknown }) =>
  iss.input === undefined ? `required: ${what} (one of ${values.join(', ')})` : `expected one of ${values.join(', ')}`;

/**
 * Objects in a Lifeline bucket were deleted, overwritten or had their retention
 * changed by someone other than Lifeline (`lifeline alarm watch` on MinIO, or an
 * AWS EventBridge rule). One event per burst: `count` objects in all, `keys` a sample.
 */
export const StorageTamperEventSchema = z
  .object({
    type: z.literal('storage-tamper'),
    bucket: z.string({ error: required('the bucket name') }).regex(BUCKET, 'expected an S3 bucket name (3–63 chars: a-z 0-9 . -)'),
    /** affected object keys (a sample of at most 20: object ids, never file names) */
    keys: z
      .array(z.string().min(1, 'expected an object key').max(1024, 'at most 1024 characters'), { error: required('a list of affected object keys') })
      .min(1, 'expected at least one object key')
      .max(20, 'at most 20 keys (a sample; give the total as count)'),
    /** how many objects the burst touched in all; default the number of keys */
    count: z.number({ error: 'expected a whole number of objects' }).int('expected a whole number of objects').min(1, 'expected at least 1').max(1e9).optional(),
    actions: z.array(z.enum(TAMPER_ACTIONS, { error: enumOf('an action', TAMPER_ACTIONS) }), { error: required('a list of actions') }).min(1, 'expected at least one action'),
    /** objects per kind in the whole burst; default counted from keys */
    kinds: z.partialRecord(z.enum(KEY_KINDS, { error: enumOf('a key kind', KEY_KINDS) }), z.number().int().min(1)).optional(),
    /** who made the changes (shortened access key ids or principal ids) */
    principals: z.array(z.string().min(1).max(200, 'at most 200 characters')).max(20, 'at most 20 principals').optional(),
    firstAt: IsoTime('firstAt').optional(),
    lastAt: IsoTime('lastAt').optional(),
    /** who reports it, e.g. `lifeline-alarm` or `aws-eventbridge` */
    source: Text('the reporting source', 200).optional(),
  })
  .strict()
  .refine((e) => e.count === undefined || e.count >= e.keys.length, { message: 'expected at least as many objects as keys listed', path: ['count'] });

export type NodeLostEvent = z.output<typeof NodeLostEventSchema>;
export type IntegrityFailureIncidentEvent = z.output<typeof IntegrityFailureIncidentEventSchema>;
export type SuspectedCompromiseEvent = z.output<typeof SuspectedCompromiseEventSchema>;
export type ManualIncidentEvent = z.output<typeof ManualIncidentEventSchema>;
export type StorageTamperEvent = z.output<typeof StorageTamperEventSchema>;
export type IncidentEvent = NodeLostEvent | IntegrityFailureIncidentEvent | SuspectedCompromiseEvent | ManualIncidentEvent | StorageTamperEvent;
export const INCIDENT_EVENT_TYPES = ['node-lost', 'integrity-failure', 'suspected-compromise', 'manual', 'storage-tamper'] as const;

/** Every event type and its schema. */
export const EVENT_SCHEMAS = {
  checkpoint: CheckpointEventSchema,
  'node-lost': NodeLostEventSchema,
  'integrity-failure': IntegrityFailureIncidentEventSchema,
  'suspected-compromise': SuspectedCompromiseEventSchema,
  manual: ManualIncidentEventSchema,
  'storage-tamper': StorageTamperEventSchema,
} as const;

export type EventType = keyof typeof EVENT_SCHEMAS;
export type LifelineEvent = CheckpointEvent | IncidentEvent;

export interface EventIssue {
  /** dotted field path, e.g. `step` ('' for the event as a whole) */
  field: string;
  problem: string;
}

/** A rejected event: what is wrong, per field. */
export class EventValidationError extends UserError {
  override readonly name = 'EventValidationError';
  constructor(readonly issues: EventIssue[]) {
    super(`invalid event: ${issues.map((i) => (i.field ? `${i.field}: ${i.problem}` : i.problem)).join('; ')}`);
  }
}

function issuesOf(error: z.ZodError): EventIssue[] {
  return error.issues.map((iss) => {
    if (iss.code === 'unrecognized_keys') {
      const at = iss.path.length ? `${iss.path.join('.')}.` : '';
      return { field: iss.keys.map((k) => `${at}${k}`).join(', '), problem: `unknown field${iss.keys.length > 1 ? 's' : ''}` };
    }
    return { field: iss.path.join('.'), problem: iss.message };
  });
}

/** Validates an event of any known type; throws EventValidationError with every problem. */
export function parseEvent(raw: unknown): LifelineEvent {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new EventValidationError([{ field: '', problem: `expected a JSON object like {"type": "checkpoint", …}, got ${Array.isArray(raw) ? 'an array' : raw === null ? 'null' : typeof raw}` }]);
  }
  const type = (raw as { type?: unknown }).type;
  const known = Object.keys(EVENT_SCHEMAS);
  if (type === undefined) throw new EventValidationError([{ field: 'type', problem: `required: one of ${known.join(', ')}` }]);
  if (typeof type !== 'string' || !(type in EVENT_SCHEMAS)) {
    throw new EventValidationError([{ field: 'type', problem: `unknown event type ${JSON.stringify(type)} (known: ${known.join(', ')})` }]);
  }
  const parsed = EVENT_SCHEMAS[type as EventType].safeParse(raw);
  if (!parsed.success) throw new EventValidationError(issuesOf(parsed.error));
  return parsed.data;
}
