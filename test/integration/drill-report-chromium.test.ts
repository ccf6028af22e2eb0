/** The drill report page rendered in headless Chromium: the timeline chart shows every event, the verdicts are visible, nothing is fetched. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeDrillReport } from '../../drills/report-files';
import { openReportInChromium } from '../support/chromium';
import { runCli } from '../support/cli';
import { sampleDrillReport } from '../support/drill-report';

describe('drill report page in Chromium', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'drill-chromium-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a passed drill: PASS, every timeline event drawn at its offset, objectives passed, no request', async () => {
    const report = sampleDrillReport();
    const { htmlPath } = await writeDrillReport(dir, report);
    const page = await openReportInChromium(htmlPath);
    expect(page.requests).toEqual([]);
    expect(page.title).toBe('Lifeline drill main-job: PASS');
    expect(page.verdictVisible).toBe(true);
    expect(page.verdictText).toBe('PASS');
    expect(page.chartBox!.width).toBeGreaterThan(300);
    expect(page.chartEvents.map((e) => e.event)).toEqual(report.timeline.map((e) => e.event));
    expect(page.chartEvents.every((e) => e.dotVisible)).toBe(true);
    expect(page.chartEvents.find((e) => e.event === 'training-resumed')).toMatchObject({ offset: '+72 s', label: expect.stringContaining('training resumed') });
    expect(page.chartEvents.find((e) => e.event === 'detected')?.offset).toBe('+21 s');
    expect(page.objectives).toEqual([
      { name: 'rto', pass: 'true', visible: true, result: 'PASS' },
      { name: 'rpo', pass: 'true', visible: true, result: 'PASS' },
      { name: 'training-resumes', pass: 'true', visible: true, result: 'PASS' },
    ]);
    expect(page.measureCards[0]).toMatch(/^RTO 1 min 09 s objective 5m PASS/);
    expect(page.unrevertedAlert).toBeNull();
  });

  it('an unreachable RTO and an unreverted fault: FAIL, the failed objective and the alert are visible', async () => {
    const base = sampleDrillReport({ id: 'drill-fail' });
    const report = {
      ...base,
      verdict: 'fail' as const,
      objectives: [{ name: 'rto', target: '1s', measured: '69 s', pass: false }, base.objectives[1]!],
      faults: [base.faults[0]!, { ...base.faults[1]!, reverted: false, revertedAt: null, error: 'revert failed' }],
    };
    const { htmlPath } = await writeDrillReport(dir, report);
    const page = await openReportInChromium(htmlPath);
    expect(page.requests).toEqual([]);
    expect(page.verdictText).toBe('FAIL');
    expect(page.objectives[0]).toEqual({ name: 'rto', pass: 'false', visible: true, result: 'FAIL' });
    expect(page.measureCards[0]).toMatch(/^RTO 1 min 09 s objective 1s FAIL/);
    expect(page.unrevertedAlert).toMatch(/1 fault\(s\) NOT REVERTED.*corrupt-object \(f1-corrupt-object\): revert failed/);
  });

  it('lifeline drill report <id> prints the summary and the page path; --json the report; an unknown id lists the known ones', async () => {
    const env = { LIFELINE_DATA_DIR: dir };
    const pass = await runCli(['drill', 'report', 'drill-main-job-20261126T100000Z'], { env });
    expect(pass.stderr).toBe('');
    expect(pass.code).toBe(0);
    expect(pass.stdout).toContain('drill drill-main-job-20261126T100000Z: PASS');
    expect(pass.stdout).toContain('RTO 1 min 09 s (objective 5m: pass)');
    expect(pass.stdout).toContain(`report: ${join(dir, 'drills', 'drill-main-job-20261126T100000Z', 'report.html')}`);

    const fail = await runCli(['drill', 'report', 'drill-fail'], { env });
    expect(fail.code).toBe(3);
    expect(fail.stdout).toMatch(/drill drill-fail: FAIL — objective\(s\) not met: rto; 1 fault\(s\) not reverted/);
    expect(fail.stdout).toMatch(/NOT REVERTED {2}corrupt-object f1-corrupt-object/);

    const asJson = await runCli(['drill', 'report', 'drill-fail', '--json'], { env });
    expect(JSON.parse(asJson.stdout)).toMatchObject({ id: 'drill-fail', verdict: 'fail', measured: { rtoSeconds: 69 } });

    const unknown = await runCli(['drill', 'report', 'drill-nope'], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr).toMatch(/^lifeline: no drill report "drill-nope" in .*; known drills \(newest first\): drill-fail, drill-main-job-20261126T100000Z\n$/);
  });
});
