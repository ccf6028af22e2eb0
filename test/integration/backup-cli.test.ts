/**
 * `lifeline backup run` and `lifeline restore` as a user runs them (the real
 * bin/lifeline, a config file), against workers running in this process.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeTree, makeAsset } from '../support/engine-fixtures';
import { parseJson, runCli } from '../support/cli';
import { connect, makeEnv, removeEnv, startWorker, type LifelineEnv, type RunningWorker } from '../support/lifeline-env';
import { uniqueTaskQueue } from '../support/services';

let env: LifelineEnv;
const workers: RunningWorker[] = [];

beforeAll(async () => {
  env = await makeEnv('cli', { assets: { model: { kind: 'model' } } });
  await makeAsset(env.assetPath('model'), { smallFiles: 10, largeFileBytes: 3 * 1024 * 1024 });
  workers.push(await startWorker(env, 'orchestrator'), await startWorker(env, 'node-agent'));
}, 300_000);

afterAll(async () => {
  for (const w of workers) await w.stop();
  await removeEnv(env);
});

const cli = (args: string[]) => runCli(['--config', env.configFile, ...args], { timeoutMs: 300_000 });

describe('lifeline backup run / restore', () => {
  let snapshotId: string;

  it('backup run --wait prints the workflow id, a progress line and the snapshot', async () => {
    const r = await cli(['backup', 'run', 'model', '--wait', '--task-queue', env.taskQueue, '--label', 'run=cli-test']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^backup of model started: workflow backup-model-\d{8}T\d{6}Z-[0-9a-f]{6}$/m);
    const m = /^snapshot ([0-9a-f]{64})$/m.exec(r.stdout);
    expect(m, r.stdout).not.toBeNull();
    snapshotId = m![1]!;
    expect(r.stdout).toMatch(/15 files, 5 folders, 1 symlinks/);
    // The progress bar (non-terminal: plain lines) went to stderr.
    expect(r.stderr).toMatch(/\|\s*\d+% .* files \| .*\/s \| ETA/);
  });

  it('backup run --json (no wait) returns the workflow id; --wait --json returns the result', async () => {
    const started = parseJson(await cli(['backup', 'run', 'model', '--json', '--task-queue', env.taskQueue]));
    expect(started.workflowId).toMatch(/^backup-model-/);
    expect(started.runId).toMatch(/^[0-9a-f-]{36}$/);
    expect(started.warnings).toEqual([]);
    const r = await cli(['backup', 'run', 'model', '--wait', '--json', '--task-queue', env.taskQueue]);
    expect(r.code, r.stderr).toBe(0);
    const out = parseJson(r);
    expect(out.result).toMatchObject({ asset: 'model', trigger: 'manual', stats: { files: 15 } });
    expect(out.result.parentId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('restore --snapshot <prefix> --wait restores byte-identical', async () => {
    const target = join(env.dir, 'restored');
    const r = await cli(['restore', 'model', '--target', target, '--snapshot', snapshotId.slice(0, 12), '--wait', '--json', '--task-queue', env.taskQueue]);
    expect(r.code, r.stderr).toBe(0);
    expect(parseJson(r).result).toMatchObject({ snapshotId, files: 15, verified: true, target });
    expect(await describeTree(target)).toEqual(await describeTree(env.assetPath('model')));
  });

  it('warns when no worker polls the queues the backup needs (and still starts it)', async () => {
    const queue = uniqueTaskQueue('cli-no-worker');
    const r = await cli(['backup', 'run', 'model', '--task-queue', queue]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`lifeline: warning: no orchestrator worker polls ${queue} (start one: lifeline worker --role orchestrator)`);
    expect(r.stderr).not.toContain('no node agent polls'); // this test's node agent runs
    const id = /workflow (backup-model-\S+)/.exec(r.stdout)![1]!;
    const { client, connection } = await connect(env);
    try {
      await client.workflow.getHandle(id).terminate('test done');
    } finally {
      await connection.close();
    }
  });

  it('user mistakes: one line on stderr, non-zero exit, nothing started', async () => {
    const cases = [
      { args: ['backup', 'run', 'nope'], says: /^lifeline: unknown asset "nope" \(declared: model\)$/ },
      { args: ['restore', 'model', '--target', '/tmp/x', '--snapshot', 'xyz'], says: /^lifeline: --snapshot expects a snapshot id or a unique prefix/ },
      { args: ['restore', 'model', '--target', '/tmp/x', '--snapshot', 'abcdef', '--from', 'latest'], says: /^lifeline: give either --snapshot or --from, not both$/ },
      { args: ['restore', 'model', '--target', '/tmp/x', '--node', 'elsewhere'], says: /^lifeline: unknown node "elsewhere"/ },
      // commander's own message, plus its usage hint
      { args: ['restore', 'model'], says: /required option '--target <dir>' not specified/, lines: 2 },
    ];
    for (const c of cases) {
      const r = await cli([...c.args, '--task-queue', env.taskQueue]);
      expect(r.code, c.args.join(' ')).not.toBe(0);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(c.lines ?? 1);
      expect(lines[0]).toMatch(c.says);
      expect(r.stdout).toBe('');
    }
  });

  it('a restore that fails says why (non-empty target), exit code 1', async () => {
    const target = join(env.dir, 'busy');
    await makeAsset(target, { smallFiles: 1 });
    await writeFile(join(target, 'mine.txt'), 'keep');
    const r = await cli(['restore', 'model', '--target', target, '--wait', '--task-queue', env.taskQueue]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/restore target .*busy on node .* is not empty .*--overwrite/);
  });
});
