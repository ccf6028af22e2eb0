import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors';
import { configFilePath, configFromObject, ENV_OVERRIDES, loadConfig } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { defaultConfig, LifelineConfigSchema } from '../../config/schema';
import { resolveStorage } from '../../config/storage';
import { scrubString } from '../../logging/redact';

const dir = mkdtempSync(join(tmpdir(), 'lifeline-config-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(yaml: string): string {
  const p = join(dir, `c${n++}.yaml`);
  writeFileSync(p, yaml);
  return p;
}

function loadError(yaml: string, env: NodeJS.ProcessEnv = {}): { err: ConfigError; path: string } {
  const path = file(yaml);
  try {
    loadConfig({ configPath: path, env });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return { err: e as ConfigError, path };
  }
  throw new Error('expected a ConfigError');
}

describe('config defaults', () => {
  it('built-in defaults describe the embedded stack on the documented ports', () => {
    const c = defaultConfig();
    expect(c.temporal).toEqual({ namespace: 'default', payloadEncryption: { enabled: 'auto' } });
    expect(c.devstack).toEqual({
      dataDir: '.lifeline',
      host: '127.0.0.1',
      temporal: { port: 7233, uiPort: 8233, ui: true },
      minio: { port: 9000, consolePort: 9001 },
    });
    expect(c.storage).toEqual({
      region: 'us-east-1',
      bucket: 'lifeline',
      prefix: '',
      forcePathStyle: true,
      roles: { restore: {} },
      objectLock: { mode: 'governance', retention: '30d' },
    });
    expect(c.logging).toEqual({ level: 'info', format: 'auto' });
  });

  it('an empty file gives the defaults', () => {
    const c = loadConfig({ configPath: file(''), env: {} });
    expect({ ...c }).toEqual(defaultConfig());
  });

  it('config/lifeline.example.yaml states exactly the defaults', () => {
    const c = loadConfig({ configPath: join(LIFELINE_ROOT, 'config/lifeline.example.yaml'), env: {} });
    expect({ ...c }).toEqual(defaultConfig());
  });

  it('without --config or LIFELINE_CONFIG, config/lifeline.yaml is used only if present', () => {
    const root = mkdtempSync(join(dir, 'root-'));
    expect(configFilePath({ root, env: {} })).toEqual({ file: null, explicit: false });
    const c = loadConfig({ root, env: {} });
    expect(c.source.file).toBeNull();
    mkdirSync(join(root, 'config'));
    writeFileSync(join(root, 'config/lifeline.yaml'), 'storage:\n  bucket: from-default-path\n');
    expect(loadConfig({ root, env: {} }).storage.bucket).toBe('from-default-path');
    // LIFELINE_CONFIG wins over the default path
    const other = file('storage:\n  bucket: from-env-path\n');
    expect(loadConfig({ root, env: { LIFELINE_CONFIG: other } }).storage.bucket).toBe('from-env-path');
  });

  it('a missing explicit config file is an error naming it', () => {
    const missing = join(dir, 'nope.yaml');
    expect(() => loadConfig({ configPath: missing, env: {} })).toThrow(`${missing}: config file not found`);
  });
});

describe('config errors name file, key path and problem', () => {
  it('typo in a key', () => {
    const { err, path } = loadError('storage:\n  buckt: data\n');
    expect(err.message).toBe(`${path}: storage.buckt: unknown key; did you mean "bucket"?`);
  });

  it('typo in a section name', () => {
    const { err, path } = loadError('storgae:\n  bucket: data\n');
    expect(err.message).toBe(`${path}: storgae: unknown key; did you mean "storage"?`);
  });

  it('typo in a nested section', () => {
    const { err, path } = loadError('devstack:\n  temporal:\n    uiport: 8000\n');
    expect(err.message).toBe(`${path}: devstack.temporal.uiport: unknown key; did you mean "uiPort"?`);
  });

  it('wrong type', () => {
    const { err, path } = loadError('storage:\n  bucket: 42\n');
    expect(err.message).toBe(`${path}: storage.bucket: expected string, got number`);
  });

  it('wrong type for a port and an out-of-range port', () => {
    const { err, path } = loadError('devstack:\n  minio:\n    port: "9000"\n    consolePort: 70000\n');
    expect(err.problems).toEqual([
      { source: path, path: 'devstack.minio.port', message: 'expected number, got string' },
      { source: path, path: 'devstack.minio.consolePort', message: 'expected a port 1–65535' },
    ]);
  });

  it('invalid enum value', () => {
    const { err, path } = loadError('logging:\n  level: loud\n');
    expect(err.message).toMatch(new RegExp(`^${path}: logging.level: .*"trace"`));
  });

  it('YAML syntax error with line and column', () => {
    const { err, path } = loadError('storage:\n  bucket: [unclosed\n');
    expect(err.message).toMatch(new RegExp(`^${path}:\\d+:\\d+: invalid YAML: `));
  });

  it('a top-level list', () => {
    const { err, path } = loadError('- storage\n');
    expect(err.message).toBe(`${path}: expected a mapping of sections (temporal, storage, …), got array`);
  });

  it('missing secret file', () => {
    const secretPath = join(dir, 'missing-secret');
    const { err, path } = loadError(
      `storage:\n  endpoint: http://127.0.0.1:9\n  credentials:\n    accessKeyId: { env: LL_TEST_AK }\n    secretAccessKey: { file: ${secretPath} }\n`,
      { LL_TEST_AK: 'AKIAEXAMPLEEXAMPLE' },
    );
    expect(err.message).toBe(`${path}: storage.credentials.secretAccessKey: secret file ${secretPath} does not exist`);
  });

  it('missing secret environment variable', () => {
    const secretFile = join(dir, 'present-secret');
    writeFileSync(secretFile, 'not-printed-secret-value\n');
    const { err, path } = loadError(
      `storage:\n  endpoint: http://127.0.0.1:9\n  credentials:\n    accessKeyId: { env: LL_TEST_UNSET_VAR }\n    secretAccessKey: { file: ${secretFile} }\n`,
    );
    expect(err.message).toBe(`${path}: storage.credentials.accessKeyId: environment variable LL_TEST_UNSET_VAR is not set`);
    expect(err.message).not.toContain('not-printed-secret-value');
  });

  it('unreadable secret file', () => {
    if (process.getuid?.() === 0) {
      // root reads any file: an empty one is the failure we can provoke instead
      const empty = join(dir, 'empty-secret');
      writeFileSync(empty, '');
      const { err, path } = loadError(
        `storage:\n  endpoint: http://127.0.0.1:9\n  credentials:\n    accessKeyId: { file: ${empty} }\n    secretAccessKey: { file: ${empty} }\n`,
      );
      expect(err.problems[0]).toEqual({ source: path, path: 'storage.credentials.accessKeyId', message: `secret file ${empty} is empty` });
      return;
    }
    const locked = join(dir, 'locked-secret');
    writeFileSync(locked, 'x');
    chmodSync(locked, 0);
    const { err } = loadError(
      `storage:\n  endpoint: http://127.0.0.1:9\n  credentials:\n    accessKeyId: { file: ${locked} }\n    secretAccessKey: { file: ${locked} }\n`,
    );
    expect(err.message).toContain('permission denied');
  });

  it('inline secrets are refused without echoing them', () => {
    const { err, path } = loadError(
      'storage:\n  endpoint: http://127.0.0.1:9\n  credentials:\n    accessKeyId: AKIAINLINEVALUE\n    secretAccessKey: inline-secret-value-123\n',
    );
    expect(err.problems.map((p) => p.path)).toEqual(['storage.credentials.accessKeyId', 'storage.credentials.secretAccessKey']);
    expect(err.message).toContain(`${path}: storage.credentials.secretAccessKey: inline secrets are not allowed`);
    expect(err.message).not.toContain('inline-secret-value-123');
    expect(err.message).not.toContain('AKIAINLINEVALUE');
  });

  it('a secret reference with both or unknown keys', () => {
    const { err } = loadError(
      'storage:\n  endpoint: http://127.0.0.1:9\n  credentials:\n    accessKeyId: { file: /a, env: B }\n    secretAccessKey: { path: /x }\n',
    );
    expect(err.problems).toEqual([
      expect.objectContaining({ path: 'storage.credentials.accessKeyId', message: 'expected exactly one of "file" or "env", got "file", "env"' }),
      expect.objectContaining({ path: 'storage.credentials.secretAccessKey', message: 'expected exactly one of "file" or "env", got "path"' }),
    ]);
  });

  it('an external endpoint needs credentials; the embedded MinIO refuses them', () => {
    expect(loadError('storage:\n  endpoint: https://s3.example.com\n').err.message).toMatch(
      /storage\.credentials: required when storage\.endpoint is set/,
    );
    expect(loadError('storage:\n  credentials:\n    accessKeyId: { env: A }\n    secretAccessKey: { env: B }\n').err.message).toMatch(
      /storage\.credentials: only allowed together with storage\.endpoint/,
    );
  });

  it('every problem is reported at once', () => {
    const { err } = loadError('storage:\n  bucket: 1\n  regoin: x\nlogging:\n  format: html\n');
    expect(err.problems.map((p) => p.path).sort()).toEqual(['logging.format', 'storage.bucket', 'storage.regoin']);
  });
});

describe('secrets', () => {
  it('resolveStorage reads file and env references and registers them for scrubbing', () => {
    const secretFile = join(dir, 'sk');
    writeFileSync(secretFile, 'file-secret-access-key-0001\n', { mode: 0o600 });
    const c = loadConfig({
      configPath: file(
        `storage:\n  endpoint: http://127.0.0.1:9\n  bucket: bkt1\n  prefix: p/\n  credentials:\n    accessKeyId: { env: LL_AK }\n    secretAccessKey: { file: ${secretFile} }\n`,
      ),
      env: { LL_AK: 'ENVACCESSKEY0001' },
    });
    const r = resolveStorage(c, { LL_AK: 'ENVACCESSKEY0001' });
    expect(r).toEqual({
      endpoint: 'http://127.0.0.1:9',
      region: 'us-east-1',
      bucket: 'bkt1',
      prefix: 'p/',
      forcePathStyle: true,
      credentials: { accessKeyId: 'ENVACCESSKEY0001', secretAccessKey: 'file-secret-access-key-0001' },
      embedded: false,
    });
    expect(scrubString('key=file-secret-access-key-0001 id=ENVACCESSKEY0001')).toBe('key=[REDACTED] id=[REDACTED]');
  });

  it('the embedded stack needs its generated credentials file, named in the error', () => {
    const c = loadConfig({ configPath: file(`devstack:\n  dataDir: ${join(dir, 'no-stack')}\n`), env: {} });
    expect(() => resolveStorage(c)).toThrow(`embedded MinIO credentials not found at ${join(dir, 'no-stack', 'credentials', 'minio-root.json')}`);
  });
});

describe('environment overrides', () => {
  it('override file values and name the variable in errors', () => {
    const path = file('storage:\n  bucket: from-file\ntemporal:\n  namespace: ns-file\n');
    const c = loadConfig({
      configPath: path,
      env: {
        LIFELINE_S3_BUCKET: 'from-env',
        TEMPORAL_ADDRESS: 'temporal.example:7233',
        LIFELINE_TEMPORAL_NAMESPACE: 'ns-env',
        TEMPORAL_NAMESPACE: 'ignored-because-lifeline-wins',
        LIFELINE_LOG_LEVEL: 'debug',
        LIFELINE_S3_FORCE_PATH_STYLE: 'false',
        LIFELINE_DATA_DIR: '/var/lib/lifeline',
      },
    });
    expect(c.storage.bucket).toBe('from-env');
    expect(c.temporal).toEqual({ address: 'temporal.example:7233', namespace: 'ns-env', payloadEncryption: { enabled: 'auto' } });
    expect(c.logging.level).toBe('debug');
    expect(c.storage.forcePathStyle).toBe(false);
    expect(c.devstack.dataDir).toBe('/var/lib/lifeline');
    expect(c.source.envOverrides.sort()).toEqual(
      ['LIFELINE_DATA_DIR', 'LIFELINE_LOG_LEVEL', 'LIFELINE_S3_BUCKET', 'LIFELINE_S3_FORCE_PATH_STYLE', 'LIFELINE_TEMPORAL_NAMESPACE', 'TEMPORAL_ADDRESS'].sort(),
    );

    expect(() => loadConfig({ configPath: path, env: { LIFELINE_S3_BUCKET: 'Bad_Bucket' } })).toThrow(
      'environment variable LIFELINE_S3_BUCKET: storage.bucket: expected an S3 bucket name',
    );
    expect(() => loadConfig({ configPath: path, env: { LIFELINE_S3_FORCE_PATH_STYLE: 'maybe' } })).toThrow(
      'environment variable LIFELINE_S3_FORCE_PATH_STYLE: storage.forcePathStyle: expected boolean, got string',
    );
  });

  it('LIFELINE_TEMPORAL_ADDRESS wins over TEMPORAL_ADDRESS', () => {
    const c = loadConfig({ configPath: file(''), env: { TEMPORAL_ADDRESS: 'a:1', LIFELINE_TEMPORAL_ADDRESS: 'b:2' } });
    expect(c.temporal.address).toBe('b:2');
  });

  it('credential variables become references, never inline values', () => {
    const secretFile = join(dir, 'sk-env-file');
    writeFileSync(secretFile, 'secret-from-file-xyz');
    const env = {
      LIFELINE_S3_ENDPOINT: 'https://s3.example.com',
      LIFELINE_S3_ACCESS_KEY_ID: 'AKIAFROMENV123',
      LIFELINE_S3_SECRET_ACCESS_KEY_FILE: secretFile,
    };
    const c = loadConfig({ configPath: file(''), env });
    expect(c.storage.credentials).toEqual({ accessKeyId: { env: 'LIFELINE_S3_ACCESS_KEY_ID' }, secretAccessKey: { file: secretFile } });
    expect(resolveStorage(c, env).credentials).toEqual({ accessKeyId: 'AKIAFROMENV123', secretAccessKey: 'secret-from-file-xyz' });
    expect(JSON.stringify(c)).not.toContain('AKIAFROMENV123');
  });

  it('a missing secret file given by env names the variable and the file', () => {
    const missing = join(dir, 'no-such-secret');
    expect(() =>
      loadConfig({
        configPath: file(''),
        env: { LIFELINE_S3_ENDPOINT: 'https://s3.example.com', LIFELINE_S3_ACCESS_KEY_ID: 'AKIAFROMENV123', LIFELINE_S3_SECRET_ACCESS_KEY_FILE: missing },
      }),
    ).toThrow(`environment variable LIFELINE_S3_SECRET_ACCESS_KEY_FILE: storage.credentials.secretAccessKey: secret file ${missing} does not exist`);
  });

  it('every override targets a key the schema has', () => {
    for (const o of ENV_OVERRIDES) {
      const value =
        o.kind === 'boolean' ? true : o.kind === 'secret-env' ? { env: 'X' } : o.kind === 'secret-file' ? { file: '/x' } : o.path === 'logging.level' ? 'info' : o.path === 'logging.format' ? 'json' : o.path === 'temporal.address' ? 'h:1' : o.path === 'storage.endpoint' ? 'http://h' : o.path === 'storage.bucket' ? 'bkt' : 'v';
      const obj: Record<string, any> = {};
      const parts = o.path.split('.');
      let cur = obj;
      for (const p of parts.slice(0, -1)) cur = cur[p] ??= {};
      cur[parts.at(-1)!] = value;
      if (o.path.startsWith('storage.credentials') || o.path === 'storage.endpoint') {
        obj.storage.endpoint = 'http://h';
        obj.storage.credentials = { accessKeyId: { env: 'A' }, secretAccessKey: { env: 'B' }, ...obj.storage.credentials };
      }
      const r = LifelineConfigSchema.safeParse(obj);
      expect(r.success, `${o.name} → ${o.path}: ${r.error?.message}`).toBe(true);
    }
  });

  it('configFromObject validates like a file does', () => {
    expect(() => configFromObject({ storage: { bukcet: 'x' } }, { source: 'inline' })).toThrow('inline: storage.bukcet: unknown key; did you mean "bucket"?');
  });
});
