/**
 * Drill report files: `<dataDir>/drills/<id>/report.json` (the DrillReport)
 * and `report.html` (its self-contained page). Written atomically (temporary
 * file, then rename) so a reader never sees half a report; read back with a
 * full schema check so a damaged file is a clear error, not a crash later.
 *
 * Plain domain code (no Temporal).
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { UserError } from '../config/errors';
import { FAULT_KINDS } from './scenario';
import { TIMELINE_EVENTS, type DrillReport } from './report';
import { renderDrillReportHtml } from './report-html';

/** A drill id is a workflow id and a folder name: no path separators, no leading dot. */
const DRILL_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

export function isValidDrillId(id: string): boolean {
  return DRILL_ID.test(id) && !id.includes('..');
}

const Iso = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO 8601 time');
const Seconds = z.number().finite().nullable();

export const DrillReportSchema = z
  .object({
    format: z.literal('lifeline-drill-report'),
    version: z.literal(1),
    id: z.string().regex(DRILL_ID, 'expected a drill id'),
    scenario: z.string().min(1),
    environment: z.literal('staging'),
    node: z.string().min(1),
    startedAt: Iso,
    finishedAt: Iso,
    verdict: z.enum(['pass', 'fail']),
    aborted: z.boolean(),
    timeline: z.array(z.object({ event: z.enum(TIMELINE_EVENTS), at: Iso, detail: z.string().optional() })),
    measured: z.object({ rtoSeconds: Seconds, rpoSeconds: Seconds, rpoSteps: Seconds }),
    objectives: z.array(
      z.object({ name: z.string().min(1), target: z.string(), measured: z.string().nullable(), pass: z.boolean(), detail: z.string().optional() }),
    ),
    restored: z.array(z.object({ asset: z.string(), snapshotId: z.string(), snapshotTime: z.string(), source: z.enum(['last-verified', 'override']) })),
    faults: z.array(
      z.object({
        id: z.string().min(1),
        kind: z.enum(FAULT_KINDS),
        injectedAt: Iso.nullable(),
        revertedAt: Iso.nullable(),
        reverted: z.boolean(),
        detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
        error: z.string().optional(),
      }),
    ),
    workflows: z.array(z.object({ role: z.string(), workflowId: z.string(), runId: z.string().optional(), url: z.string().optional() })),
    errors: z.array(z.string()),
  })
  .strip();

// The schema and the contract type must not drift apart.
type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _schemaMatchesContract: SameShape<z.infer<typeof DrillReportSchema>, DrillReport> = true;
void _schemaMatchesContract;

export function drillsDir(dataDir: string): string {
  return join(dataDir, 'drills');
}

export function drillReportPaths(dataDir: string, id: string): { dir: string; jsonPath: string; htmlPath: string } {
  if (!isValidDrillId(id)) throw new UserError(`invalid drill id ${JSON.stringify(id)}: expected letters, digits, . _ : - (no path separators)`);
  const dir = join(drillsDir(dataDir), id);
  return { dir, jsonPath: join(dir, 'report.json'), htmlPath: join(dir, 'report.html') };
}

async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(tmp, data, { mode: 0o644 });
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Writes report.json and report.html (the JSON first: the page is derived from it). Idempotent. */
export async function writeDrillReport(dataDir: string, report: DrillReport): Promise<{ jsonPath: string; htmlPath: string }> {
  const checked = DrillReportSchema.safeParse(report);
  if (!checked.success) throw new Error(`drill report ${report.id} is malformed: ${problems(checked.error).join('; ')}`);
  const { dir, jsonPath, htmlPath } = drillReportPaths(dataDir, report.id);
  await mkdir(dir, { recursive: true });
  await writeAtomic(jsonPath, JSON.stringify(checked.data, null, 2) + '\n');
  await writeAtomic(htmlPath, renderDrillReportHtml(checked.data));
  return { jsonPath, htmlPath };
}

function problems(err: z.ZodError): string[] {
  return err.issues.map((i) => `${i.path.map(String).join('.') || '(top level)'}: ${i.message}`);
}

/** Ids of the drills that have a report, newest first (by the report's modification time). */
export async function listDrillReports(dataDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(drillsDir(dataDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const withTimes = await Promise.all(
    names.filter(isValidDrillId).map(async (id) => {
      try {
        return { id, t: (await stat(join(drillsDir(dataDir), id, 'report.json'))).mtimeMs };
      } catch {
        return null;
      }
    }),
  );
  return withTimes
    .filter((x): x is { id: string; t: number } => x !== null)
    .sort((a, b) => b.t - a.t || a.id.localeCompare(b.id))
    .map((x) => x.id);
}

/**
 * Reads and validates a drill's report. An unknown id names the known ones; a
 * damaged file names the file and each problem.
 */
export async function readDrillReport(dataDir: string, id: string): Promise<{ report: DrillReport; jsonPath: string; htmlPath: string }> {
  const { jsonPath, htmlPath } = drillReportPaths(dataDir, id);
  let text: string;
  try {
    text = await readFile(jsonPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read drill report ${jsonPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    const known = await listDrillReports(dataDir);
    throw new UserError(
      `no drill report ${JSON.stringify(id)} in ${drillsDir(dataDir)}; ` +
        (known.length ? `known drills (newest first): ${known.slice(0, 20).join(', ')}${known.length > 20 ? `, … (${known.length} in all)` : ''}` : 'no drill has a report yet'),
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(`drill report ${jsonPath} is not valid JSON: ${(err as Error).message}`);
  }
  const r = DrillReportSchema.safeParse(data);
  if (!r.success) throw new UserError(`drill report ${jsonPath} is damaged:\n${problems(r.error).map((p) => `  ${p}`).join('\n')}`);
  return { report: r.data, jsonPath, htmlPath };
}
