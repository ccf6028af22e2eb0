/** The main job's sample platform: its generated config is valid, a staging installation on the same embedded stack, and the shipped drill scenario fits it. */
import { describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { DEMO, demoConfigObject, demoPaths } from '../../demo/platform';
import { loadScenario, scenarioProblems } from '../../drills/scenario';

const main = (over: Record<string, unknown> = {}) =>
  configFromObject({ devstack: { dataDir: '/srv/lifeline-data', temporal: { port: 17233, uiPort: 18233 }, minio: { port: 19000, consolePort: 19001 } }, ...over }, { source: '/etc/lifeline.yaml', checkSecrets: false });

describe('demo platform config', () => {
  it('is a valid staging config on the same embedded stack, with the node, its four assets, the training job and short schedules', () => {
    const paths = demoPaths('/srv/lifeline-data');
    const demo = configFromObject(demoConfigObject(main(), paths), { source: paths.configFile, checkSecrets: false });
    expect(paths.dir).toBe('/srv/lifeline-data/demo');
    expect(demo.incident).toMatchObject({ environment: 'staging', recovery: 'recover-node' });
    expect(demo.devstack).toMatchObject({ dataDir: '/srv/lifeline-data', temporal: { port: 17233, uiPort: 18233 }, minio: { port: 19000, consolePort: 19001 } });
    expect(demo.temporal.address).toBeUndefined();
    expect(demo.storage).toMatchObject({ bucket: DEMO.bucket });
    expect(demo.storage.endpoint).toBeUndefined();
    expect(Object.keys(demo.nodes)).toEqual([DEMO.node]);
    expect(Object.fromEntries(Object.entries(demo.assets).map(([k, a]) => [k, a.kind]))).toEqual({
      [DEMO.assets.platform]: 'platform-config',
      [DEMO.assets.model]: 'model',
      [DEMO.assets.dataset]: 'dataset',
      [DEMO.assets.checkpoints]: 'checkpoint',
    });
    expect(demo.trainingJobs[DEMO.job]).toMatchObject({ node: DEMO.node, checkpointAsset: DEMO.assets.checkpoints });
    expect(demo.policies.demo!.backup).toEqual({ every: '10s' });
    expect(demo.assets[DEMO.assets.checkpoints]!.policy).toBe('demo-checkpoints');
    expect(demo.policies['demo-checkpoints']!.verify.deep).toMatchObject({ every: '5s', samplePercent: 100 });
  });

  it('the shipped main-job scenario is valid and may run against it', async () => {
    const paths = demoPaths('/srv/lifeline-data');
    const demo = configFromObject(demoConfigObject(main(), paths), { source: paths.configFile, checkSecrets: false });
    const scenario = await loadScenario(DEMO.scenario);
    expect(scenario.faults.map((f) => f.kind).sort()).toEqual(['corrupt-object', 'destroy-node']);
    expect(scenarioProblems(scenario, demo)).toEqual([]);
  });

  it('refuses a config naming an external Temporal or store, naming the key', () => {
    const paths = demoPaths('/x');
    expect(() => demoConfigObject(main({ temporal: { address: 'temporal.example:7233' } }), paths)).toThrow(
      /lifeline demo runs on the embedded stack, but .* names an external Temporal \(temporal.address temporal.example:7233\)/,
    );
  });
});
