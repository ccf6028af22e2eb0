/**
 * The "training node" rig of the node-recovery and incident tests: a node
 * whose folder holds a platform config, a model, a data set and checkpoints
 * (assets platform/weights/spiral/ckpt), a training job `train` running the
 * fixture trainer on it, an orchestrator worker in this process and the node
 * agent as a child process (so a test can SIGKILL it), and the teardown that
 * leaves no process, folder or bucket behind.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { Client, Connection } from '@temporalio/client';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { LocalNodeProvider } from '../../nodes/local';
import { tenantLocation } from '../../tenancy/repositories';
import { stopTrainingJob } from '../../training/jobs';
import { connect, makeEnv, removeEnv, spawnNodeAgent, startWorker, type ChildAgent, type LifelineEnv, type RunningWorker } from './lifeline-env';
import { testS3Client } from './services';

const run = promisify(execFile);

/** The assets of a training node, in the order they are declared. */
export const TRAINING_ASSETS = ['platform', 'weights', 'spiral', 'ckpt'] as const;

export interface TrainerOptions {
  steps: number;
  checkpointEvery: number;
  /** checkpoints kept by the trainer (default 3) */
  keep?: number;
  /** a pause per step, so the run lasts long enough to be interrupted */
  stepDelayMs?: number;
}

/** Node arguments of trainer/train.ts (run from LIFELINE_ROOT). */
export function trainerArgs(ckptDir: string, dataDir: string, t: TrainerOptions): string[] {
  return [
    '--import', 'tsx', 'trainer/train.ts', '--steps', String(t.steps), '--checkpoint-dir', ckptDir, '--checkpoint-every', String(t.checkpointEvery), '--keep', String(t.keep ?? 3), '--data', dataDir,
    ...(t.stepDelayMs === undefined ? [] : ['--step-delay-ms', String(t.stepDelayMs)]),
  ];
}

/** Rewrites env's YAML config through `edit` and reloads it: the env returned carries the edited config for in-process workers too. */
export async function editConfig(env: LifelineEnv, edit: (raw: Record<string, any>) => void): Promise<LifelineEnv> {
  const raw = parse(await readFile(env.configFile, 'utf8')) as Record<string, any>;
  edit(raw);
  await writeFile(env.configFile, stringify(raw), { mode: 0o600 });
  return { ...env, config: loadConfig({ configPath: env.configFile, env: {} }) };
}

export interface TrainingNodeOptions {
  trainer: TrainerOptions;
  /** config `incident` section, when the test runs incidents */
  incident?: Record<string, unknown>;
  /** the model folder; default <nodeRoot>/model (a path outside the node's root survives its loss) */
  modelPath?: string;
}

/**
 * An env whose node has root `nodeRoot` with etc/model/data/ckpt folders declared as assets
 * platform/weights/spiral/ckpt (checkpoints complete by rename), the job `train` running the
 * fixture trainer on them, and `incident` settings if given. The folders are filled: a platform
 * config, a model README and the spiral data set.
 */
export async function makeTrainingNodeEnv(label: string, nodeRoot: string, opts: TrainingNodeOptions): Promise<LifelineEnv> {
  const modelPath = opts.modelPath ?? join(nodeRoot, 'model');
  const ckpt = join(nodeRoot, 'ckpt');
  const data = join(nodeRoot, 'data');
  for (const d of [join(nodeRoot, 'etc'), modelPath, data, ckpt]) await mkdir(d, { recursive: true });
  const env = await makeEnv(label, {
    assets: {
      platform: { kind: 'platform-config', path: join(nodeRoot, 'etc') },
      weights: { kind: 'model', path: modelPath },
      spiral: { kind: 'dataset', path: data },
      ckpt: { kind: 'checkpoint', path: ckpt, checkpoint: { completion: 'rename' } },
    },
  });
  try {
    const edited = await editConfig(env, (raw) => {
      raw.nodes[env.node].root = nodeRoot;
      raw.trainingJobs = { train: { node: env.node, command: [process.execPath, ...trainerArgs(ckpt, data, opts.trainer)], workingDir: LIFELINE_ROOT, checkpointAsset: 'ckpt' } };
      if (opts.incident) raw.incident = opts.incident;
    });
    await writeFile(join(nodeRoot, 'etc', 'platform.json'), JSON.stringify({ scheduler: 'local', gpus: 0 }));
    await writeFile(join(modelPath, 'README.txt'), 'spiral MLP 2-32-32-3\n');
    await run(process.execPath, ['--import', 'tsx', 'trainer/make-dataset.ts', '--out', data], { cwd: LIFELINE_ROOT });
    return edited;
  } catch (err) {
    await removeEnv(env);
    throw err;
  }
}

/** Runs the trainer uninterrupted (checkpoints into `ckptDir`) and returns the SHA-256 of its final weights. */
export async function referenceWeights(dataDir: string, ckptDir: string, t: TrainerOptions): Promise<string> {
  const ref = await run(process.execPath, trainerArgs(ckptDir, dataDir, { ...t, stepDelayMs: undefined }), { cwd: LIFELINE_ROOT, maxBuffer: 1 << 24 });
  const done = ref.stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; weightsSha256?: string }).find((e) => e.event === 'done');
  if (!done?.weightsSha256) throw new Error(`the reference training run reported no final weights:\n${ref.stdout.slice(-2000)}`);
  return done.weightsSha256;
}

/** The running parts of a node test: a Temporal client, the orchestrator worker in this process, the node agent as a child process. */
export interface NodeRig {
  client: Client;
  connection: Connection;
  orchestrator: RunningWorker;
  /** undefined once the test has killed it */
  agent: ChildAgent | undefined;
}

/** Connects to env's Temporal and starts the orchestrator (in process) and the node agent (child process); stops what it started if a part fails. */
export async function startNodeRig(env: LifelineEnv): Promise<NodeRig> {
  const { client, connection } = await connect(env);
  let orchestrator: RunningWorker | undefined;
  try {
    orchestrator = await startWorker(env, 'orchestrator');
    return { client, connection, orchestrator, agent: await spawnNodeAgent(env) };
  } catch (err) {
    await orchestrator?.stop();
    await connection.close();
    throw err;
  }
}

/**
 * Leaves nothing of a node test behind: its training jobs and the node agent the local provider
 * started (a recovery does) are stopped, the rig's agent killed, the orchestrator stopped, the
 * connection closed, `base` and the env removed. Any part may be missing (setup failed half way).
 */
export async function tearDownNode(parts: { env?: LifelineEnv; rig?: Partial<NodeRig>; base?: string }): Promise<void> {
  const { env, rig, base } = parts;
  if (env) {
    for (const job of Object.keys(env.config.trainingJobs ?? {})) await stopTrainingJob(env.config, job, 2000).catch(() => undefined);
    await new LocalNodeProvider(env.config).stopAgent(env.node).catch(() => undefined);
  }
  await rig?.agent?.kill().catch(() => undefined);
  await rig?.orchestrator?.stop();
  await rig?.connection?.close();
  if (base) await rm(base, { recursive: true, force: true });
  await removeEnv(env);
}

/** Processes whose command line names the node (its agent) or the node's folder (its trainer). */
export function processesOf(node: string, nodeRoot: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8');
      if (cmd.includes(node) || cmd.includes(nodeRoot)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Keys of the pack objects (data/) of env's tenant repository, to tell which packs a backup added. */
export async function dataKeys(env: LifelineEnv): Promise<Set<string>> {
  const prefix = `${tenantLocation(env.config, env.tenant, env.config.storage).prefix}data/`;
  const keys = new Set<string>();
  let token: string | undefined;
  do {
    const page = await testS3Client().send(new ListObjectsV2Command({ Bucket: env.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.add(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}
