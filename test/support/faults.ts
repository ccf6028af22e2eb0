/** Helpers for the storage-fault tests: fault contexts and injector calls in a separate process. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { LoadedConfig } from '../../config/load';
import { resolveFromRoot, LIFELINE_ROOT } from '../../config/root';
import type { FaultContext } from '../../drills/fault';
import type { FaultSpec } from '../../drills/scenario';
import { createBufferLogger } from '../../logging/logger';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { cleanEnv } from './cli';
import type { LifelineEnv } from './lifeline-env';
import { testS3Client } from './services';

const run = promisify(execFile);

/** The context a drill gives an injector: state under `<dataDir>/drills/<drillId>/faults/<faultId>/`. */
export function faultContext(config: LoadedConfig, drillId: string, faultId: string): FaultContext & { logs: () => string } {
  const buffer = createBufferLogger({ level: 'info' });
  return {
    config,
    drillId,
    stateDir: join(resolveFromRoot(config.devstack.dataDir, config.source.root), 'drills', drillId, 'faults', faultId),
    logger: buffer.logger,
    logs: buffer.text,
  };
}

/** One injector call in a fresh process that knows only the config file and the fault's state folder. */
export async function faultInChild<T>(opts: { configFile: string; op: 'inject' | 'revert' | 'active'; spec: FaultSpec; faultId: string; drillId: string; stateDir: string }): Promise<T> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(LIFELINE_ROOT, 'test', 'support', 'fault-child.ts'), JSON.stringify(opts)], {
    cwd: LIFELINE_ROOT,
    env: cleanEnv({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }),
    timeout: 240_000,
    maxBuffer: 1 << 24,
  });
  const line = stdout.trim().split('\n').pop()!;
  return (JSON.parse(line) as { result: T }).result;
}

/** SHA-256 of a stored object of the env's repository (`key` inside the repository prefix), null when it is not there. */
export async function storedSha256(env: Pick<LifelineEnv, 'bucket' | 'repoPrefix'>, key: string): Promise<string | null> {
  try {
    const r = await testS3Client().send(new GetObjectCommand({ Bucket: env.bucket, Key: `${env.repoPrefix}${key}` }));
    return createHash('sha256').update(await r.Body!.transformToByteArray()).digest('hex');
  } catch (e) {
    if ((e as Error).name === 'NoSuchKey') return null;
    throw e;
  }
}
