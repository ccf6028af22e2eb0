/** `lifeline keys …`: tenant identities, signing keys and repositories. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar } from 'cli-progress';
import { initTenant, listTenantKeys, type TenantKeysSummary } from '../tenancy/keys';
import { recipientFingerprint, revokeTenantKey, rotateTenantKeys, type RevokeResult, type RotateResult } from '../tenancy/key-rotation';
import type { RekeyProgress } from '../engine/rekey';
import { context, json, out } from './context';
import { formatBytes } from './progress';

function shortRecipient(r: string): string {
  return r.length > 40 ? `${r.slice(0, 20)}…${r.slice(-12)}` : r;
}

function describe(s: TenantKeysSummary): string {
  const made = Object.entries(s.created).filter(([, v]) => v).map(([k]) => k);
  return [
    `tenant ${s.tenant}${made.length ? `  (created: ${made.join(', ')})` : ''}`,
    `  recipient    ${s.recipients.map((r) => `${shortRecipient(r)}  (fingerprint ${recipientFingerprint(r)})`).join(', ') || '— (no identity file yet)'}`,
    ...s.readOnlyRecipients.map((r) => `  read-only    ${shortRecipient(r)}  (fingerprint ${recipientFingerprint(r)}; older identity, kept to read data written before a rotation)`),
    `  signing key  ${s.signingKeyId || '— (no signing key yet)'}`,
    `  identity     ${s.identityFile ?? 'from environment'}`,
    `  repository   ${s.repository}${s.initialised ? '' : '  (not initialised: run lifeline keys init ' + s.tenant + ')'}`,
  ].join('\n');
}

export function registerKeysCommands(program: Command): void {
  const keys = program.command('keys').description("tenants' encryption identities, signing keys and repositories");

  keys
    .command('init')
    .description("create a tenant's identity and signing key files (owner-only) if missing, and initialise its repository")
    .argument('<tenant>', 'tenant name from the config')
    .addOption(new Option('--kind <kind>', 'identity kind for a new identity').choices(['hybrid', 'x25519']).default('hybrid'))
    .option('--json', 'machine-readable output')
    .action(async (tenant: string, opts: { kind: 'hybrid' | 'x25519'; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const summary = await initTenant(ctx.config, tenant, { kind: opts.kind });
      ctx.logger.info({ tenant, created: summary.created, signingKeyId: summary.signingKeyId }, 'tenant keys ready');
      if (opts.json) json(summary);
      else out(describe(summary));
    });

  keys
    .command('list')
    .description('tenants with their public recipients, signing key id and repository (never secrets)')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const list = await listTenantKeys(ctx.config);
      if (opts.json) json(list);
      else out(list.length ? list.map(describe).join('\n') : 'no tenants configured (add them under `tenants:` in the config)');
    });

  registerKeyRotationCommands(keys);
}

/** Progress of a re-key on stderr (a bar on a terminal, a line every few seconds otherwise). */
function progressBar(quiet: boolean): { update: (p: RekeyProgress & { bytes?: number }) => void; stop: () => void } {
  if (quiet) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    stream: process.stderr,
    format: '{phase} |{bar}| {value}/{total} {bytes}',
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 5000,
    barsize: 30,
  });
  let phase = '';
  return {
    update(p) {
      if (p.phase !== phase) {
        if (phase) bar.stop();
        phase = p.phase;
        bar.start(Math.max(1, p.total), 0, { phase: p.phase.padEnd(9), bytes: '' });
      }
      bar.setTotal(Math.max(1, p.total));
      bar.update(p.done, { bytes: p.bytes ? `(${formatBytes(p.bytes)} re-encrypted)` : '' });
    },
    stop() {
      if (phase) bar.stop();
      phase = '';
    },
  };
}

function describeRotate(r: RotateResult): string {
  const w = r.rewrapped;
  return [
    `tenant ${r.tenant}: keys rotated${r.resumed ? ' (an interrupted rotation was finished)' : ''}`,
    `  new recipient   ${shortRecipient(r.recipient)}  (fingerprint ${r.recipientFingerprint}) — all new data is encrypted to it only`,
    `  signing key     ${r.signingKeyId} (the old one stays trusted for verifying until \`keys revoke --existing\`)`,
    `  re-wrapped      ${w.manifests} manifests, ${w.records} records, ${w.indexes} index objects to the new recipient (${w.unchanged} already were)`,
    ...w.skipped.map((s) => `  not re-wrapped  ${s.key}: ${s.reason}`),
    `  packs           unchanged: still sealed to the old identity, which stays in the identity file for reading (a pack's id is the hash of its ciphertext, so re-wrapping it means rewriting it)`,
    ...r.readOnlyRecipients.map((o) => `  read-only       ${shortRecipient(o.recipient)}  (fingerprint ${o.fingerprint})`),
    `  next            workers load the new keys at their next operation (one running now finishes with the old ones); to make the old identity useless for stored data too: lifeline keys revoke ${r.tenant} <fingerprint> --existing`,
    r.audited ? '  audit           recorded (key-operation keys-rotated)' : '  audit           NOT recorded: the audit log is not set up (lifeline audit init)',
  ].join('\n');
}

function describeRevoke(r: RevokeResult): string {
  const lines = [`tenant ${r.tenant}: identity ${shortRecipient(r.revoked.recipient)} (fingerprint ${r.revoked.fingerprint}) revoked — removed from the identity file`];
  if (r.existing) {
    const w = r.rewrapped!;
    const p = r.packs!;
    lines.push(
      `  re-wrapped      ${w.manifests} manifests, ${w.records} records, ${w.indexes} index objects`,
      `  re-encrypted    ${p.packsReencrypted} of ${p.packsChecked} packs (${formatBytes(p.bytesReencrypted)}), new ids, ${p.indexesReplaced} index objects replaced; old packs deleted after the new ones were stored and indexed${p.orphansDeleted ? `; ${p.orphansDeleted} leftovers of an interrupted run deleted` : ''}`,
      `  signers         ${r.signersDropped.length ? `no longer trusted: ${r.signersDropped.join(', ')}` : 'unchanged'}`,
      ...w.skipped.map((s) => `  left alone      ${s.key}: ${s.reason}`),
    );
  } else {
    lines.push('  stored objects  none needed it (nothing was re-encrypted)');
  }
  lines.push('  what revocation cannot do:', ...r.limits.map((l) => `    - ${l}`));
  lines.push(r.audited ? '  audit           recorded (key-operation identity-revoked)' : '  audit           NOT recorded: the audit log is not set up (lifeline audit init)');
  return lines.join('\n');
}

function durationMs(v: string): number {
  const m = /^(\d+)(s|m|h)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected a duration like 30s, 10m or 1h');
  return Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
}

export function registerKeyRotationCommands(keys: Command): void {
  keys
    .command('rotate')
    .description("give a tenant a new identity (hybrid by default) and signing key: new data uses only them at once; manifests, records and index objects are re-wrapped; old identities stay for reading packs")
    .argument('<tenant>', 'tenant name from the config')
    .addOption(new Option('--kind <kind>', 'kind of the new identity').choices(['hybrid', 'x25519']).default('hybrid'))
    .option('--json', 'machine-readable output')
    .action(async (tenant: string, opts: { kind: 'hybrid' | 'x25519'; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const bar = progressBar(Boolean(opts.json) || !process.stderr.isTTY);
      try {
        const r = await rotateTenantKeys(ctx.config, tenant, { kind: opts.kind, logger: ctx.logger, onProgress: bar.update });
        bar.stop();
        if (opts.json) json(r);
        else out(describeRotate(r));
      } finally {
        bar.stop();
      }
    });

  keys
    .command('revoke')
    .description("remove an old identity of a tenant; with --existing, first re-encrypt every stored object it opens (packs get new ids) so it opens nothing any more")
    .argument('<tenant>', 'tenant name from the config')
    .argument('<recipient>', "the identity's public recipient (age1…), a unique prefix of it, or its fingerprint (lifeline keys list); never the secret identity")
    .option('--existing', 're-encrypt every stored object the identity opens to the current identity, then delete the old objects')
    .option('--wait-for-backups <duration>', 'how long to wait for backups that started earlier to finish', durationMs, 10 * 60_000)
    .option('--json', 'machine-readable output')
    .action(async (tenant: string, recipient: string, opts: { existing?: boolean; waitForBackups: number; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const bar = progressBar(Boolean(opts.json) || !process.stderr.isTTY);
      try {
        const r = await revokeTenantKey(ctx.config, tenant, recipient, { existing: opts.existing, waitForBackupsMs: opts.waitForBackups, logger: ctx.logger, onProgress: bar.update });
        bar.stop();
        if (opts.json) json(r);
        else out(describeRevoke(r));
      } finally {
        bar.stop();
      }
    });
}
