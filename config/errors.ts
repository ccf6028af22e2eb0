/**
 * Errors caused by the user (bad config, port taken, missing secret …). The CLI
 * prints their message as one line without a stack trace. Messages never
 * contain secret values.
 */
export class UserError extends Error {
  override readonly name: string = 'UserError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface ConfigProblem {
  /** The config file, `built-in defaults`, or `environment variable NAME`. */
  source: string;
  /** Dotted key path, e.g. `storage.credentials.secretAccessKey` ('' for the whole file). */
  path: string;
  message: string;
}

/** A config problem: `source: key.path: problem`, one line per problem. */
export class ConfigError extends UserError {
  override readonly name = 'ConfigError';
  constructor(readonly problems: ConfigProblem[]) {
    super(problems.map((p) => `${p.source}: ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n'));
  }
}
