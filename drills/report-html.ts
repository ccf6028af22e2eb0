/**
 * The drill report as one self-contained HTML page: inline CSS, an inline SVG
 * timeline, no scripts and nothing fetched (it opens offline, from a file, in
 * any browser). Every string from the report is HTML-escaped: reports carry
 * texts from outside (error messages, scenario names, fault details).
 *
 * Plain domain code (no Temporal).
 */
import type { DrillFaultRecord, DrillObjectiveResult, DrillReport, DrillTimelineEntry, TimelineEvent } from './report';

/** Escapes text for HTML content and double-quoted attribute values. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Human labels of the timeline events (the chart's row names). */
export const EVENT_LABELS: Record<TimelineEvent, string> = {
  'drill-started': 'drill started',
  'preconditions-met': 'preconditions met',
  'fault-injected': 'fault injected',
  detected: 'detected',
  'incident-opened': 'incident opened',
  approved: 'approved',
  'node-rebuilt': 'node rebuilt',
  'data-restored': 'data restored',
  'training-resumed': 'training resumed',
  'fault-reverted': 'fault reverted',
  'drill-finished': 'drill finished',
};

/** `73 s`, `4 min 05 s`, `1 h 02 min` */
export function formatSeconds(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return 'not measured';
  const r = Math.round(s);
  if (Math.abs(r) < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
  if (r < 3600) return `${Math.floor(r / 60)} min ${String(r % 60).padStart(2, '0')} s`;
  return `${Math.floor(r / 3600)} h ${String(Math.floor((r % 3600) / 60)).padStart(2, '0')} min`;
}

const ms = (iso: string | null | undefined): number | null => {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
};

/** Offset of an ISO time from the drill's start, in seconds (null when either is unknown). */
function offsetSeconds(report: DrillReport, at: string | null): number | null {
  const start = ms(report.startedAt);
  const t = ms(at);
  return start === null || t === null ? null : (t - start) / 1000;
}

function formatOffset(s: number | null): string {
  if (s === null) return '?';
  return `+${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
}

// Only web links become anchors: a report is read from disk and its URLs come from config.
const safeHref = (url: string | undefined): string | null => (url && /^https?:\/\//i.test(url) ? url : null);

const verdictBadge = (pass: boolean, text = pass ? 'PASS' : 'FAIL') => `<span class="badge ${pass ? 'pass' : 'fail'}">${escapeHtml(text)}</span>`;

/**
 * The timeline chart: one row per timeline entry (so labels never overlap),
 * a dot at its offset from the drill's start on a shared seconds axis, and
 * each fault's active span drawn as a bar (red and open-ended when it was
 * never reverted).
 */
export function renderTimelineSvg(report: DrillReport): string {
  const entries = [...report.timeline]
    .map((e, i) => ({ e, i, off: offsetSeconds(report, e.at) }))
    .sort((a, b) => (a.off ?? Infinity) - (b.off ?? Infinity) || a.i - b.i);
  const faults = report.faults.filter((f) => f.injectedAt);
  const known = [
    ...entries.map((x) => x.off),
    ...faults.flatMap((f) => [offsetSeconds(report, f.injectedAt), offsetSeconds(report, f.revertedAt)]),
    offsetSeconds(report, report.finishedAt),
  ].filter((x): x is number => x !== null && x >= 0);
  const span = Math.max(1, ...known);
  const labelW = 300;
  const plotW = 560;
  const rowH = 26;
  const top = 30;
  const rows = entries.length + faults.length;
  const height = top + Math.max(rows, 1) * rowH + 36;
  const width = labelW + plotW + 70;
  const x = (s: number) => labelW + (Math.min(Math.max(s, 0), span) / span) * plotW;

  const parts: string[] = [];
  // Axis ticks: 5 steps from 0 to the span.
  for (let k = 0; k <= 5; k++) {
    const s = (span * k) / 5;
    const px = x(s).toFixed(1);
    parts.push(`<line class="grid" x1="${px}" y1="${top - 8}" x2="${px}" y2="${height - 28}"/>`);
    parts.push(`<text class="tick" x="${px}" y="${height - 12}" text-anchor="middle">${escapeHtml(formatOffset(s).replace('+', ''))}</text>`);
  }
  parts.push(`<text class="tick" x="${labelW}" y="14">seconds from drill start (${escapeHtml(report.startedAt)})</text>`);

  entries.forEach(({ e, off }, row) => {
    const y = top + row * rowH + rowH / 2;
    const label = EVENT_LABELS[e.event] ?? e.event;
    const detail = e.detail ? ` — ${e.detail}` : '';
    parts.push(
      `<g class="event" data-event="${escapeHtml(e.event)}" data-offset="${off === null ? '' : off.toFixed(1)}">` +
        `<title>${escapeHtml(`${label} at ${e.at}${detail}`)}</title>` +
        `<text class="label" x="${labelW - 10}" y="${y + 4}" text-anchor="end">${escapeHtml(truncate(`${label}${detail}`, 44))}</text>` +
        `<line class="row" x1="${labelW}" y1="${y}" x2="${labelW + plotW}" y2="${y}"/>` +
        (off === null
          ? `<text class="offset" x="${labelW + 4}" y="${y + 4}">time unknown</text>`
          : `<circle class="dot ${dotClass(e.event)}" cx="${x(off).toFixed(1)}" cy="${y}" r="6"/>` +
            `<text class="offset" x="${(x(off) + 10).toFixed(1)}" y="${y + 4}">${escapeHtml(formatOffset(off))}</text>`) +
        `</g>`,
    );
  });
  faults.forEach((f, i) => {
    const y = top + (entries.length + i) * rowH + rowH / 2;
    const from = offsetSeconds(report, f.injectedAt) ?? 0;
    const to = f.reverted ? (offsetSeconds(report, f.revertedAt) ?? from) : span;
    const w = Math.max(3, x(to) - x(from));
    parts.push(
      `<g class="fault-span${f.reverted ? '' : ' unreverted'}" data-fault="${escapeHtml(f.id)}">` +
        `<title>${escapeHtml(`${f.kind} ${f.id}: injected ${f.injectedAt ?? '?'}, ${f.reverted ? `reverted ${f.revertedAt ?? '?'}` : 'NOT REVERTED'}`)}</title>` +
        `<text class="label" x="${labelW - 10}" y="${y + 4}" text-anchor="end">${escapeHtml(truncate(`fault ${f.kind}`, 44))}</text>` +
        `<rect x="${x(from).toFixed(1)}" y="${y - 6}" width="${w.toFixed(1)}" height="12" rx="3"/>` +
        `<text class="offset" x="${(x(from) + w + 6).toFixed(1)}" y="${y + 4}">${escapeHtml(f.reverted ? `${formatOffset(from)} → ${formatOffset(offsetSeconds(report, f.revertedAt))}` : 'not reverted')}</text>` +
        `</g>`,
    );
  });
  if (!rows) parts.push(`<text class="offset" x="${labelW}" y="${top + 16}">no events recorded</text>`);
  return (
    `<svg id="timeline-chart" xmlns="http://www.w3.org/2000/svg" role="img" aria-label="drill timeline" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">` +
    parts.join('') +
    `</svg>`
  );
}

function dotClass(e: TimelineEvent): string {
  if (e === 'fault-injected') return 'dot-fault';
  if (e === 'fault-reverted') return 'dot-revert';
  if (e === 'training-resumed' || e === 'data-restored' || e === 'node-rebuilt') return 'dot-recovery';
  return 'dot-step';
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function objectiveTarget(report: DrillReport, name: string): DrillObjectiveResult | undefined {
  return report.objectives.find((o) => o.name === name);
}

function measureCard(title: string, value: string, objective: DrillObjectiveResult | undefined, extra = ''): string {
  return (
    `<div class="card" data-measure="${escapeHtml(title.toLowerCase())}"><h3>${escapeHtml(title)}</h3>` +
    `<p class="big">${escapeHtml(value)}</p>` +
    (objective ? `<p>objective ${escapeHtml(objective.target)} ${verdictBadge(objective.pass)}</p>` : '<p>no objective</p>') +
    (extra ? `<p class="muted">${escapeHtml(extra)}</p>` : '') +
    `</div>`
  );
}

function faultRow(report: DrillReport, f: DrillFaultRecord): string {
  const detail = Object.entries(f.detail)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return (
    `<tr class="${f.reverted ? '' : 'unreverted'}" data-fault="${escapeHtml(f.id)}">` +
    `<td>${escapeHtml(f.id)}</td><td>${escapeHtml(f.kind)}</td>` +
    `<td>${escapeHtml(f.injectedAt ?? 'not injected')} <span class="muted">${escapeHtml(f.injectedAt ? formatOffset(offsetSeconds(report, f.injectedAt)) : '')}</span></td>` +
    `<td>${f.reverted ? `${escapeHtml(f.revertedAt ?? '?')} <span class="muted">${escapeHtml(formatOffset(offsetSeconds(report, f.revertedAt)))}</span>` : '<strong>NOT REVERTED</strong>'}</td>` +
    `<td>${escapeHtml(detail)}${f.error ? `<div class="error">${escapeHtml(f.error)}</div>` : ''}</td>` +
    `</tr>`
  );
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232b;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:24px}h2{margin:28px 0 10px;font-size:18px}h3{margin:0 0 6px;font-size:14px;color:#4a5563;text-transform:uppercase;letter-spacing:.04em}
.verdict{display:flex;align-items:center;gap:16px;padding:16px 20px;border-radius:8px;color:#fff;margin:12px 0}
.verdict.pass{background:#1f7a3a}.verdict.fail{background:#b3261e}
.verdict strong{font-size:32px;letter-spacing:.06em}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:12px;color:#fff}
.badge.pass{background:#1f7a3a}.badge.fail{background:#b3261e}
.alert{background:#fdecea;border:2px solid #b3261e;color:#6b140f;padding:12px 16px;border-radius:8px;margin:12px 0;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:12px 16px;min-width:200px}
.big{font-size:26px;font-weight:700;margin:4px 0}
.muted{color:#69727d;font-size:12px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}th,td{border:1px solid #d8dde3;padding:6px 8px;text-align:left;vertical-align:top}th{background:#eef1f4}
tr.unreverted td{background:#fdecea}
.error{color:#b3261e}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}dt{color:#69727d}
.chart{background:#fff;border:1px solid #d8dde3;border-radius:8px;padding:8px;overflow-x:auto}
svg text{font-family:inherit;font-size:12px;fill:#1d232b}svg .tick{fill:#69727d;font-size:11px}svg .offset{fill:#4a5563;font-size:11px}
svg .grid{stroke:#e3e7eb}svg .row{stroke:#f0f2f4}
svg .dot-step{fill:#2f5fb3}svg .dot-fault{fill:#b3261e}svg .dot-revert{fill:#7a5a00}svg .dot-recovery{fill:#1f7a3a}
svg .fault-span rect{fill:#e8a33d}svg .fault-span.unreverted rect{fill:#b3261e}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
`;

/** The whole page. */
export function renderDrillReportHtml(report: DrillReport): string {
  const pass = report.verdict === 'pass';
  const unreverted = report.faults.filter((f) => !f.reverted);
  const rto = objectiveTarget(report, 'rto');
  const rpo = objectiveTarget(report, 'rpo');
  const duration = offsetSeconds(report, report.finishedAt);
  const sections: string[] = [];

  sections.push(
    `<header><h1>Drill report: ${escapeHtml(report.scenario)}</h1>` +
      `<div id="verdict" class="verdict ${pass ? 'pass' : 'fail'}" data-verdict="${escapeHtml(report.verdict)}"><strong>${pass ? 'PASS' : 'FAIL'}</strong>` +
      `<span>${escapeHtml(pass ? 'every objective met and every fault reverted' : verdictReason(report))}</span></div>` +
      `<dl><dt>drill</dt><dd><code>${escapeHtml(report.id)}</code></dd>` +
      `<dt>environment</dt><dd>${escapeHtml(report.environment)}</dd>` +
      `<dt>node</dt><dd>${escapeHtml(report.node)}</dd>` +
      `<dt>started</dt><dd>${escapeHtml(report.startedAt)}</dd>` +
      `<dt>finished</dt><dd>${escapeHtml(report.finishedAt)}${duration === null ? '' : ` (${escapeHtml(formatSeconds(duration))})`}</dd>` +
      (report.aborted ? `<dt>aborted</dt><dd><strong>yes</strong> — the drill did not run to its end (faults reverted anyway)</dd>` : '') +
      `</dl></header>`,
  );

  if (unreverted.length) {
    sections.push(
      `<div id="unreverted" class="alert">${unreverted.length} fault(s) NOT REVERTED — the environment is still broken: ` +
        unreverted.map((f) => `${escapeHtml(f.kind)} (${escapeHtml(f.id)})${f.error ? `: ${escapeHtml(f.error)}` : ''}`).join('; ') +
        `</div>`,
    );
  }

  sections.push(
    `<section id="measured"><h2>Recovery objectives</h2><div class="cards">` +
      measureCard('RTO', formatSeconds(report.measured.rtoSeconds), rto, 'first fault injected → recovery complete') +
      measureCard(
        'RPO',
        formatSeconds(report.measured.rpoSeconds),
        rpo,
        `data-loss window${report.measured.rpoSteps === null ? '' : `; ${report.measured.rpoSteps} training step(s) lost`}`,
      ) +
      `</div></section>`,
  );

  sections.push(`<section id="timeline"><h2>Timeline</h2><div class="chart">${renderTimelineSvg(report)}</div>${timelineTable(report)}</section>`);

  sections.push(
    `<section id="objectives"><h2>Objectives</h2>` +
      (report.objectives.length
        ? `<table><thead><tr><th>objective</th><th>target</th><th>measured</th><th>result</th><th>detail</th></tr></thead><tbody>` +
          report.objectives
            .map(
              (o) =>
                `<tr data-objective="${escapeHtml(o.name)}" data-pass="${o.pass}"><td>${escapeHtml(o.name)}</td><td>${escapeHtml(o.target)}</td>` +
                `<td>${escapeHtml(o.measured ?? 'not measured')}</td><td>${verdictBadge(o.pass)}</td><td>${escapeHtml(o.detail ?? '')}</td></tr>`,
            )
            .join('') +
          `</tbody></table>`
        : `<p class="alert">no objectives were evaluated</p>`) +
      `</section>`,
  );

  sections.push(
    `<section id="restored"><h2>Restored</h2>` +
      (report.restored.length
        ? `<table><thead><tr><th>asset</th><th>snapshot</th><th>snapshot time</th><th>chosen as</th></tr></thead><tbody>` +
          report.restored
            .map(
              (r) =>
                `<tr data-asset="${escapeHtml(r.asset)}"><td>${escapeHtml(r.asset)}</td><td><code>${escapeHtml(r.snapshotId)}</code></td>` +
                `<td>${escapeHtml(r.snapshotTime)}</td><td>${escapeHtml(r.source)}</td></tr>`,
            )
            .join('') +
          `</tbody></table>`
        : `<p class="muted">nothing was restored</p>`) +
      `</section>`,
  );

  sections.push(
    `<section id="faults"><h2>Faults</h2>` +
      (report.faults.length
        ? `<table><thead><tr><th>id</th><th>kind</th><th>injected</th><th>reverted</th><th>detail</th></tr></thead><tbody>${report.faults.map((f) => faultRow(report, f)).join('')}</tbody></table>`
        : `<p class="muted">no fault was injected</p>`) +
      `</section>`,
  );

  sections.push(
    `<section id="workflows"><h2>Temporal workflow runs</h2>` +
      (report.workflows.length
        ? `<ul>` +
          report.workflows
            .map((w) => {
              const ids = `${w.workflowId}${w.runId ? ` (run ${w.runId})` : ''}`;
              const href = safeHref(w.url);
              return `<li data-role="${escapeHtml(w.role)}">${escapeHtml(w.role)}: ${href ? `<a href="${escapeHtml(href)}">${escapeHtml(ids)}</a>` : `<code>${escapeHtml(ids)}</code>`}</li>`;
            })
            .join('') +
          `</ul>`
        : `<p class="muted">none recorded</p>`) +
      `</section>`,
  );

  if (report.errors.length) {
    sections.push(`<section id="errors"><h2>Errors</h2><ul>${report.errors.map((e) => `<li class="error">${escapeHtml(e)}</li>`).join('')}</ul></section>`);
  }

  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">` +
    // No network, no scripts: the page must open offline and cannot run anything.
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(`Lifeline drill ${report.scenario}: ${pass ? 'PASS' : 'FAIL'}`)}</title>` +
    `<style>${CSS}</style></head><body><main>${sections.join('\n')}` +
    `<footer class="muted"><p>Lifeline drill report, format ${escapeHtml(report.format)} v${escapeHtml(report.version)}.</p></footer>` +
    `</main></body></html>\n`
  );
}

function timelineTable(report: DrillReport): string {
  if (!report.timeline.length) return '';
  const row = (e: DrillTimelineEntry) =>
    `<tr><td>${escapeHtml(formatOffset(offsetSeconds(report, e.at)))}</td><td>${escapeHtml(EVENT_LABELS[e.event] ?? e.event)}</td><td>${escapeHtml(e.at)}</td><td>${escapeHtml(e.detail ?? '')}</td></tr>`;
  return `<table class="timeline-table"><thead><tr><th>offset</th><th>event</th><th>time</th><th>detail</th></tr></thead><tbody>${report.timeline.map(row).join('')}</tbody></table>`;
}

/** Why a drill failed, in one line. */
export function verdictReason(report: Pick<DrillReport, 'aborted' | 'objectives' | 'faults'>): string {
  const why: string[] = [];
  if (report.aborted) why.push('the drill was aborted');
  const failed = report.objectives.filter((o) => !o.pass).map((o) => o.name);
  if (failed.length) why.push(`objective(s) not met: ${failed.join(', ')}`);
  if (!report.objectives.length) why.push('no objective was evaluated');
  const left = report.faults.filter((f) => !f.reverted).length;
  if (left) why.push(`${left} fault(s) not reverted`);
  return why.join('; ') || 'failed';
}
