import { describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { checkpointAsset } from '../../events/dispatch';
import { EventValidationError, parseEvent, type CheckpointEvent } from '../../events/schema';

function issues(raw: unknown): Array<{ field: string; problem: string }> {
  try {
    parseEvent(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(EventValidationError);
    return (err as EventValidationError).issues;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

describe('event schema', () => {
  it('accepts a checkpoint event; numeric and named steps become strings; the path is normalised', () => {
    expect(parseEvent({ type: 'checkpoint', node: 'gpu-1', path: '/data/ckpt//step-7/', step: 7 })).toEqual({ type: 'checkpoint', node: 'gpu-1', path: '/data/ckpt/step-7', step: '7' });
    expect(parseEvent({ type: 'checkpoint', node: 'gpu-1', path: '/d', step: 'epoch-3.final', asset: 'llm' })).toMatchObject({ step: 'epoch-3.final', asset: 'llm' });
  });

  it('names every bad field and its problem', () => {
    expect(issues({ type: 'checkpoint', path: 'rel/dir', step: -1, extra: true })).toEqual([
      { field: 'node', problem: 'required: a node name' },
      { field: 'path', problem: 'expected an absolute path (starting with /) on the node' },
      { field: 'step', problem: expect.stringContaining('expected the training step') },
      { field: 'extra', problem: 'unknown field' },
    ]);
    expect(issues({ type: 'checkpoint', node: 'bad node!', path: '/a/../b', step: 1.5 })).toEqual([
      { field: 'node', problem: expect.stringContaining('expected a node name') },
      { field: 'path', problem: 'expected a plain absolute path (no .. segments)' },
      { field: 'step', problem: expect.stringContaining('expected the training step') },
    ]);
  });

  it('rejects unknown types and non-objects, listing the known types', () => {
    expect(issues({ type: 'incident' })).toEqual([{ field: 'type', problem: 'unknown event type "incident" (known: checkpoint, node-lost, integrity-failure, suspected-compromise, manual, storage-tamper)' }]);
    expect(issues({})).toEqual([{ field: 'type', problem: 'required: one of checkpoint, node-lost, integrity-failure, suspected-compromise, manual, storage-tamper' }]);
    expect(issues('checkpoint')[0]!.problem).toMatch(/expected a JSON object/);
    expect(issues(null)[0]!.problem).toMatch(/got null/);
  });

  it('the error message is one line with every problem', () => {
    expect(() => parseEvent({ type: 'checkpoint', node: 'n', path: '/p' })).toThrow(/^invalid event: step: required: the training step/);
  });
});

describe('which asset a checkpoint event is about', () => {
  const secret = { env: 'HOME' };
  const config = configFromObject(
    {
      tenants: { t: { identity: secret, signingKey: secret } },
      nodes: { gpu1: {}, gpu2: {} },
      assets: {
        runs: { node: 'gpu1', tenant: 't', kind: 'checkpoint', path: '/data/runs' },
        llm: { node: 'gpu1', tenant: 't', kind: 'checkpoint', path: '/data/runs/llm' },
        other: { node: 'gpu2', tenant: 't', kind: 'checkpoint', path: '/data/runs' },
      },
    },
    { checkSecrets: false },
  );
  const ev = (x: object) => parseEvent({ type: 'checkpoint', step: 1, ...x }) as CheckpointEvent;
  const problem = (x: object) => {
    try {
      checkpointAsset(config, ev(x));
    } catch (err) {
      return (err as EventValidationError).issues[0];
    }
    return undefined;
  };

  it('finds the most specific asset of the node that contains the path', () => {
    expect(checkpointAsset(config, ev({ node: 'gpu1', path: '/data/runs/llm/step-9' }))).toBe('llm');
    expect(checkpointAsset(config, ev({ node: 'gpu1', path: '/data/runs/vit/step-2' }))).toBe('runs');
    expect(checkpointAsset(config, ev({ node: 'gpu2', path: '/data/runs/llm' }))).toBe('other');
    expect(checkpointAsset(config, ev({ node: 'gpu1', path: '/data/runs/x', asset: 'runs' }))).toBe('runs');
  });

  it('says which field is wrong when no asset fits', () => {
    expect(problem({ node: 'gpu3', path: '/data/runs' })).toEqual({ field: 'node', problem: 'unknown node "gpu3" (declared: gpu1, gpu2)' });
    expect(problem({ node: 'gpu1', path: '/srv/x' })).toEqual({ field: 'path', problem: expect.stringContaining('no asset on node gpu1 contains /srv/x') });
    expect(problem({ node: 'gpu2', path: '/data/runs', asset: 'llm' })).toEqual({ field: 'node', problem: 'asset llm lives on node gpu1, not gpu2' });
    expect(problem({ node: 'gpu1', path: '/data/runs/vit', asset: 'llm' })).toEqual({ field: 'path', problem: '/data/runs/vit is not inside asset llm (/data/runs/llm)' });
    expect(problem({ node: 'gpu1', path: '/data/runs', asset: 'zzz' })).toEqual({ field: 'asset', problem: expect.stringContaining('unknown asset "zzz"') });
  });
});
