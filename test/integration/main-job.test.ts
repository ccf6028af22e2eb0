/**
 * The main job: `lifeline demo` on a private data folder and private ports
 * (its own embedded Temporal and MinIO, as on a fresh machine) sets up the
 * sample platform, backs it up and verifies it, runs the main-job drill (node
 * destroyed, newest checkpoint snapshot corrupted), recovers, and prints the
 * verdict, RTO/RPO and the report path; exit 0 only when the drill passed.
 * The report then opens in headless Chromium with its timeline and verdicts.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../../devstack/process';
import { DEMO } from '../../demo/platform';
import { openReportInChromium } from '../support/chromium';
import { runCli } from '../support/cli';

let dir: string;
let configFile: string;

/** Processes whose command line names the demo's config file or node folder (its workers, agent and training job). */
function demoProcesses(): string[] {
  const found: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(join(dir, 'data', 'demo'))) found.push(`${e}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lifeline-main-job-'));
  const [port, uiPort, minioPort, consolePort] = await freePorts(4);
  configFile = join(dir, 'lifeline.yaml');
  writeFileSync(
    configFile,
    [
      'devstack:',
      `  dataDir: ${join(dir, 'data')}`,
      `  temporal: { port: ${port}, uiPort: ${uiPort} }`,
      `  minio: { port: ${minioPort}, consolePort: ${consolePort} }`,
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await runCli(['--config', configFile, 'down'], { timeoutMs: 120_000 }).catch(() => undefined);
  if (!process.env.LIFELINE_TEST_KEEP_DATA) rmSync(dir, { recursive: true, force: true });
});

describe('the main job (lifeline demo)', () => {
  it('sets up the platform, runs the drill, recovers, prints the verdict, RTO/RPO and the report path; exit 0; the report opens in Chromium', async () => {
    const t0 = Date.now();
    const r = await runCli(['--config', configFile, 'demo'], { timeoutMs: 900_000 });
    const seconds = Math.round((Date.now() - t0) / 1000);
    console.log(`main job: exit ${r.code} in ${seconds} s\n${r.stdout}`);
    expect(r.code, `${r.stdout}\n${r.stderr.slice(-4000)}`).toBe(0);
    // progress through every phase
    for (let n = 1; n <= 7; n++) expect(r.stdout).toContain(`[${n}/7] `);
    expect(r.stdout).toMatch(/checkpoints [1-9]\d*\/\d+ verified/);
    // the verdict, RTO/RPO against the objectives, training resumed, the report path
    expect(r.stdout).toMatch(/^drill drill-main-job-\S+: PASS$/m);
    expect(r.stdout).toMatch(/^ {2}RTO \d.* \(objective 5m: pass\)$/m);
    expect(r.stdout).toMatch(/^ {2}RPO \d.* \(objective 5m: pass\)$/m);
    expect(r.stdout).toMatch(/^ {4}reverted {6}corrupt-object /m);
    expect(r.stdout).toMatch(/^ {4}reverted {6}destroy-node /m);
    expect(r.stdout).toMatch(new RegExp(`^training ${DEMO.job}: resumed from step [1-9]\\d*, now at step \\d+`, 'm'));
    expect(r.stdout).toMatch(/^main job PASSED in \d+ s: drill PASS, RTO .+, RPO .+; open the report: \S+report\.html$/m);
    const reportPath = /^report: (\S+report\.html)$/m.exec(r.stdout)?.[1];
    expect(reportPath).toBeDefined();
    expect(reportPath!.startsWith(join(dir, 'data', 'drills'))).toBe(true);
    expect(existsSync(reportPath!)).toBe(true);
    const report = JSON.parse(readFileSync(reportPath!.replace(/report\.html$/, 'report.json'), 'utf8'));
    expect(report).toMatchObject({ verdict: 'pass', aborted: false, node: DEMO.node, environment: 'staging' });
    expect(report.faults.every((f: { reverted: boolean }) => f.reverted)).toBe(true);
    expect(report.restored.find((a: { asset: string }) => a.asset === DEMO.assets.checkpoints)).toBeDefined();

    // the page, in Chromium: the verdict, each timeline event on the chart, the objectives; nothing fetched
    const page = await openReportInChromium(reportPath!);
    expect(page.requests).toEqual([]);
    expect(page.verdictVisible).toBe(true);
    expect(page.verdictText).toBe('PASS');
    const events = page.chartEvents.map((e) => e.event);
    for (const e of ['fault-injected', 'detected', 'incident-opened', 'approved', 'node-rebuilt', 'data-restored', 'training-resumed', 'fault-reverted']) expect(events).toContain(e);
    expect(page.chartEvents.every((e) => e.dotVisible)).toBe(true);
    expect(page.objectives.length).toBeGreaterThanOrEqual(2);
    expect(page.objectives.every((o) => o.visible && o.result === 'PASS')).toBe(true);

    // cleaned up: no demo worker, agent or training job left; the stack stays up for the next run
    expect(demoProcesses()).toEqual([]);
    const status = await runCli(['--config', configFile, 'status', '--json']);
    expect(status.code, status.stdout).toBe(0);
  }, 1_000_000);
});
