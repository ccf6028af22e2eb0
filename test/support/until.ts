/** Polls `f` until it returns something other than undefined (or the timeout passes); for tests that wait on other processes. */
export async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 240_000, everyMs = 300): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
