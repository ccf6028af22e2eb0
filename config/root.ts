import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Lifeline root (the repository / install directory). Relative paths in config resolve against it. */
export const LIFELINE_ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

export function resolveFromRoot(p: string, root = LIFELINE_ROOT): string {
  return isAbsolute(p) ? p : resolve(root, p);
}
