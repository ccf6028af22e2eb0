/**
 * Retrying transient failures within a time budget: exponential backoff with
 * jitter, a warning per retry, abortable sleeps. Storage-agnostic: the caller
 * classifies errors.
 */

export interface RetryPolicy {
  /** Total time to keep retrying, measured from the first attempt (ms). */
  budgetMs: number;
  /** Upper bound on attempts (including the first). */
  maxAttempts: number;
  /** First backoff (ms); doubles per attempt up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  budgetMs: 120_000,
  maxAttempts: Number.POSITIVE_INFINITY,
  baseDelayMs: 250,
  maxDelayMs: 15_000,
});

/**
 * How to treat a failure: give up at once, or retry (optionally at most
 * `maxAttempts` times for this kind of error, e.g. a checksum mismatch that
 * might be corruption in transit or at rest).
 */
export type RetryVerdict = { retry: false } | { retry: true; maxAttempts?: number };

export interface RetryInfo {
  /** Attempt that just failed (1-based). */
  attempt: number;
  delayMs: number;
  elapsedMs: number;
  error: unknown;
}

/** Thrown when a retryable error persisted past the budget or attempt limit. */
export class RetryExhaustedError extends Error {
  constructor(
    readonly lastError: unknown,
    readonly attempts: number,
    readonly elapsedMs: number,
  ) {
    super(`gave up after ${attempts} attempts over ${(elapsedMs / 1000).toFixed(1)} s`, { cause: lastError });
    this.name = 'RetryExhaustedError';
  }
}

/** Backoff before attempt `attempt + 1`: "equal jitter" (half fixed, half random) so retries spread but never collapse to zero. */
export function backoffDelay(attempt: number, policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>, random = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(30, attempt - 1));
  return Math.round(exp / 2 + random() * (exp / 2));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions {
  policy: RetryPolicy;
  classify: (err: unknown) => RetryVerdict;
  /** Called before each backoff sleep. */
  onRetry?: (info: RetryInfo) => void;
  signal?: AbortSignal;
  now?: () => number;
}

/**
 * Run `fn` until it succeeds, a non-retryable error occurs (rethrown as is),
 * the signal aborts (its reason is thrown), or the budget/attempts run out
 * (`RetryExhaustedError` carrying the last error).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const now = opts.now ?? Date.now;
  const start = now();
  const { policy, signal } = opts;
  for (let attempt = 1; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const verdict = opts.classify(err);
      if (!verdict.retry) throw err;
      const elapsed = now() - start;
      const limit = Math.min(policy.maxAttempts, verdict.maxAttempts ?? Number.POSITIVE_INFINITY);
      const delay = backoffDelay(attempt, policy);
      if (attempt >= limit || elapsed + delay > policy.budgetMs) {
        throw new RetryExhaustedError(err, attempt, elapsed);
      }
      opts.onRetry?.({ attempt, delayMs: delay, elapsedMs: elapsed, error: err });
      await sleep(delay, signal);
    }
  }
}
