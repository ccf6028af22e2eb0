/**
 * Activities are Lifeline's adapters to the outside world (object stores,
 * nodes, tools). They are built by a factory from their dependencies, so a
 * worker constructs clients once and workflows only ever see the types.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { createSmokeActivities } from './smoke';

export interface ActivityDeps {
  storage: { s3: S3Client; bucket: string; prefix: string };
}

export function createActivities(deps: ActivityDeps) {
  return {
    ...createSmokeActivities(deps.storage),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { SmokeObject, SmokeVerifyResult, SmokeWriteInput } from './smoke';
