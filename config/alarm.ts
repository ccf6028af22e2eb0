/**
 * The `alarm` config section: the storage tamper alarm (`lifeline alarm
 * watch`) — which principals are Lifeline's own, and how bucket events are
 * coalesced into one incident per burst.
 */
import { z } from 'zod';
import { DurationSchema } from './platform';

export const AlarmSection = z
  .object({
    /**
     * Access key ids (MinIO user names; on AWS the principal ids of the roles) whose
     * deletes and writes are Lifeline's own, besides the access key of
     * `storage.credentials`, which always counts. Identifiers, not secrets.
     */
    ownPrincipals: z.array(z.string().min(1, 'expected an access key id').max(256, 'at most 256 characters')).default([]),
    /** events of one bucket closer together than this form one burst (one incident) */
    burstQuiet: DurationSchema.default('5s'),
    /** a burst that never goes quiet is still reported after this long */
    burstMax: DurationSchema.default('1m'),
  })
  .strict();

export type AlarmConfig = z.output<typeof AlarmSection>;
