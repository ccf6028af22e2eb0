/** `lifeline drill report <id> [--json]`: a finished drill's verdict, RTO/RPO against objectives, faults, and where its HTML page is. */
import type { Command } from 'commander';
import { stackSettings } from '../devstack/layout';
import { readDrillReport } from '../drills/report-files';
import { formatSeconds, verdictReason } from '../drills/report-html';
import type { DrillReport } from '../drills/report';
import { context, json, out } from './context';

/** The summary lines `drill report` prints (also used by `lifeline demo`). */
export function formatDrillSummary(r: DrillReport, htmlPath: string): string {
  const obj = (name: string) => r.objectives.find((o) => o.name === name);
  const vs = (name: string) => {
    const o = obj(name);
    return o ? ` (objective ${o.target}: ${o.pass ? 'pass' : 'FAIL'})` : '';
  };
  const lines = [
    `drill ${r.id}: ${r.verdict === 'pass' ? 'PASS' : `FAIL — ${verdictReason(r)}`}`,
    `  scenario ${r.scenario} on node ${r.node} (${r.environment}), ${r.startedAt} → ${r.finishedAt}${r.aborted ? ', ABORTED' : ''}`,
    `  RTO ${formatSeconds(r.measured.rtoSeconds)}${vs('rto')}`,
    `  RPO ${formatSeconds(r.measured.rpoSeconds)}${r.measured.rpoSteps === null ? '' : `, ${r.measured.rpoSteps} step(s) lost`}${vs('rpo')}`,
    `  objectives:`,
    ...(r.objectives.length ? r.objectives.map((o) => `    ${o.pass ? 'pass' : 'FAIL'}  ${o.name} ${o.target}: measured ${o.measured ?? 'nothing'}${o.detail ? ` — ${o.detail}` : ''}`) : ['    (none evaluated)']),
    `  faults:`,
    ...(r.faults.length
      ? r.faults.map((f) => `    ${f.reverted ? 'reverted    ' : 'NOT REVERTED'}  ${f.kind} ${f.id}${f.injectedAt ? ` injected ${f.injectedAt}` : ' not injected'}${f.revertedAt ? `, reverted ${f.revertedAt}` : ''}${f.error ? ` — ${f.error}` : ''}`)
      : ['    (none)']),
  ];
  if (r.restored.length) lines.push('  restored:', ...r.restored.map((a) => `    ${a.asset} from snapshot ${a.snapshotId.slice(0, 12)} of ${a.snapshotTime} (${a.source})`));
  if (r.errors.length) lines.push('  errors:', ...r.errors.map((e) => `    ${e}`));
  lines.push(`report: ${htmlPath}`);
  return lines.join('\n');
}

/** Adds `report` to the `drill` command group. */
export function addDrillReportCommand(drill: Command): Command {
  return drill
    .command('report')
    .description("show a drill's report: verdict, RTO/RPO against objectives, each objective, faults reverted, and the path of its HTML page")
    .argument('<id>', 'drill id (as `lifeline drill run` printed it)')
    .option('--json', 'print the report JSON')
    .action(async (id: string, opts: { json?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const { report, htmlPath } = await readDrillReport(stackSettings(ctx.config).dataDir, id);
      if (opts.json) json(report);
      else out(formatDrillSummary(report, htmlPath));
      if (report.verdict !== 'pass') process.exitCode = 3;
    });
}
