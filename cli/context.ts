/** Shared by every CLI command: config + logger from global options, and output helpers. */
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig, type LoadedConfig } from '../config/load';
import type { LogFormat, LogLevel } from '../config/schema';
import { createLogger, type Logger } from '../logging/logger';
import { isValidNodeId } from '../workflows/task-queues';

export interface GlobalOpts {
  config?: string;
  logLevel?: LogLevel;
  logFormat?: LogFormat;
  debug?: boolean;
}

export interface Ctx {
  config: LoadedConfig;
  logger: Logger;
}

export const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : s + '\n');
export const json = (v: unknown) => out(JSON.stringify(v, null, 2));

export function context(cmd: Command): Ctx {
  const g = cmd.optsWithGlobals<GlobalOpts>();
  const config = loadConfig({ configPath: g.config });
  const logger = createLogger({
    level: g.logLevel ?? config.logging.level,
    format: g.logFormat ?? config.logging.format,
  });
  logger.debug({ configFile: config.source.file, envOverrides: config.source.envOverrides }, 'config loaded');
  return { config, logger };
}

export function nodeIdArg(v: string): string {
  if (!isValidNodeId(v)) throw new InvalidArgumentError('expected a node id (letters, digits, . _ -; at most 63 characters)');
  return v;
}

export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

