/**
 * `lifeline keys rotate|revoke`: a tenant's new identity and signing key, and
 * the removal of an old identity (FORMAT.md, "Key rotation and revocation").
 *
 * A tenant's identity file holds its current identity first (new data is
 * encrypted to it) and older identities after it (kept only for reading).
 * Both operations are resumable: rotation keeps its new keys in `<file>.next`
 * until it has finished, and every repository step rewrites only what still
 * needs it. Key material stays in owner-only files; only recipient
 * fingerprints, key ids and counts are printed, logged or audited.
 */
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import type { LoadedConfig } from '../config/load';
import { UserError } from '../config/errors';
import { resolveStorage } from '../config/storage';
import { loadAuditSigningKey, openAuditLog, safeUserName } from '../audit/open';
import type { AuditOutcome } from '../audit/entry';
import { AgeIdentities } from '../engine/crypto/age';
import { generateAgeIdentityFile, identityFileWithout, renameSecretFile, replaceSecretFile, writeSecretFile } from '../engine/crypto/key-files';
import { SigningKey } from '../engine/crypto/signing';
import { Lease, liveLeases, type LeaseRecord } from '../engine/leases';
import { GC_LEASE, KEY_REVOCATION_LEASE, KEY_ROTATION_LEASE } from '../engine/retention';
import { keys as objectKeys, Repository } from '../engine/repository';
import { opensWith, reencryptPacks, rewrapMetadata, type ReencryptReport, type RekeyProgress, type RewrapReport } from '../engine/rekey';
import { exists, filePath, type IdentityKind } from './keys';
import { tenantLocation, tenantStore } from './repositories';

/** Short, public handle of a recipient (post-quantum recipients are ~2 KB): the first 16 hex of its SHA-256. */
export function recipientFingerprint(recipient: string): string {
  return createHash('sha256').update(recipient).digest('hex').slice(0, 16);
}

interface Logger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface KeyOperationOptions {
  logger?: Logger;
  onProgress?: (p: RekeyProgress & { bytes?: number }) => void;
  /** who asks (default user:<OS user>) */
  actor?: string;
}

export interface RotateResult {
  tenant: string;
  resumed: boolean;
  /** the new current recipient and its fingerprint */
  recipient: string;
  recipientFingerprint: string;
  signingKeyId: string;
  /** recipients kept for reading what was written before */
  readOnlyRecipients: Array<{ recipient: string; fingerprint: string }>;
  rewrapped: RewrapReport;
  /** packs are left sealed to the old identity: see FORMAT.md and `keys revoke --existing` */
  packsUntouched: true;
  audited: boolean;
}

export interface RevokeResult {
  tenant: string;
  revoked: { recipient: string; fingerprint: string };
  existing: boolean;
  rewrapped: RewrapReport | null;
  packs: ReencryptReport | null;
  /** signer key ids no longer trusted (only with --existing, after every manifest and record was re-signed) */
  signersDropped: string[];
  /** what revocation cannot undo */
  limits: string[];
  audited: boolean;
}

function keyFiles(config: LoadedConfig, tenant: string, op: 'rotate' | 'revoke') {
  return { identityFile: filePath(config, tenant, 'identity', op), signingKeyFile: filePath(config, tenant, 'signingKey', op) };
}

async function openStore(config: LoadedConfig, tenant: string) {
  const storage = resolveStorage(config);
  const store = tenantStore(storage, tenantLocation(config, tenant, storage));
  if (!(await Repository.exists(store))) throw new UserError(`tenant ${tenant} has no repository at ${store.location}; run \`lifeline keys init ${tenant}\``);
  return store;
}

/**
 * Records a key-operation audit entry. Without an audit signing key (the log
 * was never initialised) the operation is not recorded and a warning says so,
 * as the workers do (workers/worker.ts, openWorkerAudit); the result shows
 * `audited: false`. With a key, a failure to record is an error.
 */
async function audit(
  config: LoadedConfig,
  entry: { action: string; outcome: AuditOutcome; tenant: string; actor?: string; details: Record<string, string | number | boolean | null> },
  logger?: Logger,
): Promise<boolean> {
  if (!(await loadAuditSigningKey(config, { optional: true }))) {
    logger?.warn({ event: 'audit-disabled', tenant: entry.tenant, action: entry.action }, 'audit log not initialised (no audit signing key): this key operation is not recorded; run `lifeline audit init`');
    return false;
  }
  const log = await openAuditLog(config, { logger });
  await log.record({
    type: 'key-operation',
    action: entry.action,
    outcome: entry.outcome,
    actor: { kind: 'user', id: entry.actor ?? `user:${safeUserName()}` },
    tenant: entry.tenant,
    details: entry.details,
  });
  return true;
}

/** The operation is done; only its audit entry is missing — say both. */
function auditFailed(done: string): (err: unknown) => never {
  return (err) => {
    throw new UserError(`${done}, but its audit entry could NOT be recorded: ${(err as Error).message}`);
  };
}

/**
 * A new identity (hybrid by default) and signing key for the tenant:
 *
 *   1. create `<identity>.next` and `<signingKey>.next` (owner-only), unless a
 *      rotation was interrupted — then its keys are reused;
 *   2. `config`: trust the new signer, seal it to the new recipient;
 *   3. install: the new identity goes first in the identity file (the old
 *      ones stay for reading), the new signing key replaces the old one;
 *   4. re-wrap metadata: every manifest, record and index object is sealed to
 *      the new recipient and manifests and records are re-signed;
 *   5. remove `<identity>.next`: the rotation is finished.
 *
 * Packs stay as they are (FORMAT.md): their ids are the hashes of their
 * ciphertext, so re-wrapping one means rewriting it — `keys revoke --existing`.
 */
export async function rotateTenantKeys(config: LoadedConfig, tenant: string, opts: KeyOperationOptions & { kind?: IdentityKind; waitForGcMs?: number } = {}): Promise<RotateResult> {
  const { identityFile, signingKeyFile } = keyFiles(config, tenant, 'rotate');
  if (!(await exists(identityFile))) throw new UserError(`tenants.${tenant}.identity: ${identityFile} does not exist; create the tenant's keys with \`lifeline keys init ${tenant}\``);
  const store = await openStore(config, tenant);
  const nextIdentity = `${identityFile}.next`;
  const nextSigning = `${signingKeyFile}.next`;
  const resumed = await exists(nextIdentity);
  let done: RotateResult;
  try {
    if (!resumed) {
      // The signing key first: `<identity>.next` marks a rotation whose keys both exist.
      if (!(await exists(nextSigning))) await writeSecretFile(nextSigning, SigningKey.generate().toPem());
      await writeSecretFile(nextIdentity, await generateAgeIdentityFile(opts.kind ?? 'hybrid'));
    }
    const fresh = await AgeIdentities.fromFile(nextIdentity);
    const [recipient] = await fresh.recipients();
    // Resumed after step 3: the new signing key is already installed.
    const signingKey = await SigningKey.fromFile((await exists(nextSigning)) ? nextSigning : signingKeyFile);
    const before = await AgeIdentities.fromFile(identityFile);
    const all = AgeIdentities.merge(fresh, before);

    await Repository.rewriteConfig(store, {
      identities: all,
      recipients: [recipient!],
      update: (c) => ({ ...c, signers: c.signers.some((s) => s.keyId === signingKey.keyId) ? c.signers : [{ keyId: signingKey.keyId, publicKey: signingKey.publicKey }, ...c.signers] }),
    });

    if ((await before.recipients())[0] !== recipient) {
      await replaceSecretFile(identityFile, (await readFile(nextIdentity, 'utf8')) + (await readFile(identityFile, 'utf8')));
    }
    if (await exists(nextSigning)) await renameSecretFile(nextSigning, signingKeyFile);
    opts.logger?.info({ tenant, recipientFingerprint: recipientFingerprint(recipient!), signingKeyId: signingKey.keyId, resumed }, 'new tenant keys installed; re-wrapping metadata');

    const identities = await AgeIdentities.fromFile(identityFile);
    const stale = await identities.select((_, i) => i > 0);
    // Garbage collection rewrites index objects too: it defers while this lease lives, and one already running is waited for.
    const lease = await Lease.acquire(store, KEY_ROTATION_LEASE);
    let rewrapped: RewrapReport;
    try {
      await waitForOlderLeases(
        store,
        lease,
        opts.waitForGcMs ?? 10 * 60_000,
        opts.logger,
        (l) => l.purpose === GC_LEASE,
        `the new keys are installed (new data already uses them); run \`lifeline keys rotate ${tenant}\` again once it has finished to re-wrap the metadata`,
      );
      const repo = await Repository.open(store, { identities, signingKey });
      rewrapped = await rewrapMetadata(repo, {
        stale,
        signingKey,
        onProgress: opts.onProgress,
        onWarning: (w) => opts.logger?.warn({ tenant, key: w.key, reason: w.reason }, 'object not re-wrapped (not trustworthy)'),
      });
    } finally {
      await lease.release();
    }
    await rm(nextIdentity, { force: true });

    const readOnly = (await identities.recipients()).slice(1).map((r) => ({ recipient: r, fingerprint: recipientFingerprint(r) }));
    done = { tenant, resumed, recipient: recipient!, recipientFingerprint: recipientFingerprint(recipient!), signingKeyId: signingKey.keyId, readOnlyRecipients: readOnly, rewrapped, packsUntouched: true, audited: false };
  } catch (err) {
    // Recording the failure must never hide it.
    await audit(config, { action: 'keys-rotated', outcome: 'failure', tenant, actor: opts.actor, details: { error: (err as Error).name, resumable: await exists(nextIdentity) } }, opts.logger).catch(() => false);
    throw err;
  }
  done.audited = await audit(
    config,
    {
      action: 'keys-rotated',
      outcome: 'success',
      tenant,
      actor: opts.actor,
      details: {
        recipient: done.recipientFingerprint,
        signingKeyId: done.signingKeyId,
        readOnlyIdentities: done.readOnlyRecipients.length,
        manifests: done.rewrapped.manifests,
        records: done.rewrapped.records,
        indexes: done.rewrapped.indexes,
        skipped: done.rewrapped.skipped.length,
        resumed,
      },
    },
    opts.logger,
  ).catch(auditFailed(`tenant ${tenant}: keys rotated (new recipient ${done.recipientFingerprint}, signing key ${done.signingKeyId})`));
  return done;
}

/** Counts, by kind, the objects of a repository that `ids` can open (headers only). */
export async function objectsOpenedBy(repo: Repository, ids: AgeIdentities): Promise<Record<'config' | 'manifests' | 'records' | 'indexes' | 'packs', number>> {
  const counts = { config: 0, manifests: 0, records: 0, indexes: 0, packs: 0 };
  const kinds: Array<[string, keyof typeof counts]> = [
    ['snapshots/', 'manifests'],
    ['verifications/', 'records'],
    ['holds/', 'records'],
    ['quarantine/', 'records'],
    ['bom/', 'records'],
    ['index/', 'indexes'],
    ['data/', 'packs'],
  ];
  if (await opensWith(await repo.store.get(objectKeys.config), ids)) counts.config++;
  for (const [prefix, kind] of kinds) {
    for await (const o of repo.store.list(prefix)) {
      // 64 KiB holds any age header Lifeline writes (a post-quantum stanza is ~1.6 KB).
      const head = await repo.store.get(o.key, { start: 0, end: Math.min(o.size, 64 * 1024) - 1 });
      if (await opensWith(head, ids)) counts[kind]++;
    }
  }
  return counts;
}

const REVOKE_LIMITS = [
  'copies of the repository, or of objects, taken before the revocation still open with the revoked identity: revocation cannot reach them',
  'on a bucket with Object Lock or versioning, the replaced and deleted versions stay stored until their retention ends (and then until a lifecycle rule removes noncurrent versions); whoever holds the revoked identity and can read old versions can still open them',
  'an operation that was already running during the rotation finishes with the keys it started with (workers load the new key files at their next operation); revocation waits for backups that started before it and refuses to remove the identity while anything still opens with it',
];

/**
 * Removes an old identity from the tenant's identity file. Without
 * `existing` it refuses while any stored object still needs that identity.
 * With `existing` it first re-encrypts every such object to the current
 * identity — under the repository's lease, after older backups finished —
 * and then trusts only the current signing key.
 */
export async function revokeTenantKey(
  config: LoadedConfig,
  tenant: string,
  target: string,
  opts: KeyOperationOptions & { existing?: boolean; waitForBackupsMs?: number } = {},
): Promise<RevokeResult> {
  if (/^AGE-SECRET-KEY-/i.test(target.trim())) {
    throw new UserError(
      'that argument is a secret identity: never put one on a command line (shell history, process lists). Give its public recipient (age1…) or its fingerprint, as `lifeline keys list` shows',
    );
  }
  const { identityFile, signingKeyFile } = keyFiles(config, tenant, 'revoke');
  if (await exists(`${identityFile}.next`)) throw new UserError(`a key rotation of tenant ${tenant} was interrupted; finish it first with \`lifeline keys rotate ${tenant}\``);
  const identities = await AgeIdentities.fromFile(identityFile).catch((err: Error) => {
    throw new UserError(`tenants.${tenant}.identity: ${err.message}`);
  });
  const recipients = await identities.recipients();
  const t = target.trim();
  const matches = recipients.filter((r) => r === t || recipientFingerprint(r) === t.toLowerCase() || (t.length >= 12 && r.startsWith(t)));
  const fp = (r: string) => `${r.slice(0, 12)}… (fingerprint ${recipientFingerprint(r)})`;
  if (matches.length === 0) {
    throw new UserError(`tenant ${tenant} has no identity with recipient or fingerprint ${t.length > 24 ? `${t.slice(0, 24)}…` : t}; its identities: ${recipients.map(fp).join(', ')}`);
  }
  if (matches.length > 1) throw new UserError(`${t} matches ${matches.length} identities of tenant ${tenant}; give the whole recipient or the fingerprint`);
  const revoked = matches[0]!;
  const refuse = async (message: string): Promise<never> => {
    await audit(config, { action: 'identity-revoked', outcome: 'denied', tenant, actor: opts.actor, details: { recipient: recipientFingerprint(revoked), reason: message.slice(0, 200) } }, opts.logger).catch(() => false);
    throw new UserError(message);
  };
  if (recipients.length === 1) {
    await refuse(`refusing to revoke tenant ${tenant}'s only identity: nothing could read its data any more. Run \`lifeline keys rotate ${tenant}\` first, then revoke the old identity`);
  }
  if (recipients[0] === revoked) {
    await refuse(`refusing to revoke tenant ${tenant}'s current identity (new data is encrypted to it). Run \`lifeline keys rotate ${tenant}\` first, then revoke this one`);
  }

  const store = await openStore(config, tenant);
  const signingKey = await SigningKey.fromFile(signingKeyFile);
  const revokedIds = (await identities.select((r) => r === revoked))!;
  const repo = await Repository.open(store, { identities, signingKey });
  const result: RevokeResult = {
    tenant,
    revoked: { recipient: revoked, fingerprint: recipientFingerprint(revoked) },
    existing: Boolean(opts.existing),
    rewrapped: null,
    packs: null,
    signersDropped: [],
    limits: REVOKE_LIMITS,
    audited: false,
  };
  try {
    if (!opts.existing) {
      const needed = await objectsOpenedBy(repo, revokedIds);
      const total = Object.values(needed).reduce((a, b) => a + b, 0);
      if (total > 0) {
        const what = Object.entries(needed)
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${n} ${k}`)
          .join(', ');
        await refuse(
          `${total} stored objects of tenant ${tenant} (${what}) are encrypted only to that identity; removing it would make them unreadable. Run \`lifeline keys revoke ${tenant} ${recipientFingerprint(revoked)} --existing\` to re-encrypt them to the current identity first`,
        );
      }
    } else {
      const lease = await Lease.acquire(store, KEY_REVOCATION_LEASE);
      try {
        await waitForOlderLeases(store, lease, opts.waitForBackupsMs ?? 10 * 60_000, opts.logger);
        result.rewrapped = await rewrapMetadata(repo, {
          stale: revokedIds,
          signingKey,
          onProgress: opts.onProgress,
          onWarning: (w) => opts.logger?.warn({ tenant, key: w.key, reason: w.reason }, 'object not re-wrapped (not trustworthy)'),
        });
        result.packs = await reencryptPacks(repo, { stale: revokedIds, onProgress: opts.onProgress });
        // Every trustworthy manifest and record is now signed by the current key: trust only it.
        const kept = new Set([signingKey.keyId]);
        await Repository.rewriteConfig(store, {
          identities,
          recipients: await identities.currentRecipients(),
          update: (c) => {
            result.signersDropped = c.signers.filter((s) => !kept.has(s.keyId)).map((s) => s.keyId);
            return { ...c, signers: c.signers.filter((s) => kept.has(s.keyId)) };
          },
        });
        const left = await objectsOpenedBy(repo, revokedIds);
        const total = Object.values(left).reduce((a, b) => a + b, 0);
        if (total > 0) {
          throw new UserError(
            `${total} objects still open with the revoked identity (${JSON.stringify(left)}): an operation that started before the rotation wrote them meanwhile; the identity was not removed. Run the revocation again once it has finished`,
          );
        }
      } finally {
        await lease.release();
      }
    }
    const { text, removed } = await identityFileWithout(await readFile(identityFile, 'utf8'), new Set([revoked]));
    if (removed !== 1) throw new UserError(`tenants.${tenant}.identity: expected to remove one identity from ${identityFile}, found ${removed}`);
    await replaceSecretFile(identityFile, text);
  } catch (err) {
    if (!(err instanceof UserError && /^refusing|are encrypted only/.test(err.message))) {
      await audit(config, { action: 'identity-revoked', outcome: 'failure', tenant, actor: opts.actor, details: { recipient: recipientFingerprint(revoked), existing: result.existing, error: (err as Error).name } }, opts.logger).catch(() => false);
    }
    throw err;
  }
  result.audited = await audit(
    config,
    {
      action: 'identity-revoked',
      outcome: 'success',
      tenant,
      actor: opts.actor,
      details: {
        recipient: recipientFingerprint(revoked),
        existing: result.existing,
        manifests: result.rewrapped?.manifests ?? 0,
        records: result.rewrapped?.records ?? 0,
        indexes: (result.rewrapped?.indexes ?? 0) + (result.packs?.indexesReplaced ?? 0),
        packsReencrypted: result.packs?.packsReencrypted ?? 0,
        bytesReencrypted: result.packs?.bytesReencrypted ?? 0,
        signersDropped: result.signersDropped.join(',') || null,
      },
    },
    opts.logger,
  ).catch(auditFailed(`tenant ${tenant}: identity ${recipientFingerprint(revoked)} revoked`));
  return result;
}

/**
 * Waits until every lease that started before ours has ended: a backup that
 * began before the revocation may still be storing data sealed to the old
 * keys. Backups that start later see the current keys.
 */
async function waitForOlderLeases(
  store: Parameters<typeof liveLeases>[0],
  own: Lease,
  timeoutMs: number,
  logger?: Logger,
  which: (l: LeaseRecord) => boolean = () => true,
  stopped = 'nothing was changed. Run the command again once it has finished',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const older = (await liveLeases(store)).filter((l) => l.id !== own.record.id && Date.parse(l.startedAt) <= own.startedAt.getTime() && which(l));
    if (older.length === 0) return;
    if (Date.now() >= deadline) {
      throw new UserError(`${older[0]!.purpose} ${older[0]!.id} is still running on this repository; ${stopped}`);
    }
    logger?.info({ leases: older.map((l) => `${l.purpose} ${l.id}`) }, 'waiting for running backups and garbage collection to finish before re-encrypting');
    await new Promise((r) => setTimeout(r, Math.min(5000, Math.max(0, deadline - Date.now()))));
  }
}
