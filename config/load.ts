/**
 * Loading the one Lifeline config file: YAML → env overrides → zod schema →
 * secret references checked. Every problem is reported as
 * `<file>: <key.path>: <problem>` and nothing is started when any exists.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigProblem } from './errors';
import { LIFELINE_ROOT, resolveFromRoot } from './root';
import { LifelineConfigSchema, describeType, type LifelineConfig, type SecretRef } from './schema';
import { readSecret } from './secrets';

export const DEFAULT_CONFIG_PATH = 'config/lifeline.yaml';
export const BUILTIN_SOURCE = 'built-in defaults';

type EnvKind = 'string' | 'boolean' | 'number' | 'secret-env' | 'secret-file';

export interface EnvOverride {
  /** Environment variable name. */
  name: string;
  /** Config key path it sets. */
  path: string;
  kind: EnvKind;
  description: string;
}

/**
 * Environment variables that override config file values (for deployments).
 * Earlier entries for the same key win over later ones.
 */
export const ENV_OVERRIDES: readonly EnvOverride[] = [
  { name: 'LIFELINE_TEMPORAL_ADDRESS', path: 'temporal.address', kind: 'string', description: 'external Temporal frontend host:port (starts no embedded server)' },
  { name: 'TEMPORAL_ADDRESS', path: 'temporal.address', kind: 'string', description: 'same, the Temporal CLI/SDK convention (LIFELINE_TEMPORAL_ADDRESS wins)' },
  { name: 'LIFELINE_TEMPORAL_NAMESPACE', path: 'temporal.namespace', kind: 'string', description: 'Temporal namespace' },
  { name: 'TEMPORAL_NAMESPACE', path: 'temporal.namespace', kind: 'string', description: 'same, Temporal convention (LIFELINE_TEMPORAL_NAMESPACE wins)' },
  { name: 'LIFELINE_TEMPORAL_PAYLOAD_KEY_FILE', path: 'temporal.payloadEncryption.key', kind: 'secret-file', description: 'file holding the Temporal payload encryption key (on in production)' },
  { name: 'LIFELINE_DATA_DIR', path: 'devstack.dataDir', kind: 'string', description: 'project data folder of the embedded stack' },
  { name: 'LIFELINE_S3_ENDPOINT', path: 'storage.endpoint', kind: 'string', description: 'external S3 endpoint URL (starts no embedded MinIO)' },
  { name: 'LIFELINE_S3_REGION', path: 'storage.region', kind: 'string', description: 'S3 region' },
  { name: 'LIFELINE_S3_BUCKET', path: 'storage.bucket', kind: 'string', description: 'S3 bucket' },
  { name: 'LIFELINE_S3_PREFIX', path: 'storage.prefix', kind: 'string', description: 'key prefix inside the bucket' },
  { name: 'LIFELINE_S3_FORCE_PATH_STYLE', path: 'storage.forcePathStyle', kind: 'boolean', description: 'true/false: path-style S3 URLs' },
  { name: 'LIFELINE_S3_ACCESS_KEY_ID', path: 'storage.credentials.accessKeyId', kind: 'secret-env', description: 'S3 access key id (the variable itself becomes the reference { env: LIFELINE_S3_ACCESS_KEY_ID })' },
  { name: 'LIFELINE_S3_ACCESS_KEY_ID_FILE', path: 'storage.credentials.accessKeyId', kind: 'secret-file', description: 'file holding the S3 access key id' },
  { name: 'LIFELINE_S3_SECRET_ACCESS_KEY', path: 'storage.credentials.secretAccessKey', kind: 'secret-env', description: 'S3 secret access key (becomes { env: LIFELINE_S3_SECRET_ACCESS_KEY })' },
  { name: 'LIFELINE_S3_SECRET_ACCESS_KEY_FILE', path: 'storage.credentials.secretAccessKey', kind: 'secret-file', description: 'file holding the S3 secret access key' },
  { name: 'LIFELINE_LOG_LEVEL', path: 'logging.level', kind: 'string', description: 'trace|debug|info|warn|error|fatal|silent' },
  { name: 'LIFELINE_LOG_FORMAT', path: 'logging.format', kind: 'string', description: 'auto|json|pretty' },
];

export interface ConfigSource {
  /** Absolute path of the config file, or null for built-in defaults. */
  file: string | null;
  /** Directory relative paths resolve against. */
  root: string;
  /** Names of the environment variables that overrode file values. */
  envOverrides: string[];
}

export type LoadedConfig = LifelineConfig & { readonly source: ConfigSource };

export interface LoadOptions {
  /** Explicit config path (`--config`, relative to the current directory); otherwise LIFELINE_CONFIG, then <root>/config/lifeline.yaml if present. */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  root?: string;
  /** Read every secret reference now so a missing file/variable fails before anything starts (default true). */
  checkSecrets?: boolean;
}

/** Which config file would be used (or null for built-in defaults). */
export function configFilePath(opts: Pick<LoadOptions, 'configPath' | 'env' | 'root'> = {}): { file: string | null; explicit: boolean } {
  const env = opts.env ?? process.env;
  const root = opts.root ?? LIFELINE_ROOT;
  // --config / LIFELINE_CONFIG are what a person typed: relative to the current directory.
  const given = opts.configPath ?? env.LIFELINE_CONFIG;
  if (given) return { file: resolveFromRoot(given, process.cwd()), explicit: true };
  const def = resolveFromRoot(DEFAULT_CONFIG_PATH, root);
  return { file: existsSync(def) ? def : null, explicit: false };
}

export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const root = opts.root ?? LIFELINE_ROOT;
  const { file } = configFilePath(opts);
  const fileSource = file ? displayPath(file, root) : BUILTIN_SOURCE;

  let raw: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new ConfigError([{ source: fileSource, path: '', message: code === 'ENOENT' ? 'config file not found' : `cannot read config file (${code})` }]);
    }
    raw = parseYaml(text, fileSource);
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError([{ source: fileSource, path: '', message: `expected a mapping of sections (temporal, storage, …), got ${describeType(raw)}` }]);
  }

  const envSources = applyEnvOverrides(raw as Record<string, unknown>, env);
  const sourceOf = (path: string): string => {
    let best: string | undefined;
    for (const [p, name] of envSources) {
      if ((path === p || path.startsWith(p + '.')) && (!best || p.length > best.length)) best = p;
    }
    return best ? `environment variable ${envSources.get(best)}` : fileSource;
  };

  const parsed = LifelineConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(formatIssues(parsed.error.issues, raw, sourceOf));
  }
  const config = parsed.data;

  if (opts.checkSecrets !== false) {
    const problems: ConfigProblem[] = [];
    for (const { path, ref } of secretRefs(config)) {
      try {
        readSecret(ref, { source: sourceOf(path), path, env, root });
      } catch (e) {
        if (e instanceof ConfigError) problems.push(...e.problems);
        else throw e;
      }
    }
    if (problems.length) throw new ConfigError(problems);
  }

  const source: ConfigSource = { file, root, envOverrides: [...new Set(envSources.values())] };
  return Object.defineProperty({ ...config }, 'source', { value: source, enumerable: false }) as LoadedConfig;
}

/** Parse a config object that did not come from a file (tests, programmatic use). */
export function configFromObject(obj: unknown, opts: { source?: string; env?: NodeJS.ProcessEnv; root?: string; checkSecrets?: boolean } = {}): LoadedConfig {
  const source = opts.source ?? 'inline config';
  const parsed = LifelineConfigSchema.safeParse(obj ?? {});
  if (!parsed.success) throw new ConfigError(formatIssues(parsed.error.issues, obj, () => source));
  const root = opts.root ?? LIFELINE_ROOT;
  if (opts.checkSecrets !== false) {
    for (const { path, ref } of secretRefs(parsed.data)) readSecret(ref, { source, path, env: opts.env, root });
  }
  return Object.defineProperty({ ...parsed.data }, 'source', {
    value: { file: null, root, envOverrides: [] } satisfies ConfigSource,
    enumerable: false,
  }) as LoadedConfig;
}

/** Every secret reference in a config, with its key path. */
export function secretRefs(config: LifelineConfig): { path: string; ref: SecretRef }[] {
  const out: { path: string; ref: SecretRef }[] = [];
  const c = config.storage.credentials;
  if (c) {
    out.push({ path: 'storage.credentials.accessKeyId', ref: c.accessKeyId });
    out.push({ path: 'storage.credentials.secretAccessKey', ref: c.secretAccessKey });
  }
  const r = config.storage.roles;
  const roles = [
    ...(['backup', 'verifier', 'retention', 'audit'] as const).map((k) => [k, r[k]] as const),
    ...Object.entries(r.restore).map(([t, c]) => [`restore.${t}`, c] as const),
  ];
  for (const [name, rc] of roles) {
    if (!rc) continue;
    out.push({ path: `storage.roles.${name}.accessKeyId`, ref: rc.accessKeyId });
    out.push({ path: `storage.roles.${name}.secretAccessKey`, ref: rc.secretAccessKey });
  }
  return out;
}

// ---- helpers -----------------------------------------------------------------

function displayPath(file: string, root: string): string {
  return file.startsWith(root + '/') ? file.slice(root.length + 1) : file;
}

function parseYaml(text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new ConfigError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return { source: pos ? `${source}:${pos.line}:${pos.col}` : source, path: '', message: `invalid YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
    );
  }
  return doc.toJS();
}

/** Apply env overrides onto the raw object. Returns dotted path → env var name for the values set. */
function applyEnvOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Map<string, string> {
  const set = new Map<string, string>();
  for (const o of ENV_OVERRIDES) {
    const v = env[o.name];
    if (v === undefined || v === '' || set.has(o.path)) continue;
    let value: unknown = v;
    if (o.kind === 'boolean') value = /^(1|true|yes|on)$/i.test(v) ? true : /^(0|false|no|off)$/i.test(v) ? false : v;
    else if (o.kind === 'number') value = Number.isFinite(Number(v)) ? Number(v) : v;
    else if (o.kind === 'secret-env') value = { env: o.name };
    else if (o.kind === 'secret-file') value = { file: v };
    setPath(raw, o.path.split('.'), value);
    set.set(o.path, o.name);
  }
  return set;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur: Record<string, unknown> = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

function getPath(obj: unknown, path: readonly PropertyKey[]): { found: boolean; value: unknown } {
  let cur: unknown = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || !(key in (cur as object))) return { found: false, value: undefined };
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return { found: true, value: cur };
}

function dotted(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
}

/** The keys a strict object at `path` accepts (for "did you mean" hints). */
function knownKeysAt(path: readonly PropertyKey[]): string[] {
  let s: any = LifelineConfigSchema;
  const unwrap = () => {
    for (let i = 0; i < 10 && s; i++) {
      const def = s._zod?.def;
      if (def?.innerType) s = def.innerType;
      else if (def?.type === 'pipe') s = def.in;
      else break;
    }
  };
  unwrap();
  for (const key of path) {
    s = s?.shape?.[key as string];
    unwrap();
  }
  return s?.shape ? Object.keys(s.shape) : [];
}

function editDistance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length]![b.length]!;
}

function formatIssues(issues: z.core.$ZodIssue[], raw: unknown, sourceOf: (path: string) => string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(issue.path);
      for (const key of issue.keys) {
        const path = dotted([...issue.path, key]);
        const close = known
          .map((k) => ({ k, d: editDistance(k, key) }))
          .filter((x) => x.d <= Math.max(2, Math.floor(key.length / 3)))
          .sort((x, y) => x.d - y.d)[0];
        const hint = close ? `; did you mean "${close.k}"?` : known.length ? ` (known keys: ${known.join(', ')})` : '';
        problems.push({ source: sourceOf(path), path, message: `unknown key${hint}` });
      }
      continue;
    }
    const path = dotted(issue.path);
    const m = /expected (\w+), received (\w+)/.exec(issue.message);
    let message: string;
    if (issue.code === 'invalid_type' || m) {
      const expected = issue.code === 'invalid_type' ? issue.expected : m![1];
      const at = getPath(raw, issue.path);
      message = at.found && at.value !== undefined ? `expected ${expected}, got ${describeType(at.value)}` : `required (expected ${expected})`;
    } else {
      message = issue.message.replace(/^Invalid input: /, '');
    }
    problems.push({ source: sourceOf(path), path, message });
  }
  return problems;
}
