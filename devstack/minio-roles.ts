/**
 * Least-privilege users on a MinIO, made with `mc admin user add` /
 * `mc admin policy create|attach`. Secrets never reach an argv: the admin
 * alias comes from an `MC_HOST_<alias>` environment variable, new users'
 * keys go through stdin, and the generated keys are kept in an owner-only
 * JSON file (never printed).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { registerSecret } from '../logging/redact';
import type { IamPolicy } from '../tenancy/storage-roles';
import { readFileIfExists } from './layout';
import { ensureTool } from './tools.mjs';

export interface RoleCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** `credentials/minio-roles.json`: role → keys, and tenant → restore keys. */
export interface RoleCredentialsFile {
  backup?: RoleCredentials;
  verifier?: RoleCredentials;
  retention?: RoleCredentials;
  audit?: RoleCredentials;
  restore?: Record<string, RoleCredentials>;
}

export function readRoleCredentialsFile(file: string): RoleCredentialsFile | null {
  const text = readFileIfExists(file);
  if (text === null) return null;
  const parsed = JSON.parse(text) as RoleCredentialsFile;
  const all = [parsed.backup, parsed.verifier, parsed.retention, parsed.audit, ...Object.values(parsed.restore ?? {})];
  for (const c of all) if (c) (registerSecret(c.accessKeyId), registerSecret(c.secretAccessKey));
  return parsed;
}

function writeRoleCredentialsFile(file: string, data: RoleCredentialsFile): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(dirname(file), 0o700);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function newCredentials(): RoleCredentials {
  const c = {
    accessKeyId: 'LLR' + [...randomBytes(17)].map((b) => ALNUM[b % 32]).join(''),
    secretAccessKey: randomBytes(30).toString('base64url'),
  };
  registerSecret(c.accessKeyId);
  registerSecret(c.secretAccessKey);
  return c;
}

export interface MinioAdmin {
  endpoint: string;
  credentials: RoleCredentials;
}

/** Runs mc against the admin alias `ll`; stdout/stderr are returned for errors (they hold no secret: keys go via env and stdin). */
async function mc(admin: MinioAdmin, configDir: string, args: string[], stdin?: string): Promise<string> {
  const bin = await ensureTool('mc');
  const url = new URL(admin.endpoint);
  url.username = encodeURIComponent(admin.credentials.accessKeyId);
  url.password = encodeURIComponent(admin.credentials.secretAccessKey);
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['--config-dir', configDir, '--json', '--no-color', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: configDir, MC_HOST_ll: url.toString().replace(/\/$/, '') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else {
        // mc's JSON error: keep only its message.
        const msg = /"message":\s*"([^"]*)"/.exec(out)?.[1] ?? out.trim().slice(0, 300);
        reject(new Error(`mc admin ${args.slice(1, 3).join(' ')} failed: ${msg}`));
      }
    });
    child.stdin.end(stdin ?? '');
  });
}

export interface MinioRoleSpec {
  /** key in the credentials file: a role, or `restore:<tenant>` */
  id: string;
  /** MinIO policy name */
  policyName: string;
  policy: IamPolicy;
}

/**
 * Creates (or updates) one MinIO user and policy per role and attaches them.
 * Idempotent: existing keys from `file` are reused, policies are rewritten
 * (so a changed bucket or new tenant takes effect on the next `lifeline up`).
 */
export async function provisionMinioRoles(admin: MinioAdmin, file: string, specs: MinioRoleSpec[]): Promise<RoleCredentialsFile> {
  const data: RoleCredentialsFile = readRoleCredentialsFile(file) ?? {};
  const configDir = await mkdtemp(join(tmpdir(), 'lifeline-mc-'));
  try {
    for (const spec of specs) {
      const [kind, tenant] = spec.id.split(':') as [keyof RoleCredentialsFile, string | undefined];
      let creds = kind === 'restore' ? data.restore?.[tenant!] : (data[kind] as RoleCredentials | undefined);
      if (!creds) {
        creds = newCredentials();
        if (kind === 'restore') data.restore = { ...data.restore, [tenant!]: creds };
        else (data as Record<string, RoleCredentials>)[kind] = creds;
        // Save before creating the user, so a crash never leaves a user whose secret nobody knows.
        writeRoleCredentialsFile(file, data);
      }
      const policyFile = join(configDir, `${spec.policyName}.json`);
      await writeFile(policyFile, JSON.stringify(spec.policy), { mode: 0o600 });
      await mc(admin, configDir, ['admin', 'policy', 'create', 'll', spec.policyName, policyFile]);
      await mc(admin, configDir, ['admin', 'user', 'add', 'll'], `${creds.accessKeyId}\n${creds.secretAccessKey}\n`);
      try {
        await mc(admin, configDir, ['admin', 'policy', 'attach', 'll', spec.policyName, '--user', creds.accessKeyId]);
      } catch (e) {
        // Attaching twice is refused; the policy is attached, which is what we want.
        if (!/already|in effect/i.test((e as Error).message)) throw e;
      }
    }
    writeRoleCredentialsFile(file, data);
    return data;
  } finally {
    await rm(configDir, { recursive: true, force: true });
  }
}
