/**
 * Route Temporal SDK logs (worker lifecycle, core, workflow `log`, activity
 * `log`) through pino. Install once per process, before any Worker or
 * NativeConnection is created.
 */
import type { LogLevel as TemporalLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import { Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import type { Logger } from './logger';

const LEVELS: Record<TemporalLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** A Temporal SDK Logger backed by a pino logger. */
export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly logger: Logger) {}

  log(level: TemporalLevel, message: string, meta?: LogMetadata): void {
    let fn = LEVELS[level] ?? 'info';
    // The SDK's own lifecycle chatter (bundling, worker state, core) is debug detail for Lifeline;
    // workflow and activity logs keep their level.
    const component = meta?.sdkComponent;
    if (fn === 'info' && (component === 'worker' || component === 'core')) fn = 'debug';
    if (!this.logger.isLevelEnabled(fn)) return;
    const fields: Record<string, unknown> = {};
    if (meta) {
      for (const [k, v] of Object.entries(meta)) {
        if (typeof k !== 'string' || v === undefined) continue;
        // the SDK's own timestamp (nanoseconds) duplicates pino's `time`
        if (k === 'timestampNanos') continue;
        fields[k === 'error' || k === 'failure' ? 'err' : k] = v;
      }
    }
    this.logger[fn](fields, message);
  }
  trace(message: string, meta?: LogMetadata) {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata) {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata) {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata) {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata) {
    this.log('ERROR', message, meta);
  }
}

let installed: Logger | null = null;

function coreLevel(level: string): TemporalLevel {
  switch (level) {
    case 'trace':
      return 'TRACE';
    case 'debug':
      return 'DEBUG';
    case 'info':
      return 'INFO';
    case 'warn':
      return 'WARN';
    default:
      return 'ERROR';
  }
}

/**
 * Install `logger` as the Temporal Runtime logger, forwarding native (core)
 * logs too. The SDK Runtime can be installed only once per process: a second
 * call with another logger keeps the first and returns false.
 */
export function installTemporalLogging(logger: Logger): boolean {
  if (installed === logger) return true;
  if (installed) {
    logger.debug('Temporal runtime logging already installed with another logger; keeping it');
    return false;
  }
  const sdkLogger = new PinoTemporalLogger(logger.child({ component: 'temporal' }));
  const level = coreLevel(logger.level);
  Runtime.install({
    logger: sdkLogger,
    telemetryOptions: {
      logging: {
        // Core is chatty at debug; keep it one notch quieter than the app.
        filter: makeTelemetryFilterString({ core: level === 'TRACE' ? 'DEBUG' : level === 'DEBUG' ? 'INFO' : level }),
        forward: {},
      },
    },
  });
  installed = logger;
  return true;
}
