/**
 * The sample AI platform of the main job (`lifeline demo`): one node with a
 * platform configuration, a model, a data set and the fixture training job
 * (trainer/), all under `<devstack.dataDir>/demo/`, with its own config file
 * (a staging installation on the same embedded Temporal and MinIO, its own
 * bucket, tenant and short schedules). Plain domain code (no Temporal).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { UserError } from '../config/errors';
import { loadConfig, type LoadedConfig } from '../config/load';
import { LIFELINE_ROOT } from '../config/root';
import { stackSettings } from '../devstack/layout';

const run = promisify(execFile);

export const DEMO = {
  tenant: 'demo',
  node: 'demo-gpu-1',
  job: 'demo-train',
  bucket: 'lifeline-demo',
  assets: { platform: 'demo-platform', model: 'demo-model', dataset: 'demo-dataset', checkpoints: 'demo-checkpoints' },
  scenario: join(LIFELINE_ROOT, 'drills', 'scenarios', 'main-job.yaml'),
} as const;

export interface DemoPaths {
  dir: string;
  configFile: string;
  keysDir: string;
  nodeRoot: string;
  etc: string;
  model: string;
  data: string;
  ckpt: string;
}

export function demoPaths(dataDir: string): DemoPaths {
  const dir = join(dataDir, 'demo');
  const nodeRoot = join(dir, 'node', DEMO.node);
  return {
    dir,
    configFile: join(dir, 'lifeline.yaml'),
    keysDir: join(dir, 'keys'),
    nodeRoot,
    etc: join(nodeRoot, 'etc'),
    model: join(nodeRoot, 'model'),
    data: join(nodeRoot, 'data'),
    ckpt: join(nodeRoot, 'checkpoints'),
  };
}

/** Timing of the demo: short enough for a few minutes, long enough for a 2-core machine under load. */
export const DEMO_TIMING = {
  backupEvery: '10s',
  verifyEvery: '10s',
  deepVerifyEvery: '5s',
  // A checkpoint every ~10 s, none pruned during the demo: a backup never sees a checkpoint vanish mid-read.
  checkpointEvery: 100,
  stepDelayMs: 100,
  keepCheckpoints: 30,
  /** the job runs until the demo stops it */
  steps: 1_000_000,
  nodeProbeEvery: '1s',
  nodeLostAfter: '6s',
};

/**
 * The demo installation's config: the embedded stack of `main` (same data
 * folder, host and ports, so the same Temporal and MinIO), a bucket of its
 * own, `incident.environment: staging` and recovery by `recover-node`.
 */
export function demoConfigObject(main: LoadedConfig, paths: DemoPaths): Record<string, unknown> {
  if (main.temporal.address || main.storage.endpoint) {
    throw new UserError(
      `lifeline demo runs on the embedded stack, but ${main.source.file ?? 'the config'} names an external ${main.temporal.address ? `Temporal (temporal.address ${main.temporal.address})` : `store (storage.endpoint ${main.storage.endpoint})`}; run it without that config`,
    );
  }
  const s = stackSettings(main);
  const asset = (kind: string, path: string, extra: Record<string, unknown> = {}) => ({ node: DEMO.node, tenant: DEMO.tenant, kind, path, policy: 'demo', ...extra });
  return {
    temporal: { namespace: main.temporal.namespace },
    devstack: {
      dataDir: s.dataDir,
      host: s.host,
      temporal: { port: s.temporal.port, uiPort: s.temporal.uiPort, ui: s.temporal.ui },
      minio: { port: s.minio.port, consolePort: s.minio.consolePort },
    },
    storage: { bucket: DEMO.bucket },
    logging: { level: main.logging.level, format: 'json' },
    tenants: {
      [DEMO.tenant]: { identity: { file: join(paths.keysDir, `${DEMO.tenant}.age`) }, signingKey: { file: join(paths.keysDir, `${DEMO.tenant}.pem`) } },
    },
    nodes: { [DEMO.node]: { provider: 'local', root: paths.nodeRoot, description: 'the demo GPU node (a local folder)' } },
    assets: {
      [DEMO.assets.platform]: asset('platform-config', paths.etc),
      [DEMO.assets.model]: asset('model', paths.model),
      [DEMO.assets.dataset]: asset('dataset', paths.data),
      [DEMO.assets.checkpoints]: asset('checkpoint', paths.ckpt, { checkpoint: { completion: 'rename' }, policy: 'demo-checkpoints' }),
    },
    policies: {
      demo: {
        backup: { every: DEMO_TIMING.backupEvery },
        verify: { shallow: { every: DEMO_TIMING.verifyEvery } },
      },
      // Checkpoints are also read back in full often: a corrupted checkpoint is found (and quarantined) before a recovery picks it.
      'demo-checkpoints': {
        backup: { every: DEMO_TIMING.backupEvery },
        verify: { shallow: { every: DEMO_TIMING.verifyEvery }, deep: { every: DEMO_TIMING.deepVerifyEvery, samplePercent: 100 } },
      },
    },
    trainingJobs: {
      [DEMO.job]: {
        node: DEMO.node,
        command: [
          process.execPath,
          '--import',
          'tsx',
          'trainer/train.ts',
          '--steps',
          String(DEMO_TIMING.steps),
          '--checkpoint-dir',
          paths.ckpt,
          '--checkpoint-every',
          String(DEMO_TIMING.checkpointEvery),
          '--keep',
          String(DEMO_TIMING.keepCheckpoints),
          '--data',
          paths.data,
          '--step-delay-ms',
          String(DEMO_TIMING.stepDelayMs),
        ],
        workingDir: LIFELINE_ROOT,
        checkpointAsset: DEMO.assets.checkpoints,
      },
    },
    incident: {
      environment: 'staging',
      recovery: 'recover-node',
      approvalTimeout: '10m',
      nodeProbeEvery: DEMO_TIMING.nodeProbeEvery,
      nodeLostAfter: DEMO_TIMING.nodeLostAfter,
    },
  };
}

/** Writes the demo config file (owner-only: it names key files) and loads it. */
export async function writeDemoConfig(main: LoadedConfig, paths: DemoPaths): Promise<LoadedConfig> {
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await mkdir(paths.keysDir, { recursive: true, mode: 0o700 });
  const header = '# Written by `lifeline demo` on every run: the sample platform of the main job. Edits are overwritten.\n';
  await writeFile(paths.configFile, header + stringify(demoConfigObject(main, paths)), { mode: 0o600 });
  return loadConfig({ configPath: paths.configFile, env: {} });
}

/** Deterministic bytes, so every demo run backs up the same model. */
function pseudoRandom(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, block = 0; i < n; block++) {
    const h = createHash('sha256').update(`${seed}:${block}`).digest();
    i += h.copy(out, i);
  }
  return out;
}

/**
 * A fresh node folder: platform configuration, a model, the spiral data set
 * (trainer/make-dataset.ts) and an empty checkpoint folder. A previous run's
 * folder is removed first.
 */
export async function seedDemoNode(paths: DemoPaths): Promise<{ files: number }> {
  await rm(paths.nodeRoot, { recursive: true, force: true });
  for (const d of [paths.etc, paths.model, paths.data, paths.ckpt]) await mkdir(d, { recursive: true });
  await writeFile(join(paths.etc, 'platform.json'), JSON.stringify({ scheduler: 'local', gpus: 0, node: DEMO.node, jobs: [DEMO.job] }, null, 2) + '\n');
  await writeFile(join(paths.etc, 'trainer.env'), 'OMP_NUM_THREADS=1\nLOG_LEVEL=info\n');
  await writeFile(join(paths.model, 'config.json'), JSON.stringify({ architecture: 'mlp', layers: [2, 32, 32, 3], task: 'spiral classification' }, null, 2) + '\n');
  await writeFile(join(paths.model, 'base-weights.bin'), pseudoRandom('lifeline-demo-model', 512 * 1024));
  await run(process.execPath, ['--import', 'tsx', 'trainer/make-dataset.ts', '--out', paths.data], { cwd: LIFELINE_ROOT });
  return { files: 5 };
}
