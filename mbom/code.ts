/**
 * The training job's code hash recorded in the Model BOM: SHA-256 over one
 * line per code file, `<sha256 of the file>  <path relative to workingDir>`,
 * sorted by path (the layout of `sha256sum`, so a person can recompute it:
 * `find <paths> -type f | sort | xargs sha256sum | sha256sum` from workingDir).
 * Runs on the job's node, where the code lives. No Temporal imports.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UserError } from '../config/errors';
import type { TrainingJobConfig } from '../config/training-jobs';

export interface CodeDigest {
  sha256: string;
  files: number;
  /** the paths (relative to workingDir) that were hashed */
  paths: string[];
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

async function walk(abs: string, out: string[]): Promise<void> {
  const st = await lstat(abs);
  if (st.isFile()) out.push(abs);
  else if (st.isDirectory()) for (const name of await readdir(abs)) await walk(join(abs, name), out);
}

const exists = (p: string) => lstat(p).then(() => true, () => false);

/** Which paths count as the job's code: `code`, else the command's arguments that name files or folders under workingDir. */
export async function codePaths(job: Pick<TrainingJobConfig, 'command' | 'code'>, workingDir: string): Promise<string[]> {
  if (job.code) return job.code;
  const found: string[] = [];
  for (const arg of job.command.slice(1)) {
    if (arg.startsWith('-') || isAbsolute(arg)) continue;
    const abs = resolve(workingDir, arg);
    if (!abs.startsWith(workingDir + sep)) continue;
    if (await exists(abs)) found.push(arg);
  }
  return found;
}

export async function trainingCodeDigest(jobName: string, job: Pick<TrainingJobConfig, 'command' | 'code'>, workingDir: string): Promise<CodeDigest> {
  const paths = await codePaths(job, workingDir);
  if (paths.length === 0) {
    throw new UserError(`trainingJobs.${jobName}: no code to hash: none of the command's arguments names a file under ${workingDir}; list the code with trainingJobs.${jobName}.code`);
  }
  const files: string[] = [];
  for (const p of paths) {
    const abs = resolve(workingDir, p);
    if (!(await exists(abs))) throw new UserError(`trainingJobs.${jobName}.code: ${p} does not exist under ${workingDir}`);
    await walk(abs, files);
  }
  const rels = [...new Set(files.map((f) => relative(workingDir, f).split(sep).join('/')))].sort();
  const h = createHash('sha256');
  for (const rel of rels) h.update(`${await fileSha256(join(workingDir, rel))}  ${rel}\n`);
  return { sha256: h.digest('hex'), files: rels.length, paths };
}
