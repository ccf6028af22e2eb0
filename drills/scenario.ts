/**
 * Drill scenarios: a YAML file that says which environment a drill runs in,
 * which faults to inject when (and for how long), and what the recovery must
 * achieve (objectives). Validated completely before anything is injected: an
 * unknown fault kind, a bad duration or a reference to an undeclared node, job
 * or asset is an error naming the scenario file and the path inside it.
 *
 * Plain domain code (no Temporal).
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { UserError } from '../config/errors';
import type { LoadedConfig } from '../config/load';
import { DurationSchema } from '../config/platform';
import { networkFaultProblem, storageOutageProblem, type StorageFaultConfig } from './faults/storage-problems';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const Name = (what: string) => z.string().regex(NAME, `expected a ${what} name (letters, digits, . _ -; at most 63 characters)`);
/** Sizes as `512KiB`, `1MiB`, `10MB` — used for bandwidth per second. */
export const BYTE_SIZE = /^(\d+)(B|KB|KiB|MB|MiB|GB|GiB)$/;
const ByteRate = z.string().regex(BYTE_SIZE, 'expected a rate per second like 512KiB or 1MiB');

export function byteSize(s: string): number {
  const m = BYTE_SIZE.exec(s);
  if (!m) throw new RangeError(`not a size: ${s}`);
  const unit = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1 << 20, GB: 1e9, GiB: 1 << 30 }[m[2] as 'B'];
  return Number(m[1]) * unit;
}

/** When a fault is injected, relative to the drill's start (after the preconditions hold). */
const At = DurationSchema.default('0s');

/** Every fault kind a scenario may name. Each is injected and reverted by Lifeline itself. */
export const FAULT_KINDS = [
  'kill-training-job',
  'kill-node-agent',
  'destroy-node',
  'corrupt-object',
  'delete-object',
  'storage-outage',
  'network',
  'crash-orchestrator',
  'ransomware',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Which stored object of an asset's snapshot a storage fault hits. */
const ObjectTarget = z
  .object({
    asset: Name('asset'),
    /** newest: the asset's newest snapshot; or a snapshot id (prefix) */
    snapshot: z.string().min(1).default('newest'),
    /** which object: one of the snapshot's packs (default), its manifest, or an index object listing its packs */
    object: z.enum(['pack', 'manifest', 'index']).default('pack'),
  })
  .strict();

export const FaultSpecSchema = z.discriminatedUnion(
  'kind',
  [
    z.object({ kind: z.literal('kill-training-job'), at: At, job: Name('training job') }).strict(),
    z.object({ kind: z.literal('kill-node-agent'), at: At, node: Name('node') }).strict(),
    /** kill the node's agent and jobs and remove the node's folder */
    z.object({ kind: z.literal('destroy-node'), at: At, node: Name('node') }).strict(),
    z.object({ kind: z.literal('corrupt-object'), at: At, target: ObjectTarget }).strict(),
    z.object({ kind: z.literal('delete-object'), at: At, target: ObjectTarget }).strict(),
    /** storage answers nothing for `duration` (the embedded MinIO is stopped, then started again) */
    z.object({ kind: z.literal('storage-outage'), at: At, duration: DurationSchema }).strict(),
    /**
     * A fault-injecting TCP proxy in front of S3 for `node`'s agent (or every
     * Lifeline worker when no node is given) for `duration`: added latency per
     * read, a bandwidth cap, and connection resets.
     */
    z
      .object({
        kind: z.literal('network'),
        at: At,
        duration: DurationSchema,
        node: Name('node').optional(),
        latency: DurationSchema.optional(),
        bandwidth: ByteRate.optional(),
        /** probability (0–1) that a connection is reset after its first bytes */
        resetProbability: z.number().min(0).max(1).optional(),
        /** cut: every connection is refused for the duration */
        cut: z.boolean().default(false),
      })
      .strict()
      .refine((f) => f.cut || f.latency !== undefined || f.bandwidth !== undefined || f.resetProbability !== undefined, {
        message: 'a network fault needs at least one of latency, bandwidth, resetProbability or cut: true',
      }),
    /** SIGKILL the orchestrator worker once recovery has started (or at `at` when there is no recovery), and start it again after `restartAfter` */
    z
      .object({ kind: z.literal('crash-orchestrator'), at: At, during: z.enum(['recovery', 'any']).default('recovery'), restartAfter: DurationSchema.default('5s') })
      .strict(),
    /** overwrite every file of the node's assets (or the named ones) with random bytes, as ransomware would */
    z.object({ kind: z.literal('ransomware'), at: At, node: Name('node'), assets: z.array(Name('asset')).min(1).optional() }).strict(),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? `unknown fault kind; expected one of: ${FAULT_KINDS.join(', ')}` : undefined) },
);
export type FaultSpec = z.infer<typeof FaultSpecSchema>;

/** What the drill must show besides RTO and RPO. */
export const EXPECTATIONS = [
  /** the training job runs again and passes the step it resumed from */
  'training-resumes',
  /** every restored asset came from a verified snapshot */
  'restored-from-verified',
  /** every restored asset came from a snapshot taken before the first fault */
  'restored-from-before-fault',
  /** an incident was opened for the fault */
  'incident-opened',
  /** backups and verifications keep working once the fault is reverted */
  'backups-continue',
] as const;
export type Expectation = (typeof EXPECTATIONS)[number];

export const ScenarioSchema = z
  .object({
    name: Name('scenario'),
    description: z.string().max(2000).optional(),
    /** must be `staging`, and must match the config's incident.environment: drills never run elsewhere */
    environment: z.literal('staging', { error: 'drills run only in staging: set environment: staging (and incident.environment: staging in the config)' }),
    /** the node the drill is about (its assets and jobs are checked and measured) */
    node: Name('node'),
    preconditions: z
      .object({
        /** each of the node's assets needs a verified snapshot at most this old */
        verifiedWithin: DurationSchema.default('24h'),
      })
      .strict()
      .prefault({}),
    /** how the drill answers incident approvals: auto (the drill approves as actor drill:<id>) or wait for an operator */
    approval: z.enum(['auto', 'operator']).default('auto'),
    faults: z.array(FaultSpecSchema).min(1, 'a drill needs at least one fault'),
    objectives: z
      .object({
        /** recovery time objective: first fault → training resumed (or service back) */
        rto: DurationSchema,
        /** recovery point objective: data-loss window (restored snapshot time → failure) */
        rpo: DurationSchema.optional(),
        expect: z.array(z.enum(EXPECTATIONS)).default([]),
      })
      .strict(),
    /** the drill is aborted (faults reverted, verdict fail) when it has not finished after this long */
    timeout: DurationSchema.default('30m'),
  })
  .strict();
export type Scenario = z.infer<typeof ScenarioSchema>;

/** A scenario that is invalid: names the file and each problem's path. */
export class ScenarioError extends UserError {
  override name = 'ScenarioError';
}

function formatPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('') || '(top level)';
}

/** Parses and validates scenario text; `source` names it in errors. */
export function parseScenario(text: string, source: string): Scenario {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) throw new ScenarioError(`${source}: not valid YAML: ${doc.errors[0]!.message}`);
  const r = ScenarioSchema.safeParse(doc.toJS());
  if (!r.success) {
    const lines = r.error.issues.map((i) => `  ${formatPath(i.path)}: ${i.message}`);
    throw new ScenarioError(`${source}: invalid drill scenario:\n${lines.join('\n')}`);
  }
  return r.data;
}

export async function loadScenario(file: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ScenarioError(`cannot read drill scenario ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseScenario(text, file);
}

/**
 * Checks the scenario against the config: the environment is staging, and
 * every node, job and asset it names is declared. Returns the problems (empty
 * when it may run).
 */
export function scenarioProblems(s: Scenario, config: Pick<LoadedConfig, 'incident' | 'nodes' | 'assets' | 'trainingJobs'> & StorageFaultConfig): string[] {
  const problems: string[] = [];
  if (config.incident.environment !== 'staging') {
    problems.push(`this installation is incident.environment: ${config.incident.environment}; drills run only where it is staging`);
  }
  const node = (n: string, where: string) => {
    if (!(n in config.nodes)) problems.push(`${where}: node ${JSON.stringify(n)} is not declared under nodes`);
  };
  const asset = (a: string, where: string) => {
    if (!(a in config.assets)) problems.push(`${where}: asset ${JSON.stringify(a)} is not declared under assets`);
  };
  node(s.node, 'node');
  s.faults.forEach((f, i) => {
    const where = `faults[${i}] (${f.kind})`;
    if ('node' in f && f.node) node(f.node, where);
    if (f.kind === 'kill-training-job' && !(f.job in config.trainingJobs)) problems.push(`${where}: training job ${JSON.stringify(f.job)} is not declared under trainingJobs`);
    if (f.kind === 'corrupt-object' || f.kind === 'delete-object') asset(f.target.asset, where);
    if (f.kind === 'ransomware') for (const a of f.assets ?? []) asset(a, where);
    if (f.kind === 'storage-outage') {
      const p = storageOutageProblem(config);
      if (p) problems.push(`${where}: ${p}`);
    }
    if (f.kind === 'network') {
      const p = networkFaultProblem(config);
      if (p) problems.push(`${where}: ${p}`);
    }
  });
  return problems;
}
