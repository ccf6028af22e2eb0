// Go-built developer tools (Temporal CLI dev server, MinIO, mc), cached per
// version under LIFELINE_TOOLS_DIR (default ${XDG_CACHE_HOME:-~/.cache}/lifeline/tools).
//
// Dependency-free on purpose: devstack/bootstrap.mjs runs this before
// `npm ci` may have happened. Typed by tools.d.mts for the TypeScript side.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';

/** @type {Record<'temporal'|'minio'|'mc', {module: string, pkg: string, version: string, binary: string}>} */
export const TOOLS = {
  temporal: {
    module: 'github.com/temporalio/cli',
    pkg: 'github.com/temporalio/cli/cmd/temporal',
    version: 'v1.5.1',
    binary: 'temporal',
  },
  minio: {
    module: 'github.com/minio/minio',
    pkg: 'github.com/minio/minio',
    version: 'v0.0.0-20260212201848-7aac2a2c5b7c',
    binary: 'minio',
  },
  mc: {
    module: 'github.com/minio/mc',
    pkg: 'github.com/minio/mc',
    version: 'v0.0.0-20250313080218-cf909e1063a9',
    binary: 'mc',
  },
};

export function toolsDir() {
  if (process.env.LIFELINE_TOOLS_DIR) return process.env.LIFELINE_TOOLS_DIR;
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'lifeline', 'tools');
}

/** Absolute path of a tool's binary (which may not exist yet). */
export function toolPath(name) {
  const t = TOOLS[name];
  if (!t) throw new Error(`unknown tool ${name}`);
  return join(toolsDir(), `${t.binary}-${t.version}`, t.binary);
}

export function toolInstalled(name) {
  try {
    const st = statSync(toolPath(name));
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Take an exclusive lock (a directory, created atomically). A lock left by a
 * dead process on this host is broken. Returns a release function.
 */
async function acquireLock(lockDir, what, log) {
  let announced = false;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(join(lockDir, 'owner.json'), JSON.stringify({ pid: process.pid, host: hostname(), at: new Date().toISOString() }));
      return () => rmSync(lockDir, { recursive: true, force: true });
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    let owner = null;
    try {
      owner = JSON.parse(readFileSync(join(lockDir, 'owner.json'), 'utf8'));
    } catch {
      // owner file not written yet, or the lock is being released
    }
    if (owner && owner.host === hostname() && !pidAlive(owner.pid)) {
      log(`[tools] breaking stale lock for ${what} (pid ${owner.pid} is gone)`);
      rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!announced) {
      log(`[tools] waiting for another build of ${what}${owner ? ` (pid ${owner.pid})` : ''} to finish…`);
      announced = true;
    }
    await sleep(2000);
  }
}

function run(cmd, args, opts) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ? `signal ${signal}` : `exit ${code}`})`));
    });
  });
}

/** Seconds spent building each tool in this process, for reports. */
export const buildTimes = {};

/**
 * Make sure a tool is built. Builds with `go install` into a temporary
 * directory and renames it into place, under a lock so two concurrent clones
 * or test runs never build the same tool twice. The go output streams to this
 * process's stderr so people can watch progress.
 */
export async function ensureTool(name, { log = (m) => process.stderr.write(m + '\n') } = {}) {
  if (toolInstalled(name)) return toolPath(name);
  const t = TOOLS[name];
  const dir = toolsDir();
  mkdirSync(dir, { recursive: true });
  const release = await acquireLock(join(dir, `.${t.binary}-${t.version}.lock`), `${t.binary} ${t.version}`, log);
  try {
    if (toolInstalled(name)) return toolPath(name);
    const final = join(dir, `${t.binary}-${t.version}`);
    const tmp = join(dir, `.build-${t.binary}-${t.version}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    log(`[tools] building ${t.pkg}@${t.version} with go install (this takes a few minutes on 2 cores; output follows)`);
    const started = Date.now();
    try {
      await run('go', ['install', '-v', `${t.pkg}@${t.version}`], {
        env: { ...process.env, CGO_ENABLED: '0', GOBIN: tmp, GOFLAGS: process.env.GOFLAGS ?? '' },
      });
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (e.code === 'ENOENT') throw new Error('`go` was not found on PATH: install Go ≥ 1.25 to build the dev tools');
      throw e;
    }
    if (!existsSync(join(tmp, t.binary))) throw new Error(`go install finished but ${t.binary} is missing in ${tmp}`);
    // An empty or partial directory left by an interrupted older layout would block the rename.
    if (existsSync(final)) rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    buildTimes[name] = (Date.now() - started) / 1000;
    log(`[tools] built ${t.binary} ${t.version} in ${buildTimes[name].toFixed(0)} s → ${join(final, t.binary)}`);
    return join(final, t.binary);
  } finally {
    release();
  }
}

/** Build every tool that is missing, one after the other (2 cores: parallel builds only thrash). */
export async function ensureTools(names = Object.keys(TOOLS), opts) {
  const out = {};
  for (const n of names) out[n] = await ensureTool(n, opts);
  return out;
}
