/**
 * Scanning complete Temporal histories for things that must never be in
 * them (secrets, plaintext file names). Every run of every matching workflow
 * (children and continue-as-new runs are executions of their own) is fetched,
 * and every value in it is searched: strings (failure messages, stack traces,
 * identities), and every byte array decoded as UTF-8 (payloads: inputs,
 * results, heartbeats, signals, queries, updates, memo, search attributes,
 * failure details), plus each needle's base64 form.
 */
import type { Client } from '@temporalio/client';

export interface Needle {
  /** what it is, for the report (never the value itself) */
  label: string;
  value: string;
}

export interface Finding {
  workflowId: string;
  runId: string;
  needle: string;
  /** where in the history: event index, event type and field path */
  where: string;
}

export interface ScannedExecution {
  workflowId: string;
  runId: string;
  type: string;
  events: number;
}

/** Every needle and its base64 form (a secret encoded once more is still a secret). */
function variants(needles: readonly Needle[]): Array<{ label: string; text: string }> {
  const out: Array<{ label: string; text: string }> = [];
  for (const n of needles) {
    if (n.value.length < 6) throw new Error(`needle ${n.label} is too short to scan for`);
    out.push({ label: n.label, text: n.value });
    const b64 = Buffer.from(n.value, 'utf8').toString('base64').replace(/=+$/, '');
    if (b64.length >= 16) out.push({ label: `${n.label} (base64)`, text: b64.slice(0, b64.length - 2) });
  }
  return out;
}

/** Search one history (as fetched) for the needles. */
export function scanHistory(history: unknown, needles: readonly Needle[], id: { workflowId: string; runId: string }): Finding[] {
  const vs = variants(needles);
  const findings: Finding[] = [];
  const check = (text: string, where: string) => {
    for (const v of vs) if (text.includes(v.text)) findings.push({ ...id, needle: v.label, where });
  };
  const seen = new Set<unknown>();
  const walk = (value: unknown, where: string) => {
    if (value === null || value === undefined) return;
    if (typeof value === 'string') return check(value, where);
    if (typeof value !== 'object') return;
    if (value instanceof Uint8Array) return check(Buffer.from(value).toString('utf8'), where);
    if (seen.has(value)) return;
    seen.add(value);
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${where}[${i}]`));
    for (const [k, v] of Object.entries(value)) walk(v, where ? `${where}.${k}` : k);
  };
  const events = (history as { events?: Array<{ eventType?: unknown }> }).events ?? [];
  events.forEach((e, i) => walk(e, `event ${i + 1} (type ${String(e.eventType)})`));
  return findings;
}

/**
 * The executions (all runs) started since `since` whose workflow id passes
 * `include`, their histories fetched. Waits until `expectIds` are all listed
 * (visibility is updated asynchronously).
 */
export async function fetchHistories(
  client: Client,
  opts: { since: Date; include: (workflowId: string) => boolean; expectIds?: readonly string[]; timeoutMs?: number },
): Promise<Array<ScannedExecution & { history: unknown }>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const query = `StartTime >= "${opts.since.toISOString()}"`;
  for (;;) {
    const listed: Array<{ workflowId: string; runId: string; type: string }> = [];
    for await (const w of client.workflow.list({ query })) if (opts.include(w.workflowId)) listed.push({ workflowId: w.workflowId, runId: w.runId, type: w.type });
    const missing = (opts.expectIds ?? []).filter((id) => !listed.some((w) => w.workflowId === id));
    if (missing.length === 0) {
      const out: Array<ScannedExecution & { history: unknown }> = [];
      for (const w of listed) {
        const history = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
        out.push({ ...w, events: history.events?.length ?? 0, history });
      }
      return out;
    }
    if (Date.now() > deadline) throw new Error(`workflows not listed by Temporal visibility: ${missing.join(', ')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The secret lines of a PEM key (its base64 body), each long enough to be a needle. */
export function pemNeedles(label: string, pem: string): Needle[] {
  const body = pem
    .split(/\r?\n/)
    .filter((l) => l && !l.startsWith('-----'))
    .map((l) => l.trim());
  return [{ label: `${label} (PEM body)`, value: body.join('') }, ...body.filter((l) => l.length >= 16).map((l, i) => ({ label: `${label} (PEM line ${i + 1})`, value: l }))];
}
