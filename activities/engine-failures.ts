/**
 * Turning domain errors into Temporal activity failures: a problem that a
 * retry cannot fix (unknown asset, missing repository, bad snapshot id,
 * refused credentials, a manifest that fails authentication) becomes a
 * non-retryable ApplicationFailure with the domain's one-line message, so the
 * workflow fails at once with a clear reason instead of retrying for hours.
 * Everything else (timeouts, throttling, a store that is briefly down) is
 * rethrown as is and retried by the activity's retry policy.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { UserError } from '../config/errors';
import { StorageError } from '../engine/backend/object-store';
import { AgeAuthError, AgeFormatError, AgeIdentityError, AgeNoIdentityMatchError, SecretFileError } from '../engine/crypto/errors';
import { SigningKeyError } from '../engine/crypto/signing';
import { EngineError } from '../engine/errors';

export function isPermanent(err: unknown): boolean {
  if (err instanceof UserError) return true;
  if (err instanceof EngineError || err instanceof StorageError) return err.permanent;
  return (
    err instanceof AgeNoIdentityMatchError ||
    err instanceof AgeAuthError ||
    err instanceof AgeFormatError ||
    err instanceof AgeIdentityError ||
    err instanceof SecretFileError ||
    err instanceof SigningKeyError
  );
}

/** Runs `fn`, converting permanent domain errors into non-retryable failures (type = the error's class name). */
export async function permanentFailures<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApplicationFailure) throw err;
    if (isPermanent(err)) {
      const e = err as Error;
      throw ApplicationFailure.nonRetryable(e.message, e.name || 'PermanentError');
    }
    throw err;
  }
}
