/**
 * Turning errors of the engine, the store, the config and the file system
 * into Temporal failures: permanent problems become non-retryable
 * ApplicationFailures whose message says which asset, which node, which path
 * and what to do; transient ones stay retryable (Temporal retries the activity
 * with backoff).
 *
 * File names of an asset are plaintext the tenant encrypts everywhere else, so
 * they appear only in the message of a non-retryable failure (which a person
 * must read to fix anything); retryable failures are recorded on every attempt
 * and say "see the node agent's log" instead. The full error always goes to the
 * node agent's log.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { UserError } from '../config/errors';
import { StorageError } from '../engine/backend/object-store';
import { S3StorageError } from '../engine/backend/s3';
import { AgeAuthError, AgeFormatError, AgeIdentityError, AgeNoIdentityMatchError, SecretFileError } from '../engine/crypto/errors';
import { SigningKeyError } from '../engine/crypto/signing';
import { EngineError, FileChangedError, InputError, IntegrityError, RepositoryStateError } from '../engine/errors';
import { RestoreIncompleteError } from '../engine/restorer';
import { FailureTypes } from '../workflows/failure-types';

export { FailureTypes, RESTART_BACKUP_TYPES } from '../workflows/failure-types';

export interface FailureContext {
  asset: string;
  node?: string;
  tenant?: string;
  /** what was being done: "back up", "restore", … */
  op: string;
  /** absolute root of the asset on the node, to shorten absolute paths in messages */
  root?: string;
  /** restore target */
  target?: string;
}

function where(ctx: FailureContext): string {
  return `asset ${ctx.asset}${ctx.node ? ` on node ${ctx.node}` : ''}`;
}

function errnoOf(err: unknown): NodeJS.ErrnoException | undefined {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as Error).cause, i++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return e as NodeJS.ErrnoException;
  }
  return undefined;
}

function relative(path: string | undefined, root: string | undefined): string | undefined {
  if (!path) return undefined;
  if (root && (path === root || path.startsWith(root.endsWith('/') ? root : `${root}/`))) return path.slice(root.length).replace(/^\/+/, '') || '.';
  return path;
}

const ERRNO_WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'does not exist',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EIO: 'input/output error',
  ENOTDIR: 'a file is in the way of a folder',
  EISDIR: 'a folder is in the way of a file',
};

/**
 * The failure to throw for `err`. Unknown errors become retryable failures
 * with a path-free message; their details are in the worker's log.
 */
export function toFailure(err: unknown, ctx: FailureContext): Error {
  // Cancellation and failures already made for Temporal pass through unchanged.
  if (err instanceof ApplicationFailure || err instanceof CancelledFailure) return err;
  const nonRetryable = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true, cause: undefined });
  const retryable = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: false });
  const errno = errnoOf(err);
  const code = errno?.code;

  if (err instanceof FileChangedError) {
    return nonRetryable(
      FailureTypes.AssetChanged,
      `${where(ctx)}: ${err.path} changed while it was being read (it is still being written); the backup starts over, and fails if the asset keeps changing`,
    );
  }
  if (err instanceof RestoreIncompleteError) {
    // Callers that can write a full report do so first; this is the fallback.
    const first = err.failures[0];
    return nonRetryable(
      FailureTypes.RestoreIncomplete,
      `restore of ${where(ctx)} into ${ctx.target ?? 'the target'} is incomplete: ${err.failures.length} of ${err.result.files + err.failures.length} files failed${first ? `; first: ${first.path}: ${first.reason}` : ''}`,
    );
  }
  if (err instanceof UserError) return nonRetryable(FailureTypes.Config, `${where(ctx)}: ${err.message}`);
  if (err instanceof RepositoryStateError) {
    if (!err.permanent || /lease/.test(err.message)) {
      return nonRetryable(FailureTypes.RestartBackup, `${where(ctx)}: ${err.message}`);
    }
    return nonRetryable(FailureTypes.RepositoryState, `${where(ctx)}${ctx.tenant ? ` (tenant ${ctx.tenant})` : ''}: ${err.message}`);
  }
  if (err instanceof IntegrityError || err instanceof AgeAuthError || err instanceof AgeFormatError) {
    return nonRetryable(FailureTypes.Integrity, `${where(ctx)}${ctx.tenant ? ` (tenant ${ctx.tenant})` : ''}: ${err.message}; run a deep verification of the repository`);
  }
  if (err instanceof AgeNoIdentityMatchError || err instanceof AgeIdentityError || err instanceof SecretFileError || err instanceof SigningKeyError) {
    return nonRetryable(FailureTypes.KeyMismatch, `${where(ctx)}${ctx.tenant ? ` (tenant ${ctx.tenant})` : ''}: ${err.message}; check tenants.${ctx.tenant ?? 'NAME'}.identity in this worker's config`);
  }
  if (err instanceof StorageError) {
    if (err.permanent) {
      const denied = err instanceof S3StorageError && (err.code === 'AccessDenied' || err.code === 'AllAccessDisabled');
      return nonRetryable(denied ? FailureTypes.StorageAccessDenied : FailureTypes.StoragePermanent, `${where(ctx)}${ctx.tenant ? ` (tenant ${ctx.tenant})` : ''}: ${err.message}`);
    }
    return retryable(FailureTypes.StorageUnavailable, `${where(ctx)}: ${err.message}`);
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return nonRetryable(
      FailureTypes.DiskFull,
      ctx.target
        ? `restore of ${where(ctx)}: target ${ctx.target} is full (${code}: ${ERRNO_WORDS[code]}); free space there or restore to another --target`
        : `${where(ctx)}: ${code} (${ERRNO_WORDS[code]}) on the node's disk while trying to ${ctx.op}; free space on the node`,
    );
  }
  if (err instanceof InputError || (errno && !(err instanceof StorageError))) {
    const path = relative(errno?.path, ctx.root) ?? relative(/ (\/[^\s:]+)/.exec((err as Error).message)?.[1], ctx.root);
    if (code === 'EACCES' || code === 'EPERM') {
      return nonRetryable(
        FailureTypes.Unreadable,
        `${where(ctx)}: cannot ${ctx.target ? 'write' : 'read'} ${path ?? 'a file'} (${code}: ${ERRNO_WORDS[code]}); give the node agent's user ${ctx.target ? 'write access to the target' : 'read access to the asset'}${ctx.target ? '' : ', or move the file out of the asset'}`,
      );
    }
    if (code === 'ENOENT' && ctx.root && (err as Error).message.includes(`asset path ${ctx.root} `)) {
      return nonRetryable(
        FailureTypes.AssetPathMissing,
        `${where(ctx)}: the asset path ${ctx.root} does not exist; fix assets.${ctx.asset}.path in the config or create it on node ${ctx.node ?? '?'}`,
      );
    }
    if (code === 'ENOENT' && !ctx.target) {
      // Listed by the scan, gone when read: the asset is being rewritten.
      return nonRetryable(FailureTypes.AssetChanged, `${where(ctx)}: ${path ?? 'an entry'} was removed during the backup; the backup starts over`);
    }
    if (err instanceof InputError) return nonRetryable(FailureTypes.InvalidInput, `${where(ctx)}: ${relativeMessage((err as Error).message, ctx.root)}`);
    if (code === 'EROFS' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST') {
      return nonRetryable(FailureTypes.InvalidInput, `${where(ctx)}: ${code} (${ERRNO_WORDS[code] ?? 'file system error'}) at ${path ?? (ctx.target ? ctx.target : 'a path')} while trying to ${ctx.op}`);
    }
    return retryable(FailureTypes.Transient, `${where(ctx)}: ${code ?? 'file system error'} while trying to ${ctx.op}; retrying (details in the node agent's log)`);
  }
  if (err instanceof EngineError) {
    return err.permanent
      ? nonRetryable(FailureTypes.InvalidInput, `${where(ctx)}: ${relativeMessage(err.message, ctx.root)}`)
      : retryable(FailureTypes.Transient, `${where(ctx)}: ${err.name} while trying to ${ctx.op}; retrying (details in the node agent's log)`);
  }
  const name = (err as Error)?.name ?? 'Error';
  return retryable(FailureTypes.Transient, `${where(ctx)}: ${name} while trying to ${ctx.op}; retrying (details in the worker's log)`);
}

/** Absolute paths under the asset root shown relative to it (shorter, and the root is in the config anyway). */
function relativeMessage(message: string, root: string | undefined): string {
  if (!root) return message;
  return message.split(`${root}/`).join('');
}
