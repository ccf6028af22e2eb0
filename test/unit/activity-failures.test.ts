import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { toFailure } from '../../activities/failures';
import { UserError } from '../../config/errors';
import { StorageError } from '../../engine/backend/object-store';
import { S3StorageError } from '../../engine/backend/s3';
import { FileChangedError, InputError, IntegrityError, RepositoryStateError } from '../../engine/errors';
import { RestoreIncompleteError } from '../../engine/restorer';

const ctx = { asset: 'llm', node: 'gpu1', tenant: 'acme', op: 'back up', root: '/data/llm' };
const errno = (code: string, path?: string) => Object.assign(new Error(`${code}: boom${path ? `, open '${path}'` : ''}`), { code, path });
const f = (err: unknown, c: object = ctx) => toFailure(err, c as typeof ctx) as ApplicationFailure;

describe('activity failures', () => {
  it('a missing asset path: non-retryable, names asset, node, path and the config key', () => {
    const r = f(new InputError('asset path /data/llm cannot be read: ENOENT', { cause: errno('ENOENT') }));
    expect(r).toMatchObject({ type: 'AssetPathMissing', nonRetryable: true });
    expect(r.message).toBe('asset llm on node gpu1: the asset path /data/llm does not exist; fix assets.llm.path in the config or create it on node gpu1');
  });

  it('an unreadable file: non-retryable, the path relative to the asset, and what to do', () => {
    const r = f(new InputError('cannot read /data/llm/w/a.bin: EACCES', { cause: errno('EACCES', '/data/llm/w/a.bin') }));
    expect(r).toMatchObject({ type: 'Unreadable', nonRetryable: true });
    expect(r.message).toContain('asset llm on node gpu1: cannot read w/a.bin (EACCES: permission denied)');
    expect(r.message).toContain("read access");
  });

  it('a full disk on restore names the target', () => {
    const r = f(errno('ENOSPC'), { ...ctx, op: 'restore', target: '/restore/here' });
    expect(r).toMatchObject({ type: 'DiskFull', nonRetryable: true });
    expect(r.message).toContain('target /restore/here is full (ENOSPC: no space left on device)');
    expect(r.message).toContain('another --target');
  });

  it('files changing or vanishing during a backup make the backup start over', () => {
    expect(f(new FileChangedError('w/a.bin'))).toMatchObject({ type: 'AssetChanged', nonRetryable: true });
    expect(f(new InputError('cannot read /data/llm/x: ENOENT (it was removed during the backup?)', { cause: errno('ENOENT', '/data/llm/x') }))).toMatchObject({ type: 'AssetChanged' });
    expect(f(new RepositoryStateError('backup lease 1 lapsed at …; run the backup again', true))).toMatchObject({ type: 'RestartBackup' });
    expect(f(new RepositoryStateError('2 pack(s) … were deleted while it ran', false))).toMatchObject({ type: 'RestartBackup' });
  });

  it('storage: permanent problems stop, transient ones retry', () => {
    const denied = f(new StorageError('access denied: could not write s3://b/p/data/x; check the credentials', 'data/x', true));
    expect(denied).toMatchObject({ type: 'StoragePermanent', nonRetryable: true });
    expect(denied.message).toContain('asset llm on node gpu1 (tenant acme): access denied');
    // The store's own refusal (least privilege) has its own type, so a refused restore is audited as denied.
    const s3Denied = f(new S3StorageError('access denied: could not read s3://b/p/data/x (AccessDenied, HTTP 403)', 'data/x', true, 'AccessDenied', 403));
    expect(s3Denied).toMatchObject({ type: 'StorageAccessDenied', nonRetryable: true });
    expect(f(new S3StorageError('request signature rejected', 'data/x', true, 'SignatureDoesNotMatch', 403))).toMatchObject({ type: 'StoragePermanent' });
    expect(f(new StorageError('storage unreachable: could not write s3://b/p/data/x after 9 attempts', 'data/x', false))).toMatchObject({ type: 'StorageUnavailable', nonRetryable: false });
  });

  it('integrity, config and unknown errors', () => {
    expect(f(new IntegrityError('manifest x: bad signature'))).toMatchObject({ type: 'IntegrityError', nonRetryable: true });
    expect(f(new UserError('unknown tenant "x"'))).toMatchObject({ type: 'ConfigError', nonRetryable: true });
    const unknown = f(new TypeError('something with /data/llm/secret-name.bin in it'));
    expect(unknown).toMatchObject({ type: 'Transient', nonRetryable: false });
    // Retryable messages are recorded on every attempt: no file names in them.
    expect(unknown.message).not.toContain('secret-name');
    expect(f(errno('EIO', '/data/llm/secret-name.bin')).message).not.toContain('secret-name');
  });

  it('an incomplete restore says how many files failed and the first one', () => {
    const err = new RestoreIncompleteError([{ path: 'a/b.bin', reason: 'SHA-256 does not match the snapshot (corrupt data)' }, { path: 'c', reason: 'x' }], { snapshotId: 's', files: 8, dirs: 1, symlinks: 0, bytes: 1, durationMs: 1 });
    const r = f(err, { ...ctx, target: '/t' });
    expect(r).toMatchObject({ type: 'RestoreIncomplete', nonRetryable: true });
    expect(r.message).toContain('2 of 10 files failed; first: a/b.bin: SHA-256 does not match');
  });

  it('failures made for Temporal pass through unchanged', () => {
    const a = ApplicationFailure.nonRetryable('x', 'Mine');
    expect(f(a)).toBe(a);
  });
});
