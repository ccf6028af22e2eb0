/** The drill report page and files: escaping, unreverted faults, missing measurements, atomic files and clear read errors. */
import { mkdtemp, readFile, rm, writeFile, mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatDrillSummary } from '../../cli/drill-report';
import { verdictOf } from '../../drills/report';
import { readDrillReport, writeDrillReport } from '../../drills/report-files';
import { escapeHtml, formatSeconds, renderDrillReportHtml } from '../../drills/report-html';
import { sampleDrillReport } from '../support/drill-report';

describe('renderDrillReportHtml', () => {
  it('shows the verdict, measurements, every timeline event, objectives, restored snapshots and workflow links', () => {
    const r = sampleDrillReport();
    const html = renderDrillReportHtml(r);
    expect(html).toMatch(/<div id="verdict" class="verdict pass" data-verdict="pass"><strong>PASS<\/strong>/);
    expect(html).toContain('1 min 09 s'); // RTO 69 s
    expect(html).toContain('41.5 s');
    expect(html).toContain('20 training step(s) lost');
    for (const e of new Set(r.timeline.map((t) => t.event))) expect(html).toContain(`data-event="${e}"`);
    // offsets from the drill start
    expect(html).toMatch(/data-event="training-resumed" data-offset="72\.0"/);
    expect(html).toContain('+72 s');
    expect(html).toContain('b'.repeat(64));
    expect(html).toContain('<a href="http://127.0.0.1:8233/namespaces/default/workflows/drill-main-job-20261126T100000Z">');
    expect(html).toContain('<code>incident-node-lost-gpu-1</code>');
    expect(html).not.toContain('id="unreverted"');
  });

  it('is self-contained: no scripts, nothing loaded by URL', () => {
    const html = renderDrillReportHtml(sampleDrillReport());
    expect(html).not.toMatch(/<script|<link|<img|<iframe|@import|url\(/i);
    expect(html).toContain(`default-src 'none'`);
    // the only URLs are link targets and the SVG namespace
    const urls = [...html.matchAll(/(?:src|href)=/g)];
    expect(urls.length).toBe(1);
  });

  it('escapes every outside string', () => {
    const evil = `<script>alert("x")</script>&'`;
    const r = sampleDrillReport({
      scenario: evil,
      node: evil,
      errors: [evil],
      timeline: [{ event: 'detected', at: '2026-11-26T10:00:05.000Z', detail: evil }],
      objectives: [{ name: evil, target: evil, measured: evil, pass: false, detail: evil }],
      restored: [{ asset: evil, snapshotId: evil, snapshotTime: evil, source: 'override' }],
      faults: [{ id: evil, kind: 'ransomware', injectedAt: null, revertedAt: null, reverted: false, detail: { [evil]: evil }, error: evil }],
      workflows: [{ role: evil, workflowId: evil, url: `javascript:alert(1)` }],
      verdict: 'fail',
    });
    const html = renderDrillReportHtml(r);
    expect(html).not.toContain('<script');
    expect(html).not.toContain('javascript:');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;');
    expect(escapeHtml(`a"b'<>&`)).toBe('a&quot;b&#39;&lt;&gt;&amp;');
  });

  it('shows an unreverted fault prominently and fails', () => {
    const base = sampleDrillReport();
    const faults = [base.faults[0]!, { ...base.faults[1]!, reverted: false, revertedAt: null, error: 'MinIO did not come back' }];
    const r = { ...base, faults, verdict: verdictOf({ ...base, faults }) };
    expect(r.verdict).toBe('fail');
    const html = renderDrillReportHtml(r);
    expect(html).toMatch(/<div id="unreverted" class="alert">1 fault\(s\) NOT REVERTED[^<]*corrupt-object \(f1-corrupt-object\): MinIO did not come back/);
    expect(html).toContain('<tr class="unreverted" data-fault="f1-corrupt-object">');
    expect(html).toContain('class="fault-span unreverted"');
    expect(html).toContain('verdict fail');
    expect(html).toContain('1 fault(s) not reverted');
  });

  it('copes with missing measurements and an aborted drill', () => {
    const r = sampleDrillReport({
      aborted: true,
      verdict: 'fail',
      measured: { rtoSeconds: null, rpoSeconds: null, rpoSteps: null },
      objectives: [{ name: 'rto', target: '1s', measured: null, pass: false, detail: 'training never resumed' }],
      restored: [],
      timeline: [{ event: 'drill-started', at: '2026-11-26T10:00:00.000Z' }, { event: 'fault-injected', at: 'garbage' as string }],
      errors: ['timed out after 30m'],
    });
    const html = renderDrillReportHtml(r);
    expect(html).toContain('not measured');
    expect(html).toContain('time unknown');
    expect(html).toContain('the drill was aborted');
    expect(html).toContain('objective(s) not met: rto');
    expect(html).toContain('nothing was restored');
    expect(html).toContain('timed out after 30m');
    expect(formatSeconds(null)).toBe('not measured');
    expect(formatSeconds(3725)).toBe('1 h 02 min');
  });
});

describe('drill report files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drill-report-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes report.json and report.html and reads the report back', async () => {
    const r = sampleDrillReport();
    const { jsonPath, htmlPath } = await writeDrillReport(dir, r);
    expect(jsonPath).toBe(join(dir, 'drills', r.id, 'report.json'));
    expect(htmlPath).toBe(join(dir, 'drills', r.id, 'report.html'));
    expect(await readFile(htmlPath, 'utf8')).toContain('data-verdict="pass"');
    expect((await readDrillReport(dir, r.id)).report).toEqual(r);
    // written again (a retried activity): same result, no temporary files left
    await writeDrillReport(dir, r);
    expect((await readdir(join(dir, 'drills', r.id))).sort()).toEqual(['report.html', 'report.json']);
  });

  it('an unknown id names the known drills; a bad id is refused', async () => {
    await writeDrillReport(dir, sampleDrillReport({ id: 'drill-b' }));
    await expect(readDrillReport(dir, 'drill-nope')).rejects.toThrow(/no drill report "drill-nope" in .*drills; known drills \(newest first\): drill-b, drill-main-job/);
    await expect(readDrillReport(dir, '../etc')).rejects.toThrow(/invalid drill id "..\/etc"/);
    const empty = await mkdtemp(join(tmpdir(), 'drill-report-empty-'));
    await expect(readDrillReport(empty, 'x')).rejects.toThrow(/no drill has a report yet/);
    await rm(empty, { recursive: true });
  });

  it('a corrupt report is a clear error naming the file and the problem', async () => {
    await mkdir(join(dir, 'drills', 'drill-bad'), { recursive: true });
    await writeFile(join(dir, 'drills', 'drill-bad', 'report.json'), '{"format": "lifeline-drill-report", ');
    await expect(readDrillReport(dir, 'drill-bad')).rejects.toThrow(/drill report .*drill-bad\/report.json is not valid JSON/);
    const broken = { ...sampleDrillReport({ id: 'drill-bad' }), verdict: 'maybe', faults: [{ id: 'x', kind: 'flood' }] };
    await writeFile(join(dir, 'drills', 'drill-bad', 'report.json'), JSON.stringify(broken));
    await expect(readDrillReport(dir, 'drill-bad')).rejects.toThrow(/report.json is damaged:\n  verdict: .*\n  faults.0.kind: /);
  });

  it('refuses to write a malformed report', async () => {
    await expect(writeDrillReport(dir, { ...sampleDrillReport(), startedAt: 'yesterday' })).rejects.toThrow(/malformed: startedAt: expected an ISO 8601 time/);
  });
});

describe('formatDrillSummary', () => {
  it('prints the verdict, RTO/RPO against objectives, each objective, faults and the page path', () => {
    const s = formatDrillSummary(sampleDrillReport(), '/x/report.html');
    expect(s).toMatch(/^drill drill-main-job-20261126T100000Z: PASS\n/);
    expect(s).toContain('RTO 1 min 09 s (objective 5m: pass)');
    expect(s).toContain('RPO 41.5 s, 20 step(s) lost (objective 10m: pass)');
    expect(s).toContain('pass  training-resumes training-resumes: measured step 40 → 61');
    expect(s).toContain('reverted      destroy-node f0-destroy-node');
    expect(s.endsWith('report: /x/report.html')).toBe(true);
  });
});
