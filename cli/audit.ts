/**
 * `lifeline audit init|verify|show|record`: the tamper-evident audit log
 * (audit/), read and checked directly in its bucket with the keys the config
 * names (no workflow involved).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { AUDIT_ENTRY_TYPES, AUDIT_OUTCOMES, AuditEntryError, type AuditEntryInput, type AuditEntryType } from '../audit/entry';
import type { AuditProblem, AuditVerifyReport, AuditWitness } from '../audit/log';
import { initAudit, openAuditLog, safeUserName } from '../audit/open';
import { defaultWitnessPath, readWitness, writeWitness } from '../audit/witness';
import { DURATION, durationMs } from '../config/platform';
import { UserError } from '../config/errors';
import { context, json, out } from './context';

/** An ISO time, or a duration meaning that long ago (`24h`, `7d`). */
function timeArg(v: string): Date {
  if (DURATION.test(v)) return new Date(Date.now() - durationMs(v));
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidArgumentError('expected an ISO time (2026-03-01, 2026-03-01T12:00:00Z) or a duration ago (24h, 7d)');
  return new Date(t);
}

function sizeArg(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a tree size (a whole number ≥ 0)');
  return n;
}

function detailArg(v: string, prev: Record<string, string> = {}): Record<string, string> {
  const i = v.indexOf('=');
  if (i < 1) throw new InvalidArgumentError('expected key=value');
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function where(p: Pick<AuditProblem, 'seq' | 'lastSeq' | 'checkpoint'>): string {
  if (p.seq !== undefined) return p.lastSeq !== undefined && p.lastSeq !== p.seq ? `entries ${p.seq}–${p.lastSeq}` : `entry ${p.seq}`;
  if (p.checkpoint !== undefined) return `checkpoint ${p.checkpoint}`;
  return '';
}

function describeReport(r: AuditVerifyReport, witnessNote: string[]): string {
  const lines = [
    `audit log   ${r.location}  (origin ${r.origin})`,
    `checkpoint  ${r.checkpoint ? `size ${r.checkpoint.size}  root ${r.checkpoint.rootHash}` : 'none'}`,
    `objects     ${r.entries} entries, ${r.checkpoints} checkpoints`,
    ...r.witnesses.map((w) => `witness     size ${w.size} (${w.source}): ${w.ok ? 'contained in the log' : 'NOT contained in the log'}`),
    ...witnessNote,
  ];
  if (r.ok) lines.push(`OK: every entry matches the checkpoints and every checkpoint extends the earlier ones`);
  else {
    lines.push(`${r.problems.length} PROBLEM${r.problems.length === 1 ? '' : 'S'}:`);
    for (const p of r.problems) lines.push(`  ${p.kind.padEnd(23)} ${where(p).padEnd(16)} ${p.message}`);
  }
  if (r.warnings.length) {
    lines.push('warnings:');
    for (const w of r.warnings) lines.push(`  ${w.kind.padEnd(23)} ${w.message}`);
  }
  return lines.join('\n');
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident audit log: every backup, verification, restore, deletion, key operation, incident step, approval and drill');

  audit
    .command('init')
    .description('create the audit signing key file (owner-only) and the Object Lock bucket if missing, and start the log')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const s = await initAudit(ctx.config, { logger: ctx.logger });
      ctx.logger.info({ location: s.location, keyId: s.keyId, created: s.created }, 'audit log ready');
      if (opts.json) json(s);
      else {
        const made = Object.entries(s.created).filter(([, v]) => v).map(([k]) => k);
        out(
          [
            `audit log     ${s.location}${made.length ? `  (created: ${made.join(', ')})` : ''}`,
            `origin        ${s.origin}`,
            `object lock   ${s.lockMode === 'none' ? 'none' : `${s.lockMode}, ${s.retention}`}`,
            `signing key   ${s.keyId}  ${s.signingKeyFile ?? '(from environment)'}`,
            `verifier key  ${s.verifierKey}`,
            '(give the verifier key to hosts that verify the log: audit.publicKeys)',
          ].join('\n'),
        );
      }
    });

  audit
    .command('verify')
    .description('check the whole log against its newest checkpoint and report modified, deleted, reordered or truncated entries and inconsistent or forged checkpoints (exit 3 when there is a problem)')
    .option('--json', 'machine-readable output')
    .option('--expect-size <n>', 'the log must hold at least this many sealed entries (a size you noted before)', sizeArg)
    .option('--witness <file>', 'checkpoint kept from an earlier verify (default: the local witness file, see README)')
    .option('--no-witness', 'neither read nor update the local witness file')
    .action(async (opts: { json?: boolean; expectSize?: number; witness?: string | false }, cmd: Command) => {
      const ctx = context(cmd);
      const log = await openAuditLog(ctx.config, { logger: ctx.logger, readOnly: true });
      const witnesses: AuditWitness[] = [];
      const witnessFile = opts.witness === false ? null : (opts.witness ?? defaultWitnessPath(log.origin));
      const witnessed = witnessFile ? await readWitness(witnessFile) : null;
      if (witnessFile && witnessed) witnesses.push({ note: witnessed, source: `witness file ${witnessFile}` });
      if (opts.expectSize !== undefined) witnesses.push({ size: opts.expectSize, source: '--expect-size' });
      const report = await log.verify({ witnesses });
      const notes: string[] = [];
      let witnessUpdated = false;
      if (witnessFile && report.ok && report.checkpoint && report.checkpoint.note !== witnessed) {
        await writeWitness(witnessFile, report.checkpoint.note);
        witnessUpdated = true;
        notes.push(`witness     saved checkpoint ${report.checkpoint.size} to ${witnessFile} (keep a copy elsewhere too)`);
      }
      ctx.logger.info({ location: report.location, ok: report.ok, problems: report.problems.length, size: report.checkpoint?.size ?? 0 }, 'audit log verified');
      if (opts.json) json({ ...report, witnessFile, witnessUpdated });
      else out(describeReport(report, notes));
      if (!report.ok) process.exitCode = 3;
    });

  audit
    .command('show')
    .description('audit entries, oldest first, filtered by asset, tenant, type, snapshot and time')
    .option('--asset <name>', 'only this asset')
    .option('--tenant <name>', 'only this tenant')
    .addOption(new Option('--type <type>', 'only this type').choices(AUDIT_ENTRY_TYPES))
    .option('--snapshot <id>', 'only this snapshot (id or prefix)')
    .option('--since <time>', 'from this time on (ISO, or a duration ago: 24h, 7d)', timeArg)
    .option('--until <time>', 'before this time (ISO, or a duration ago)', timeArg)
    .option('--json', 'machine-readable output')
    .action(async (opts: { asset?: string; tenant?: string; type?: AuditEntryType; snapshot?: string; since?: Date; until?: Date; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const log = await openAuditLog(ctx.config, { logger: ctx.logger, readOnly: true });
      const records = await log.query({ asset: opts.asset, tenant: opts.tenant, type: opts.type, snapshot: opts.snapshot, since: opts.since, until: opts.until });
      if (opts.json) {
        json(records.map((r) => ({ seq: r.seq, leafHash: r.leafHash, signatureValid: r.signatureValid, entry: r.entry })));
        return;
      }
      if (records.length === 0) {
        out('no audit entries match');
        return;
      }
      const rows = [['SEQ', 'TIME', 'TYPE', 'ACTION', 'OUTCOME', 'TENANT', 'ASSET', 'SNAPSHOT', 'ACTOR', 'DETAILS']];
      for (const r of records) {
        const e = r.entry;
        rows.push([
          `${r.seq}${r.signatureValid ? '' : '!'}`,
          e.time.slice(0, 19).replace('T', ' '),
          e.type,
          e.action ?? '',
          e.outcome,
          e.tenant ?? '',
          e.asset ?? '',
          (e.snapshot ?? '').slice(0, 12),
          `${e.actor.kind}:${e.actor.id}`,
          Object.entries(e.details ?? {}).map(([k, v]) => `${k}=${v}`).join(' '),
        ]);
      }
      out(table(rows));
      if (records.some((r) => !r.signatureValid)) out('! = not validly signed by a trusted audit key');
      out('(lifeline audit verify checks that the log is complete and unchanged)');
    });

  audit
    .command('record')
    .description('append an entry by hand (an incident step, an approval, a drill done outside Lifeline)')
    .addOption(new Option('--type <type>', 'what kind of step').choices(AUDIT_ENTRY_TYPES).makeOptionMandatory())
    .addOption(new Option('--outcome <outcome>', 'how it ended').choices(AUDIT_OUTCOMES).default('success'))
    .option('--action <action>', 'what exactly, kebab-case (e.g. paged-on-call, approved)')
    .option('--asset <name>', 'asset concerned')
    .option('--tenant <name>', 'tenant concerned')
    .option('--snapshot <id>', 'snapshot concerned (hex id)')
    .option('--node <name>', 'node concerned')
    .option('--actor <id>', 'who did it (default: the OS user)')
    .option('--detail <key=value>', 'a small detail, no secrets or file names (repeatable)', detailArg)
    .option('--json', 'machine-readable output')
    .action(async (opts: { type: AuditEntryType; outcome: AuditEntryInput['outcome']; action?: string; asset?: string; tenant?: string; snapshot?: string; node?: string; actor?: string; detail?: Record<string, string>; json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const log = await openAuditLog(ctx.config, { logger: ctx.logger });
      const res = await log
        .append({
          type: opts.type,
          action: opts.action,
          outcome: opts.outcome,
          actor: { kind: 'user', id: opts.actor ?? safeUserName() },
          asset: opts.asset,
          tenant: opts.tenant,
          snapshot: opts.snapshot,
          node: opts.node,
          details: opts.detail,
        })
        .catch((err: unknown) => {
          throw err instanceof AuditEntryError ? new UserError(err.message) : err;
        });
      if (opts.json) json(res);
      else out(`recorded audit entry ${res.seq} (sealed by checkpoint ${res.checkpoint})`);
    });
}
