/**
 * The platform Lifeline protects: tenants (keys and storage prefix), nodes
 * (where data lives and a node agent runs), assets (what is backed up, from
 * which node, for which tenant, under which policy) and policies (when to
 * back up, verify and prune).
 */
import { z } from 'zod';
import { SecretRefSchema } from './secret-ref';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const Name = (what: string) => z.string().regex(NAME, `expected a ${what} name (letters, digits, . _ -; at most 63 characters)`);

/** Durations as `90s`, `15m`, `1h`, `7d` (also `500ms`). */
export const DURATION = /^(\d+)(ms|s|m|h|d)$/;
export const DurationSchema = z.string().regex(DURATION, 'expected a duration like 30s, 15m, 1h or 7d');

export function durationMs(d: string): number {
  const m = DURATION.exec(d);
  if (!m) throw new RangeError(`not a duration: ${d}`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

/** A schedule: a fixed interval or a cron expression (5 fields, UTC). */
export const ScheduleSpecSchema = z.union([
  z.object({ every: DurationSchema, offset: DurationSchema.optional() }).strict(),
  z
    .object({
      cron: z
        .string()
        .regex(/^(\S+\s+){4}\S+$/, 'expected a 5-field cron expression like "0 * * * *"'),
    })
    .strict(),
]);
export type ScheduleSpec = z.infer<typeof ScheduleSpecSchema>;

export const TenantSchema = z
  .object({
    /** age identity file(s) of the tenant: decrypts its data. Never inline. */
    identity: SecretRefSchema,
    /** Ed25519 private key (PKCS#8 PEM) that signs the tenant's manifests. */
    signingKey: SecretRefSchema,
    /** Storage prefix of the tenant's repository inside storage.bucket; default `tenants/<name>/`. */
    prefix: z.string().optional(),
  })
  .strict();

export const NODE_PROVIDERS = ['local'] as const;

export const NodeSchema = z
  .object({
    /** How the node is provisioned and its node agent started when it is rebuilt (`local`: a folder on this machine). */
    provider: z.enum(NODE_PROVIDERS).default('local'),
    /** Folder the node's data lives under (used by the local node provider). */
    root: z.string().optional(),
    description: z.string().optional(),
  })
  .strict();

export const CHECKPOINT_COMPLETIONS = ['marker', 'rename', 'event'] as const;

/** CycloneDX 1.6 `modelCard.modelParameters.approach.type` values. */
export const MODEL_APPROACHES = ['supervised', 'unsupervised', 'reinforcement-learning', 'semi-supervised', 'self-supervised'] as const;

/**
 * Model assets only: where the model came from, recorded in the Model BOM of
 * every snapshot (README "Model BOM"). Only names of other assets and jobs —
 * their snapshots and hashes are looked up when the BOM is made.
 */
export const ModelBomSchema = z
  .object({
    /** dataset assets the model was trained or evaluated on */
    datasets: z.array(Name('asset')).default([]),
    /** checkpoint asset whose snapshots form the model's checkpoint chain */
    checkpoints: Name('asset').optional(),
    /** platform-config asset the model was built with */
    platformConfig: Name('asset').optional(),
    /** training job (under trainingJobs) that produced the model: its command and code hash */
    trainingJob: Name('training job').optional(),
    /** model card fields (CycloneDX modelCard) */
    card: z
      .object({
        version: z.string().min(1).optional(),
        description: z.string().min(1).optional(),
        license: z.string().min(1).optional(),
        approach: z.enum(MODEL_APPROACHES).optional(),
        task: z.string().min(1).optional(),
        architectureFamily: z.string().min(1).optional(),
        modelArchitecture: z.string().min(1).optional(),
        inputs: z.array(z.string().min(1)).default([]),
        outputs: z.array(z.string().min(1)).default([]),
        useCases: z.array(z.string().min(1)).default([]),
        limitations: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type ModelBomConfig = z.infer<typeof ModelBomSchema>;

export const AssetSchema = z
  .object({
    node: Name('node'),
    tenant: Name('tenant'),
    kind: z.enum(['model', 'dataset', 'checkpoint', 'platform-config']),
    /** Folder (or file) on the node; relative paths resolve against the Lifeline root. */
    path: z.string().min(1),
    policy: Name('policy').default('default'),
    labels: z.record(z.string(), z.string()).default({}),
    /**
     * How a trainer signals that a checkpoint is complete:
     *  marker — a file named `marker` appears once the checkpoint is written;
     *  rename — checkpoints are written under a temporary name and renamed into place
     *           (entries matching `temporaryPattern` are never backed up);
     *  event  — `lifeline event checkpoint` (or POST /events) says so.
     */
    checkpoint: z
      .object({
        completion: z.enum(CHECKPOINT_COMPLETIONS).default('event'),
        marker: z.string().min(1).default('COMPLETE'),
        temporaryPattern: z.string().default('^\\.|\\.tmp$|\\.partial$'),
      })
      .strict()
      .optional(),
    /** model assets only: the sources recorded in each snapshot's Model BOM */
    bom: ModelBomSchema.optional(),
  })
  .strict();

export const PolicySchema = z
  .object({
    /** Scheduled backups; without it the asset is backed up on events and on demand only. */
    backup: ScheduleSpecSchema.optional(),
    verify: z
      .object({
        shallow: ScheduleSpecSchema.optional(),
        deep: z.intersection(ScheduleSpecSchema, z.object({ samplePercent: z.number().min(0).max(100).default(10) })).optional(),
      })
      .strict()
      .default({}),
    retention: z
      .object({
        keepLast: z.number().int().nonnegative().optional(),
        keepHourly: z.number().int().nonnegative().optional(),
        keepDaily: z.number().int().nonnegative().optional(),
        keepWeekly: z.number().int().nonnegative().optional(),
        keepMonthly: z.number().int().nonnegative().optional(),
        schedule: ScheduleSpecSchema.optional(),
        /** Condemned data is deleted only after this long (two-phase collection, FORMAT.md). */
        gcGrace: DurationSchema.default('1h'),
      })
      .strict()
      .default({ gcGrace: '1h' }),
    /** What a scheduled run does while the previous one still runs. */
    overlap: z.enum(['skip', 'buffer-one']).default('skip'),
    /** Runs missed while Temporal was down are caught up within this window. */
    catchupWindow: DurationSchema.default('1h'),
  })
  .strict();

export type TenantConfig = z.infer<typeof TenantSchema>;
export type NodeConfig = z.infer<typeof NodeSchema>;
export type AssetConfig = z.infer<typeof AssetSchema>;
export type PolicyConfig = z.infer<typeof PolicySchema>;

export const TenantsSection = z.record(Name('tenant'), TenantSchema).default({});
export const NodesSection = z.record(Name('node'), NodeSchema).default({});
export const AssetsSection = z.record(Name('asset'), AssetSchema).default({});
export const PoliciesSection = z.record(Name('policy'), PolicySchema).default({});

/** References between sections: every asset names a declared node, tenant and policy. */
export function checkPlatformReferences(
  cfg: { tenants: Record<string, unknown>; nodes: Record<string, unknown>; assets: Record<string, AssetConfig>; policies: Record<string, unknown>; trainingJobs?: Record<string, unknown> },
  ctx: z.RefinementCtx,
): void {
  for (const [name, a] of Object.entries(cfg.assets)) {
    if (!(a.node in cfg.nodes)) {
      ctx.addIssue({ code: 'custom', path: ['assets', name, 'node'], message: `node ${JSON.stringify(a.node)} is not declared under nodes (declared: ${Object.keys(cfg.nodes).join(', ') || 'none'})` });
    }
    if (!(a.tenant in cfg.tenants)) {
      ctx.addIssue({ code: 'custom', path: ['assets', name, 'tenant'], message: `tenant ${JSON.stringify(a.tenant)} is not declared under tenants (declared: ${Object.keys(cfg.tenants).join(', ') || 'none'})` });
    }
    if (a.policy !== 'default' && !(a.policy in cfg.policies)) {
      ctx.addIssue({ code: 'custom', path: ['assets', name, 'policy'], message: `policy ${JSON.stringify(a.policy)} is not declared under policies` });
    }
    if (a.checkpoint && a.kind !== 'checkpoint') {
      ctx.addIssue({ code: 'custom', path: ['assets', name, 'checkpoint'], message: 'only allowed for assets of kind checkpoint' });
    }
    if (a.bom) checkBomReferences(cfg, name, a, a.bom, ctx);
  }
}

/** A model's BOM sources must be declared, of the right kind and the model's own tenant (no cross-tenant reads). */
function checkBomReferences(
  cfg: { assets: Record<string, AssetConfig>; trainingJobs?: Record<string, unknown> },
  name: string,
  model: AssetConfig,
  bom: ModelBomConfig,
  ctx: z.RefinementCtx,
): void {
  const at = ['assets', name, 'bom'];
  if (model.kind !== 'model') {
    ctx.addIssue({ code: 'custom', path: at, message: `only allowed for assets of kind model (this one is ${model.kind})` });
    return;
  }
  const ref = (asset: string, kind: AssetConfig['kind'], path: Array<string | number>) => {
    const a = cfg.assets[asset];
    if (!a) ctx.addIssue({ code: 'custom', path: [...at, ...path], message: `asset ${JSON.stringify(asset)} is not declared under assets` });
    else if (a.kind !== kind) ctx.addIssue({ code: 'custom', path: [...at, ...path], message: `asset ${asset} is of kind ${a.kind}; expected an asset of kind ${kind}` });
    else if (a.tenant !== model.tenant) {
      ctx.addIssue({ code: 'custom', path: [...at, ...path], message: `asset ${asset} belongs to tenant ${a.tenant}, but model ${name} to tenant ${model.tenant}: a BOM only references its own tenant's snapshots` });
    }
  };
  bom.datasets.forEach((d, i) => ref(d, 'dataset', ['datasets', i]));
  if (bom.checkpoints) ref(bom.checkpoints, 'checkpoint', ['checkpoints']);
  if (bom.platformConfig) ref(bom.platformConfig, 'platform-config', ['platformConfig']);
  if (bom.trainingJob && cfg.trainingJobs && !(bom.trainingJob in cfg.trainingJobs)) {
    ctx.addIssue({ code: 'custom', path: [...at, 'trainingJob'], message: `training job ${JSON.stringify(bom.trainingJob)} is not declared under trainingJobs` });
  }
}

/** The policy an asset uses; `default` is built in (no schedules, keep everything). */
export function policyOf(policies: Record<string, PolicyConfig>, name: string): PolicyConfig {
  return policies[name] ?? PolicySchema.parse({});
}
