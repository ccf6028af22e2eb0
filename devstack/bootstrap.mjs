#!/usr/bin/env node
// Dependency-free bootstrap run by `npm start` / `npm test` (prestart/pretest)
// so both work on a fresh clone:
//   1. `npm ci` when node_modules is missing or does not match package-lock.json
//   2. build the Go dev tools (Temporal CLI, MinIO, mc) into the tools cache when missing
//   3. install the Debian packages the suite needs (age, restic, jq, chromium) when missing
// Usage: node devstack/bootstrap.mjs [--skip-npm] [--skip-tools] [--skip-apt]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTools, toolInstalled, TOOLS, toolsDir } from './tools.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const log = (m) => process.stderr.write(`[bootstrap] ${m}\n`);
const started = Date.now();

function sh(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', cwd: root, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} exited with ${r.status ?? r.signal}`);
}

// ---- 1. node_modules -------------------------------------------------------
const MARKER = join(root, 'node_modules', '.lifeline-bootstrap.json');

function lockHash() {
  return createHash('sha256').update(readFileSync(join(root, 'package-lock.json'))).digest('hex');
}

/** Why node_modules needs `npm ci`, or null when it matches the lockfile. */
function nodeModulesProblem() {
  if (!existsSync(join(root, 'node_modules'))) return 'node_modules is missing';
  const hash = lockHash();
  try {
    if (JSON.parse(readFileSync(MARKER, 'utf8')).lockHash === hash) return null;
  } catch {
    // no marker yet: check the direct dependencies against the lockfile below
  }
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  const names = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.devDependencies ?? {})];
  for (const name of names) {
    const want = lock.packages?.[`node_modules/${name}`]?.version;
    if (!want) return `package-lock.json has no entry for ${name} (run npm install)`;
    let have;
    try {
      have = JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
    } catch {
      return `${name} is not installed`;
    }
    if (have !== want) return `${name} is ${have}, package-lock.json wants ${want}`;
  }
  return null;
}

function ensureNodeModules() {
  const problem = nodeModulesProblem();
  if (problem) {
    log(`${problem}: running npm ci`);
    sh('npm', ['ci', '--no-audit', '--no-fund']);
  }
  writeFileSync(MARKER, JSON.stringify({ lockHash: lockHash(), at: new Date().toISOString() }) + '\n');
  log(`node_modules ok${problem ? ' (installed)' : ''}`);
}

// ---- 3. Debian packages ----------------------------------------------------
const APT = [
  { command: 'age', pkg: 'age' },
  { command: 'restic', pkg: 'restic' },
  { command: 'jq', pkg: 'jq' },
  // headless browser for the drill report test (playwright-core drives /usr/bin/chromium)
  { command: 'chromium', pkg: 'chromium' },
];

function haveCommand(c) {
  return spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status === 0;
}

function ensureAptPackages() {
  const missing = APT.filter((p) => !haveCommand(p.command)).map((p) => p.pkg);
  if (missing.length === 0) {
    log(`system packages ok (${APT.map((p) => p.pkg).join(', ')})`);
    return;
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing system packages: ${missing.join(', ')}; install them with: sudo apt-get update && sudo apt-get install -y ${missing.join(' ')}`,
    );
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing system packages: ${missing.join(', ')} (apt-get update first)`);
  sh('apt-get', ['update', '-q'], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  sh('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  log(`system packages installed: ${missing.join(', ')}`);
}

// ---- main --------------------------------------------------------------------
try {
  if (!args.has('--skip-npm')) ensureNodeModules();
  if (!args.has('--skip-tools')) {
    const missing = Object.keys(TOOLS).filter((n) => !toolInstalled(n));
    if (missing.length) log(`building missing dev tools into ${toolsDir()}: ${missing.join(', ')}`);
    await ensureTools(undefined, { log });
    log(`dev tools ok (${Object.values(TOOLS).map((t) => `${t.binary} ${t.version}`).join(', ')})`);
  }
  if (!args.has('--skip-apt')) ensureAptPackages();
  log(`ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  log(`failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
}
