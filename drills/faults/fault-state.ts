/**
 * The state file of one injected fault (`<stateDir>/state.json`): written
 * before the fault takes effect and updated as it moves on, so a revert in
 * another process (after a crash) knows what to undo. Owner-only; ids, ports
 * and pids only.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../config/errors';
import { writeJsonAtomic } from '../../nodes/processes';

export function stateFile(stateDir: string): string {
  return join(stateDir, 'state.json');
}

export function readFaultState<T>(stateDir: string): T | null {
  try {
    return JSON.parse(readFileSync(stateFile(stateDir), 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

export function writeFaultState<T>(stateDir: string, state: T): void {
  writeJsonAtomic(stateFile(stateDir), state);
}

/** A fault that cannot be injected as asked (wrong target, unsupported setup): retrying does not help. */
export class FaultSetupError extends UserError {
  override readonly name = 'FaultSetupError';
}
