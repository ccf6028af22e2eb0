import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { configFromObject } from '../../config/load';
import { nodeRecoveryPlan } from '../../config/training-jobs';

const secret = { env: 'HOME' };
const base = {
  tenants: { t: { identity: secret, signingKey: secret } },
  nodes: { gpu1: { root: '/srv/gpu1' }, gpu2: { provider: 'local', root: '/srv/gpu2' } },
  assets: {
    ckpt: { node: 'gpu1', tenant: 't', kind: 'checkpoint', path: '/srv/gpu1/ckpt' },
    weights: { node: 'gpu1', tenant: 't', kind: 'model', path: '/srv/gpu1/model' },
    data: { node: 'gpu1', tenant: 't', kind: 'dataset', path: '/srv/gpu1/data' },
    cfg: { node: 'gpu1', tenant: 't', kind: 'platform-config', path: '/srv/gpu1/etc' },
    zcfg: { node: 'gpu1', tenant: 't', kind: 'platform-config', path: '/srv/gpu1/etc2' },
    other: { node: 'gpu2', tenant: 't', kind: 'checkpoint', path: '/srv/gpu2/ckpt' },
  },
};
const job = { node: 'gpu1', command: ['node', 'train.js'], checkpointAsset: 'ckpt' };

function load(extra: Record<string, unknown>) {
  return configFromObject({ ...base, ...extra }, { checkSecrets: false });
}
function error(extra: Record<string, unknown>): string {
  try {
    load(extra);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('trainingJobs config', () => {
  it('defaults: no jobs, local node provider, working dir the Lifeline root, resume through LIFELINE_RESUME_CHECKPOINT', () => {
    const c = load({ trainingJobs: { run1: job } });
    expect(c.nodes.gpu1).toEqual({ provider: 'local', root: '/srv/gpu1' });
    expect(c.trainingJobs.run1).toEqual({ ...job, workingDir: '.', resume: { env: 'LIFELINE_RESUME_CHECKPOINT' } });
    expect(configFromObject({}, { checkSecrets: false }).trainingJobs).toEqual({});
  });

  it('accepts resume as an option', () => {
    expect(load({ trainingJobs: { run1: { ...job, resume: { arg: '--resume' } } } }).trainingJobs.run1!.resume).toEqual({ arg: '--resume' });
  });

  it('refuses unknown nodes, missing or wrong-kind or foreign checkpoint assets, empty commands and bad resume specs', () => {
    expect(error({ trainingJobs: { run1: { ...job, node: 'gpu9' } } })).toMatch(/trainingJobs\.run1\.node: node "gpu9" is not declared/);
    expect(error({ trainingJobs: { run1: { ...job, checkpointAsset: 'nope' } } })).toMatch(/trainingJobs\.run1\.checkpointAsset: asset "nope" is not declared/);
    expect(error({ trainingJobs: { run1: { ...job, checkpointAsset: 'weights' } } })).toMatch(/kind model; expected an asset of kind checkpoint/);
    expect(error({ trainingJobs: { run1: { ...job, checkpointAsset: 'other' } } })).toMatch(/lives on node gpu2, but the job runs on node gpu1/);
    expect(error({ trainingJobs: { run1: { ...job, command: [] } } })).toMatch(/trainingJobs\.run1\.command/);
    expect(error({ trainingJobs: { run1: { ...job, resume: { env: 'A B' } } } })).toMatch(/trainingJobs\.run1\.resume/);
    expect(error({ trainingJobs: { run1: { ...job, extra: 1 } } })).toMatch(/trainingJobs\.run1/);
    expect(error({ nodes: { gpu1: { provider: 'ssh' } } })).toMatch(/nodes\.gpu1\.provider/);
  });

  it('plans a node recovery: platform config first, then models and data sets, then checkpoints', () => {
    const c = load({ trainingJobs: { run1: job } });
    expect(nodeRecoveryPlan(c, 'gpu1')).toEqual({
      node: 'gpu1',
      assets: [
        { asset: 'cfg', kind: 'platform-config', stage: 'platform-config' },
        { asset: 'zcfg', kind: 'platform-config', stage: 'platform-config' },
        { asset: 'data', kind: 'dataset', stage: 'models-and-datasets' },
        { asset: 'weights', kind: 'model', stage: 'models-and-datasets' },
        { asset: 'ckpt', kind: 'checkpoint', stage: 'checkpoints' },
      ],
      jobs: [{ job: 'run1', checkpointAsset: 'ckpt' }],
    });
    expect(nodeRecoveryPlan(c, 'gpu2')).toEqual({ node: 'gpu2', assets: [{ asset: 'other', kind: 'checkpoint', stage: 'checkpoints' }], jobs: [] });
    expect(() => nodeRecoveryPlan(c, 'gpu9')).toThrow(/not declared/);
  });
});
