/**
 * The `local` node provider: the node is a folder on this machine
 * (`nodes.<id>.root`) and its node agent a process started here
 * (`bin/lifeline --config <file> worker --role node-agent --node <id>`),
 * detached, with a pid record and a log file under
 * `<devstack.dataDir>/nodes/<id>/`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { resolveAsset } from '../backups/asset';
import type { LoadedConfig } from '../config/load';
import { LIFELINE_ROOT, resolveFromRoot } from '../config/root';
import { readProcessRecord, recordAlive, removeProcessRecord, startRecordedProcess, stopRecordedProcess, writeJsonAtomic, groupAlive } from './processes';
import { NodeConfigError, NodeNotEmptyError, type AgentState, type NodeProvider, type ProvisionResult } from './provider';

export interface LocalProviderOptions {
  /** config file the agent loads; default the file `config` was loaded from */
  configFile?: string;
  /** environment of the agent; default this process's */
  env?: NodeJS.ProcessEnv;
  /** SIGTERM → SIGKILL grace when stopping the agent (default 20 s) */
  agentGraceMs?: number;
}

/** `<devstack.dataDir>/nodes/<id>/`: the provider's records of a node (outside the node's root). */
export function nodeStateDir(config: LoadedConfig, node: string): string {
  return join(resolveFromRoot(config.devstack.dataDir, config.source.root), 'nodes', node);
}

export function localNodeRoot(config: LoadedConfig, node: string): string {
  const n = config.nodes[node];
  if (!n) throw new NodeConfigError(`node ${node} is not declared under nodes`);
  if (n.provider !== 'local') throw new NodeConfigError(`node ${node} uses provider ${n.provider}, not local`);
  if (!n.root) throw new NodeConfigError(`node ${node} has no root: set nodes.${node}.root to the folder the local provider builds it in`);
  return resolve(resolveFromRoot(n.root, config.source.root));
}

interface ProvisionRecord {
  node: string;
  root: string;
  provisionId: string;
  at: string;
}

export class LocalNodeProvider implements NodeProvider {
  readonly kind = 'local';
  constructor(
    private readonly config: LoadedConfig,
    private readonly opts: LocalProviderOptions = {},
  ) {}

  private provisionFile(node: string) {
    return join(nodeStateDir(this.config, node), 'provision.json');
  }
  private agentFile(node: string) {
    return join(nodeStateDir(this.config, node), 'agent.json');
  }

  private readProvision(node: string): ProvisionRecord | null {
    try {
      return JSON.parse(readFileSync(this.provisionFile(node), 'utf8')) as ProvisionRecord;
    } catch {
      return null;
    }
  }

  async provision(node: string, provisionId: string): Promise<ProvisionResult> {
    const root = localNodeRoot(this.config, node);
    const rec = this.readProvision(node);
    if (rec && rec.provisionId === provisionId && rec.root === root) {
      mkdirSync(root, { recursive: true, mode: 0o700 });
      return { node, root, provisionId, created: false };
    }
    if (existsSync(root) && readdirSync(root).length > 0) {
      throw new NodeNotEmptyError(
        `node ${node}: its root ${root} is not empty; a rebuild never overwrites existing data — move it aside (or remove it) if the node is really lost, then recover again`,
      );
    }
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const record: ProvisionRecord = { node, root, provisionId, at: new Date().toISOString() };
    mkdirSync(nodeStateDir(this.config, node), { recursive: true });
    writeJsonAtomic(this.provisionFile(node), record);
    return { node, root, provisionId, created: true };
  }

  async teardown(node: string, provisionId: string): Promise<{ node: string; removed: boolean }> {
    const rec = this.readProvision(node);
    if (!rec || rec.provisionId !== provisionId) return { node, removed: false };
    rmSync(rec.root, { recursive: true, force: true });
    rmSync(this.provisionFile(node), { force: true });
    return { node, removed: true };
  }

  async startAgent(node: string): Promise<AgentState> {
    localNodeRoot(this.config, node);
    const file = this.agentFile(node);
    const rec = readProcessRecord(file);
    if (rec && recordAlive(rec)) return { node, up: true, pid: rec.pid, startedAt: rec.startedAt, log: rec.logFile };
    const configFile = this.opts.configFile ?? this.config.source.file;
    if (!configFile) throw new NodeConfigError(`node ${node}: the local provider starts the node agent with the same config file, but this config was not loaded from a file`);
    const logFile = join(nodeStateDir(this.config, node), 'agent.log');
    const started = await startRecordedProcess({
      argv: [join(LIFELINE_ROOT, 'bin', 'lifeline'), '--config', configFile, '--log-format', 'json', 'worker', '--role', 'node-agent', '--node', node],
      cwd: LIFELINE_ROOT,
      env: this.opts.env ?? process.env,
      logFile,
      recordFile: file,
      info: { node },
    });
    return { node, up: true, pid: started.pid, startedAt: started.startedAt, log: logFile };
  }

  async stopAgent(node: string): Promise<AgentState & { stopped: 'not-running' | 'terminated' | 'killed' }> {
    const file = this.agentFile(node);
    const rec = readProcessRecord(file);
    if (!rec) return { node, up: false, stopped: 'not-running' };
    const stopped = await stopRecordedProcess(rec, this.opts.agentGraceMs ?? 20_000);
    removeProcessRecord(file);
    return { node, up: false, pid: rec.pid, stopped, log: rec.logFile };
  }

  /**
   * What is left of the node's root: `missing`/`empty` (nothing: rebuild it),
   * `intact` (every asset folder of the node is there and non-empty: only its
   * processes were lost), `partial` (something else: never touched).
   */
  async rootState(node: string): Promise<RootState> {
    const root = localNodeRoot(this.config, node);
    if (!existsSync(root)) return 'missing';
    if (readdirSync(root).length === 0) return 'empty';
    const folders = Object.keys(this.config.assets)
      .filter((a) => this.config.assets[a]!.node === node)
      .map((a) => resolveAsset(this.config, a).root)
      // only folders inside the root say anything about it
      .filter((f) => !relative(root, f).startsWith('..'));
    const intact = folders.length > 0 && folders.every((f) => existsSync(f) && readdirSync(f).length > 0);
    return intact ? 'intact' : 'partial';
  }

  /**
   * Moves a compromised root aside (`<root>.set-aside-<id>`, never deleted:
   * it is evidence) so a fresh one can be built. Idempotent by id.
   */
  async setAside(node: string, id: string): Promise<{ node: string; movedTo: string | null }> {
    const root = localNodeRoot(this.config, node);
    const to = `${root}.set-aside-${id.replace(/[^A-Za-z0-9._-]/g, '_')}`;
    if (existsSync(to)) return { node, movedTo: to };
    if (!existsSync(root)) return { node, movedTo: null };
    renameSync(root, to);
    rmSync(this.provisionFile(node), { force: true });
    return { node, movedTo: to };
  }

  async isAgentUp(node: string): Promise<AgentState> {
    const rec = readProcessRecord(this.agentFile(node));
    if (!rec) return { node, up: false };
    return { node, up: recordAlive(rec) || groupAlive(rec), pid: rec.pid, startedAt: rec.startedAt, log: rec.logFile };
  }
}

export type RootState = 'missing' | 'empty' | 'intact' | 'partial';

/** The provider of a node, from its config. New providers (ssh, kubernetes) are added here. */
export function nodeProvider(config: LoadedConfig, node: string, opts: LocalProviderOptions = {}): NodeProvider {
  const n = config.nodes[node];
  if (!n) throw new NodeConfigError(`node ${node} is not declared under nodes (declared: ${Object.keys(config.nodes).join(', ') || 'none'})`);
  switch (n.provider) {
    case 'local':
      return new LocalNodeProvider(config, opts);
  }
}
