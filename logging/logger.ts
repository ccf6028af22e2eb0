/**
 * Lifeline's logger: pino, JSON by default, pretty on a terminal or on request,
 * with every secret scrubbed (secret-named fields, registered secret values,
 * secret-looking tokens) before a line is written.
 */
import { Writable } from 'node:stream';
import pino, { type DestinationStream, type Logger as PinoLogger } from 'pino';
import pretty from 'pino-pretty';
import type { LogFormat, LogLevel } from '../config/schema';
import { REDACTED, scrubString, scrubValue } from './redact';

export type Logger = PinoLogger;
export { registerSecret, scrubString, scrubValue, REDACTED } from './redact';

export interface LoggerOptions {
  level?: LogLevel;
  /** auto (default): pretty when the destination is a terminal, JSON otherwise. */
  format?: LogFormat;
  /** Where lines go (default: stderr, so stdout stays clean for command output and --json). */
  destination?: DestinationStream | NodeJS.WritableStream;
  /** Value of the `name` field. */
  name?: string;
  /** Extra fields on every line. */
  base?: Record<string, unknown>;
}

/**
 * Redaction paths for pino's fast path. scrubValue() covers any depth; these
 * keep the well-known locations redacted even if a serializer changes.
 */
export const REDACT_PATHS = [
  'credentials',
  '*.credentials',
  '*.*.credentials',
  'secretAccessKey',
  '*.secretAccessKey',
  '*.*.secretAccessKey',
  'accessKeyId',
  '*.accessKeyId',
  '*.*.accessKeyId',
  'password',
  '*.password',
  'identities',
  '*.identities',
  'signingKey',
  '*.signingKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'headers["x-amz-security-token"]',
];

function isTTY(dest: unknown): boolean {
  return !!(dest as { isTTY?: boolean } | undefined)?.isTTY;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const destination = opts.destination ?? process.stderr;
  const format = opts.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && isTTY(destination));
  const target: DestinationStream = usePretty
    ? pretty({
        destination: destination as NodeJS.WritableStream,
        colorize: isTTY(destination),
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname',
        sync: true,
      })
    : (destination as DestinationStream);
  // Last line of defence: every serialized line is scrubbed once more, which
  // also covers child-logger bindings (pino serializes those without formatters).
  const stream: DestinationStream = { write: (line: string) => target.write(scrubString(line)) };

  return pino(
    {
      level: opts.level ?? 'info',
      name: opts.name ?? 'lifeline',
      base: opts.base ?? {},
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      hooks: {
        // Scrub the message and any interpolation arguments.
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubString(a) : a instanceof Error ? scrubValue(a) : a));
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
      formatters: {
        // Every merged object (including child bindings' values) is deep-scrubbed.
        log: (obj) => scrubValue(obj) as Record<string, unknown>,
        bindings: (b) => scrubValue(b) as Record<string, unknown>,
      },
      serializers: {
        err: (e: unknown) => scrubValue(e),
        error: (e: unknown) => scrubValue(e),
      },
    },
    stream,
  );
}

/** A logger that collects lines in memory (tests, diagnostics). */
export function createBufferLogger(opts: Omit<LoggerOptions, 'destination'> = {}): { logger: Logger; lines: () => string[]; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const logger = createLogger({ format: 'json', ...opts, destination: sink });
  const text = () => chunks.join('');
  return { logger, text, lines: () => text().split('\n').filter(Boolean) };
}
