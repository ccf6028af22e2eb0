/**
 * Domain errors of the storage engine. Each says what is wrong and where, in
 * one line a person can act on. `permanent` tells adapters (Temporal
 * activities) whether retrying could help.
 */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A manifest, tree or index that fails authentication, signature or validation. */
export class IntegrityError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, true, options);
  }
}

/** Input that can never succeed as given: a missing asset path, a bad snapshot id, an unsafe path. */
export class InputError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, true, options);
  }
}

/** A file changed while it was being read; retrying later may succeed. */
export class FileChangedError extends EngineError {
  constructor(readonly path: string) {
    super(`file changed while it was being read: ${path} (it is still being written; back it up once the writer has finished)`, false);
  }
}

/** The repository is not in a state that allows the operation (not initialised, lease lost, …). */
export class RepositoryStateError extends EngineError {
  constructor(message: string, permanent = true) {
    super(message, permanent);
  }
}
