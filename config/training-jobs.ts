/**
 * The `trainingJobs` config section: training programs Lifeline starts on a
 * node (after a recovery), and how a job is told which checkpoint to resume
 * from. Plus the order in which a node's assets are restored when the node is
 * rebuilt: platform configuration first, then models and data sets, then
 * checkpoints.
 */
import { z } from 'zod';
import type { AssetConfig } from './platform';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const Name = (what: string) => z.string().regex(NAME, `expected a ${what} name (letters, digits, . _ -; at most 63 characters)`);

export const ResumeSchema = z.union([
  z.object({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name') }).strict(),
  z.object({ arg: z.string().regex(/^--?[A-Za-z0-9][A-Za-z0-9-]*$/, 'expected an option like --resume') }).strict(),
]);
export type ResumeSpec = z.infer<typeof ResumeSchema>;

export const TrainingJobSchema = z
  .object({
    /** Node the job runs on; must be declared under `nodes`. */
    node: Name('node'),
    /** argv of the job (no shell): e.g. ["node", "--import", "tsx", "trainer/train.ts", "--steps", "600"]. */
    command: z.array(z.string().min(1)).min(1, 'expected the job\'s argv, e.g. ["python", "train.py"]'),
    /** Working directory of the job; relative paths resolve against the Lifeline root. */
    workingDir: z.string().min(1).default('.'),
    /** Asset (kind checkpoint, on the job's node) holding the job's checkpoints. */
    checkpointAsset: Name('asset'),
    /** How the job learns the restored checkpoint's path: an environment variable or a command-line option. */
    resume: ResumeSchema.default({ env: 'LIFELINE_RESUME_CHECKPOINT' }),
    /**
     * The job's code (files or folders, relative to workingDir) whose SHA-256 the Model BOM records.
     * Default: the command's arguments that name existing files or folders.
     */
    code: z.array(z.string().min(1)).optional(),
  })
  .strict();

export type TrainingJobConfig = z.infer<typeof TrainingJobSchema>;

export const TrainingJobsSection = z.record(Name('training job'), TrainingJobSchema).default({});

/** References: a job's node is declared; its checkpoint asset is declared, of kind checkpoint and on the job's node. */
export function checkTrainingJobReferences(
  cfg: { nodes: Record<string, unknown>; assets: Record<string, AssetConfig>; trainingJobs: Record<string, TrainingJobConfig> },
  ctx: z.RefinementCtx,
): void {
  for (const [name, j] of Object.entries(cfg.trainingJobs)) {
    if (!(j.node in cfg.nodes)) {
      ctx.addIssue({ code: 'custom', path: ['trainingJobs', name, 'node'], message: `node ${JSON.stringify(j.node)} is not declared under nodes (declared: ${Object.keys(cfg.nodes).join(', ') || 'none'})` });
    }
    const a = cfg.assets[j.checkpointAsset];
    if (!a) {
      ctx.addIssue({ code: 'custom', path: ['trainingJobs', name, 'checkpointAsset'], message: `asset ${JSON.stringify(j.checkpointAsset)} is not declared under assets` });
    } else if (a.kind !== 'checkpoint') {
      ctx.addIssue({ code: 'custom', path: ['trainingJobs', name, 'checkpointAsset'], message: `asset ${j.checkpointAsset} is of kind ${a.kind}; expected an asset of kind checkpoint` });
    } else if (a.node !== j.node) {
      ctx.addIssue({ code: 'custom', path: ['trainingJobs', name, 'checkpointAsset'], message: `asset ${j.checkpointAsset} lives on node ${a.node}, but the job runs on node ${j.node}` });
    }
  }
}

/** Restore order of asset kinds when a node is rebuilt. */
export const RESTORE_STAGES = ['platform-config', 'models-and-datasets', 'checkpoints'] as const;
export type RestoreStage = (typeof RESTORE_STAGES)[number];

export function restoreStageOf(kind: AssetConfig['kind']): RestoreStage {
  if (kind === 'platform-config') return 'platform-config';
  if (kind === 'checkpoint') return 'checkpoints';
  return 'models-and-datasets';
}

export interface NodeRecoveryPlan {
  node: string;
  /** every asset of the node, in restore order (stage, then name) */
  assets: { asset: string; kind: AssetConfig['kind']; stage: RestoreStage }[];
  /** the training jobs of the node (name order) and the checkpoint asset each resumes from */
  jobs: { job: string; checkpointAsset: string }[];
}

/** What rebuilding `node` restores and restarts, derived from the assets and jobs declared on it. */
export function nodeRecoveryPlan(
  cfg: { nodes: Record<string, unknown>; assets: Record<string, AssetConfig>; trainingJobs: Record<string, TrainingJobConfig> },
  node: string,
): NodeRecoveryPlan {
  if (!(node in cfg.nodes)) throw new RangeError(`node ${JSON.stringify(node)} is not declared under nodes (declared: ${Object.keys(cfg.nodes).join(', ') || 'none'})`);
  const rank = (s: RestoreStage) => RESTORE_STAGES.indexOf(s);
  const assets = Object.entries(cfg.assets)
    .filter(([, a]) => a.node === node)
    .map(([asset, a]) => ({ asset, kind: a.kind, stage: restoreStageOf(a.kind) }))
    .sort((x, y) => rank(x.stage) - rank(y.stage) || (x.asset < y.asset ? -1 : x.asset > y.asset ? 1 : 0));
  const jobs = Object.entries(cfg.trainingJobs)
    .filter(([, j]) => j.node === node)
    .map(([job, j]) => ({ job, checkpointAsset: j.checkpointAsset }))
    .sort((x, y) => (x.job < y.job ? -1 : x.job > y.job ? 1 : 0));
  return { node, assets, jobs };
}
