export type ToolName = 'temporal' | 'minio' | 'mc';

export interface ToolSpec {
  module: string;
  pkg: string;
  version: string;
  binary: string;
}

export const TOOLS: Record<ToolName, ToolSpec>;
export const buildTimes: Partial<Record<ToolName, number>>;
export function toolsDir(): string;
export function toolPath(name: ToolName): string;
export function toolInstalled(name: ToolName): boolean;
export function ensureTool(name: ToolName, opts?: { log?: (msg: string) => void }): Promise<string>;
export function ensureTools(
  names?: ToolName[],
  opts?: { log?: (msg: string) => void },
): Promise<Partial<Record<ToolName, string>>>;
