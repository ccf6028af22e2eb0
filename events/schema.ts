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

/** Every event type and its schema. */
export const EVENT_SCHEMAS = {
  checkpoint: CheckpointEventSchema,
} as const;

export type EventType = keyof typeof EVENT_SCHEMAS;
export type LifelineEvent = CheckpointEvent;

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
    if (iss.code === 'unrecognized_keys') return { field: iss.keys.join(', '), problem: `unknown field${iss.keys.length > 1 ? 's' : ''}` };
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
