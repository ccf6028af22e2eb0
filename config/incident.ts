/**
 * The `incident` config section: who hears about incidents (webhooks, with
 * headers given as secret references), how long a destructive step waits for
 * approval, and the policies that may skip the wait (staging only).
 */
import { z } from 'zod';
import { DurationSchema } from './platform';
import { SecretRefSchema } from './secret-ref';

export const ENVIRONMENTS = ['production', 'staging', 'development'] as const;
export const RECOVERY_MODES = ['manual', 'recover-node'] as const;

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;

export const WebhookSchema = z
  .object({
    /** http(s) URL the incident notices are POSTed to */
    url: z
      .string()
      .refine((u) => {
        try {
          const p = new URL(u).protocol;
          return p === 'http:' || p === 'https:';
        } catch {
          return false;
        }
      }, 'expected an http(s) URL')
      .refine((u) => {
        try {
          const x = new URL(u);
          return !x.username && !x.password;
        } catch {
          return true;
        }
      }, 'credentials in the URL are not allowed; put them in headers as secret references'),
    /** header name → secret reference (e.g. an Authorization token); the values never enter Temporal */
    headers: z.record(z.string().regex(HEADER_NAME, 'expected an HTTP header name'), SecretRefSchema).default({}),
  })
  .strict();

export const IncidentSection = z
  .object({
    /** which installation this is: auto-approval is allowed only in staging */
    environment: z.enum(ENVIRONMENTS).default('production'),
    webhooks: z.array(WebhookSchema).default([]),
    /** how long a destructive step waits for approval before the incident expires (and is escalated) */
    approvalTimeout: DurationSchema.default('4h'),
    /** approve destructive steps without waiting (only with environment: staging) */
    autoApprove: z.boolean().default(false),
    /** how often a node's health workflow probes its node agent */
    nodeProbeEvery: DurationSchema.default('30s'),
    /** a node whose agent leaves a probe unanswered this long is lost (a node-lost incident opens) */
    nodeLostAfter: DurationSchema.default('2m'),
    /** what an approved rebuild-node does: `manual` = the incident records the approval and people rebuild; `recover-node` = RecoverNodeWorkflow runs as a child */
    recovery: z.enum(RECOVERY_MODES).default('manual'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.autoApprove && s.environment !== 'staging') {
      ctx.addIssue({ code: 'custom', path: ['autoApprove'], message: `true is only allowed with incident.environment: staging (this is ${s.environment})` });
    }
  });

export type IncidentConfig = z.output<typeof IncidentSection>;
