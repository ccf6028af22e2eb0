/** Helpers shared by the fault injectors: their state file and the error for a fault that cannot be injected. */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../../nodes/processes';
import type { FaultContext } from '../fault';

/** The fault cannot be injected as asked (its target is not there, not running, not supervised): permanent, nothing was changed. */
export class FaultNotApplicable extends Error {
  override name = 'FaultNotApplicable';
}

export interface BaseFaultState {
  injectedAt: string;
  revertedAt?: string;
}

const stateFile = (ctx: FaultContext) => join(ctx.stateDir, 'state.json');

export function readFaultState<S extends BaseFaultState>(ctx: FaultContext): S | null {
  try {
    return JSON.parse(readFileSync(stateFile(ctx), 'utf8')) as S;
  } catch {
    return null;
  }
}

/** Written (owner-only, atomically) before the fault takes effect. */
export function writeFaultState<S extends BaseFaultState>(ctx: FaultContext, state: S): void {
  mkdirSync(ctx.stateDir, { recursive: true, mode: 0o700 });
  writeJsonAtomic(stateFile(ctx), state);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGKILL to a whole process group (the way a crash or the OOM killer ends it); no error when it is gone. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
