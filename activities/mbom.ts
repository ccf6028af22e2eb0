/**
 * Model BOM activities: thin adapters over mbom/. On the orchestrator: which
 * training job (and node) a model's BOM needs a code hash from, and making the
 * BOM (idempotent: a valid stored BOM is kept). On the training job's node:
 * hashing the job's code. Inputs and results are names, ids, hashes and counts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { LIFELINE_ROOT, resolveFromRoot } from '../config/root';
import { generateModelBom, type GenerateResult } from '../mbom/bom';
import { trainingCodeDigest } from '../mbom/code';
import type { ActivityDeps } from './index';
import { FailureTypes, toFailure } from './failures';
import { nodeContext } from './node-context';

/** Lifeline's version, recorded as the BOM's tool. */
const LIFELINE_VERSION: string = (JSON.parse(readFileSync(join(LIFELINE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

export interface ModelBomPlan {
  tenant: string;
  /** the training job whose code is hashed, and the node it runs on (where the code is) */
  job?: { name: string; node: string };
}

export interface TrainingCodeHash {
  job: string;
  sha256: string;
  files: number;
}

export interface WriteModelBomInput {
  asset: string;
  snapshotId: string;
  code?: TrainingCodeHash;
}

export function createMbomActivities(deps: ActivityDeps) {
  const nc = nodeContext(deps);
  return {
    /** Orchestrator: what the BOM of this model asset needs besides the repository. */
    async modelBomPlan(input: { asset: string }): Promise<ModelBomPlan> {
      const asset = nc.asset(input.asset, 'plan the Model BOM');
      const jobName = deps.config.assets[asset.name]?.bom?.trainingJob;
      if (!jobName) return { tenant: asset.tenant };
      const job = deps.config.trainingJobs[jobName];
      if (!job) throw ApplicationFailure.nonRetryable(`assets.${asset.name}.bom.trainingJob: training job ${jobName} is not declared under trainingJobs`, FailureTypes.Config);
      return { tenant: asset.tenant, job: { name: jobName, node: job.node } };
    },

    /** Node: SHA-256 of the training job's code files (they live on the job's node). */
    async trainingCodeHash(input: { job: string }): Promise<TrainingCodeHash> {
      const job = deps.config.trainingJobs[input.job];
      if (!job) throw ApplicationFailure.nonRetryable(`training job ${input.job} is not declared under trainingJobs`, FailureTypes.Config);
      const here = nc.nodeId('hash the training code');
      if (job.node !== here) {
        throw ApplicationFailure.nonRetryable(`training job ${input.job} runs on node ${job.node}, but this node agent is node ${here}: the node agents' configs disagree about trainingJobs.${input.job}.node`, FailureTypes.Config);
      }
      try {
        const d = await trainingCodeDigest(input.job, job, resolveFromRoot(job.workingDir, deps.config.source.root));
        return { job: input.job, sha256: d.sha256, files: d.files };
      } catch (err) {
        throw toFailure(err, { asset: `training job ${input.job}`, node: here, op: 'hash the training code' });
      }
    },

    /** Orchestrator: make, validate, sign and store the BOM of a model snapshot (keeps a valid one already stored). */
    async writeModelBom(input: WriteModelBomInput): Promise<GenerateResult> {
      const asset = nc.asset(input.asset, 'make the Model BOM');
      const ctx = { asset: asset.name, tenant: asset.tenant, op: 'make the Model BOM' };
      const bom = deps.config.assets[asset.name]?.bom;
      const activity = Context.current();
      const hb = setInterval(() => activity.heartbeat(), 5000);
      try {
        const repo = await nc.repositories.repository(asset.tenant);
        await repo.loadIndex();
        const job = bom?.trainingJob ? deps.config.trainingJobs[bom.trainingJob] : undefined;
        const r = await generateModelBom(repo, {
          snapshotId: input.snapshotId,
          tenant: asset.tenant,
          sources: { datasets: bom?.datasets ?? [], checkpoints: bom?.checkpoints, platformConfig: bom?.platformConfig },
          card: bom?.card ?? { inputs: [], outputs: [], useCases: [], limitations: [] },
          training: input.code && job ? { job: input.code.job, command: job.command, sha256: input.code.sha256, files: input.code.files } : undefined,
          by: activity.info.workflowExecution?.workflowId ?? 'lifeline',
          toolVersion: LIFELINE_VERSION,
        });
        deps.logger.info({ asset: asset.name, snapshotId: input.snapshotId, created: r.created, files: r.files, components: r.components }, 'model BOM stored');
        return r;
      } catch (err) {
        throw toFailure(err, ctx);
      } finally {
        clearInterval(hb);
      }
    },
  };
}

export type MbomActivities = ReturnType<typeof createMbomActivities>;
