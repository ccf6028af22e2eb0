/** docker-compose.yml must agree with the config schema's defaults and env overrides. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { configFromObject, ENV_OVERRIDES, loadConfig } from '../../config/load';
import { LIFELINE_ROOT } from '../../config/root';
import { defaultConfig } from '../../config/schema';

const compose = parse(readFileSync(join(LIFELINE_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[]; ports?: string[]; environment?: Record<string, string>; secrets?: string[] }>;
  secrets: Record<string, { file: string }>;
};
const defaults = defaultConfig();

/** host port → container port for a service */
function ports(service: string): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of compose.services[service]!.ports ?? []) {
    const parts = p.split(':');
    m.set(Number(parts.at(-2)), Number(parts.at(-1)));
  }
  return m;
}

describe('docker-compose.yml', () => {
  it('has Temporal, MinIO and both worker roles', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['minio', 'node-agent', 'orchestrator', 'temporal']);
  });

  it('publishes the default ports on 127.0.0.1', () => {
    const d = defaults.devstack;
    expect(ports('temporal')).toEqual(new Map([[d.temporal.port, d.temporal.port], [d.temporal.uiPort, d.temporal.uiPort]]));
    expect(ports('minio')).toEqual(new Map([[d.minio.port, d.minio.port], [d.minio.consolePort, d.minio.consolePort]]));
    for (const s of ['temporal', 'minio']) for (const p of compose.services[s]!.ports!) expect(p.startsWith(`${d.host}:`)).toBe(true);
    const cmd = compose.services.temporal!.command!.join(' ');
    expect(cmd).toContain(`--port=${d.temporal.port}`);
    expect(cmd).toContain(`--ui-port=${d.temporal.uiPort}`);
    expect(cmd).toContain('--db-filename=');
    const minioCmd = compose.services.minio!.command!.join(' ');
    expect(minioCmd).toContain(`--address :${d.minio.port}`);
    expect(minioCmd).toContain(`--console-address :${d.minio.consolePort}`);
  });

  it('workers are configured only through documented env overrides that resolve to the defaults', () => {
    const known = new Set(ENV_OVERRIDES.map((o) => o.name));
    for (const role of ['orchestrator', 'node-agent']) {
      const env = compose.services[role]!.environment!;
      for (const name of Object.keys(env)) expect(known.has(name), `${role}: ${name} is not a documented override`).toBe(true);
      // Load a config from nothing but these variables (secret files replaced by readable stand-ins).
      const standIn = join(LIFELINE_ROOT, 'package.json');
      const c = loadConfig({
        configPath: join(LIFELINE_ROOT, 'config/lifeline.example.yaml'),
        env: { ...env, LIFELINE_S3_ACCESS_KEY_ID_FILE: standIn, LIFELINE_S3_SECRET_ACCESS_KEY_FILE: standIn },
      });
      expect(c.temporal.namespace).toBe(defaults.temporal.namespace);
      expect(c.temporal.address).toBe(`temporal:${defaults.devstack.temporal.port}`);
      expect(c.storage.endpoint).toBe(`http://minio:${defaults.devstack.minio.port}`);
      expect(c.storage.bucket).toBe(defaults.storage.bucket);
      expect(c.storage.region).toBe(defaults.storage.region);
      expect(c.storage.forcePathStyle).toBe(defaults.storage.forcePathStyle);
      // credentials are file references to the Docker secrets MinIO uses
      expect(env.LIFELINE_S3_ACCESS_KEY_ID_FILE).toBe('/run/secrets/minio_root_user');
      expect(env.LIFELINE_S3_SECRET_ACCESS_KEY_FILE).toBe('/run/secrets/minio_root_password');
      expect(compose.services[role]!.secrets).toEqual(['minio_root_user', 'minio_root_password']);
    }
    expect(compose.services.orchestrator!.command).toEqual(['worker', '--role', 'orchestrator']);
    expect(compose.services['node-agent']!.command!.slice(0, 4)).toEqual(['worker', '--role', 'node-agent', '--node']);
  });

  it('MinIO gets its root credentials from the same secrets, never inline', () => {
    const env = compose.services.minio!.environment!;
    expect(env.MINIO_ROOT_USER).toBeUndefined();
    expect(env.MINIO_ROOT_PASSWORD).toBeUndefined();
    expect(env.MINIO_ROOT_USER_FILE).toBe('minio_root_user');
    expect(env.MINIO_ROOT_PASSWORD_FILE).toBe('minio_root_password');
    expect(compose.secrets.minio_root_user!.file).toMatch(/^\.\/\.lifeline\//);
    expect(compose.secrets.minio_root_password!.file).toMatch(/^\.\/\.lifeline\//);
  });

  it('a config object mirroring compose validates', () => {
    expect(() =>
      configFromObject(
        { temporal: { address: 'temporal:7233' }, storage: { endpoint: 'http://minio:9000', credentials: { accessKeyId: { file: '/run/secrets/minio_root_user' }, secretAccessKey: { file: '/run/secrets/minio_root_password' } } } },
        { checkSecrets: false },
      ),
    ).not.toThrow();
  });
});
