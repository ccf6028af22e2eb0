import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromObject } from '../../config/load';
import { LocalNodeProvider, localNodeRoot, nodeProvider } from '../../nodes/local';
import { groupAlive, readProcessRecord, recordAlive, startRecordedProcess, stopRecordedProcess } from '../../nodes/processes';
import { NodeConfigError, NodeNotEmptyError } from '../../nodes/provider';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-nodes-test-'));
const started: { pid: number }[] = [];
afterAll(() => {
  for (const p of started) {
    try {
      process.kill(-p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const config = configFromObject(
  { devstack: { dataDir: join(dir, 'data') }, nodes: { n1: { root: join(dir, 'n1') }, bare: {} } },
  { checkSecrets: false },
);

describe('local node provider: provision and teardown', () => {
  it('builds a fresh root, is idempotent for the same provisioning, refuses a root with foreign data and tears down only its own', async () => {
    const p = new LocalNodeProvider(config);
    const root = localNodeRoot(config, 'n1');
    expect(await p.provision('n1', 'rec-1')).toEqual({ node: 'n1', root, provisionId: 'rec-1', created: true });
    writeFileSync(join(root, 'restored.txt'), 'x');
    expect(await p.provision('n1', 'rec-1')).toMatchObject({ created: false });
    await expect(p.provision('n1', 'rec-2')).rejects.toBeInstanceOf(NodeNotEmptyError);
    expect(await p.teardown('n1', 'rec-2')).toEqual({ node: 'n1', removed: false });
    expect(existsSync(join(root, 'restored.txt'))).toBe(true);
    expect(await p.teardown('n1', 'rec-1')).toEqual({ node: 'n1', removed: true });
    expect(existsSync(root)).toBe(false);
    expect(await p.teardown('n1', 'rec-1')).toEqual({ node: 'n1', removed: false });
    // an empty existing root is taken
    mkdirSync(root);
    expect(await p.provision('n1', 'rec-3')).toMatchObject({ created: true });
    expect(await p.teardown('n1', 'rec-3')).toMatchObject({ removed: true });
  });

  it('says what is missing: an undeclared node, a node without root, an agent without a config file', async () => {
    expect(() => nodeProvider(config, 'nope')).toThrow(NodeConfigError);
    await expect(new LocalNodeProvider(config).provision('bare', 'x')).rejects.toThrow(/nodes\.bare\.root/);
    await expect(new LocalNodeProvider(config).startAgent('n1')).rejects.toThrow(/not loaded from a file/);
    expect(await new LocalNodeProvider(config).isAgentUp('n1')).toEqual({ node: 'n1', up: false });
    expect(await new LocalNodeProvider(config).stopAgent('n1')).toEqual({ node: 'n1', up: false, stopped: 'not-running' });
  });
});

describe('recorded processes', () => {
  it('stops the whole group: SIGTERM first, SIGKILL for what ignores it', async () => {
    // a shell that ignores SIGTERM, with a child that ignores it too
    const rec = await startRecordedProcess({
      argv: ['bash', '-c', "trap '' TERM; (trap '' TERM; sleep 300) & echo ready; sleep 300"],
      cwd: dir,
      env: process.env,
      logFile: join(dir, 'p1.log'),
      recordFile: join(dir, 'p1.json'),
      info: { what: 'test' },
    });
    started.push(rec);
    for (let i = 0; i < 200 && !readFileSync(join(dir, 'p1.log'), 'utf8').includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(readProcessRecord(join(dir, 'p1.json'))).toEqual(rec);
    expect(recordAlive(rec)).toBe(true);
    expect(await stopRecordedProcess(rec, 500)).toBe('killed');
    expect(groupAlive(rec)).toBe(false);
    expect(await stopRecordedProcess(rec, 500)).toBe('not-running');
  });

  it('a process that exits on SIGTERM is terminated; a reused pid with another start time is not ours', async () => {
    const rec = await startRecordedProcess({ argv: ['sleep', '300'], cwd: dir, env: process.env, logFile: join(dir, 'p2.log'), recordFile: join(dir, 'p2.json'), info: {} });
    started.push(rec);
    expect(recordAlive({ ...rec, startTicks: '1' })).toBe(false);
    expect(await stopRecordedProcess(rec, 10_000)).toBe('terminated');
    expect(recordAlive(rec)).toBe(false);
  });

  it('a program that cannot be executed is refused', async () => {
    await expect(
      startRecordedProcess({ argv: [join(dir, 'no-such-program')], cwd: dir, env: process.env, logFile: join(dir, 'p3.log'), recordFile: join(dir, 'p3.json'), info: {} }),
    ).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir)).not.toContain('p3.json');
  });
});
