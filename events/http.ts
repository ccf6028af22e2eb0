/**
 * The event receiver over HTTP (`lifeline event serve`):
 *
 *   POST /events   {"type": "checkpoint", "node": …, "path": …, "step": …, "asset"?: …}
 *     202 {accepted, type, asset, step, workflowId, runId}
 *     400 {error, issues: [{field, problem}]}   malformed event (nothing started)
 *     413 body over 64 KiB, 415 not JSON, 503 Temporal unreachable
 *   GET /healthz   200 {ok: true}
 *
 * It listens on 127.0.0.1 by default and has no authentication of its own:
 * expose it only on a trusted network (or behind a proxy that authenticates).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../logging/logger';
import { dispatchEvent, type DispatchTarget } from './dispatch';
import { EventValidationError } from './schema';

const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = req.headers['content-type'] ?? '';
  if (type && !/^application\/(.+\+)?json\b/i.test(type)) throw new HttpError(415, `expected content-type application/json, got ${type}`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `event body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `body is not valid JSON (${(err as Error).message})`);
  }
}

export function createEventServer(target: DispatchTarget & { logger: Logger }): Server {
  const log = target.logger.child({ component: 'events' });
  return createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      try {
        if (url.pathname === '/healthz') {
          if (req.method !== 'GET') throw new HttpError(405, 'use GET /healthz');
          send(res, 200, { ok: true });
          return;
        }
        if (url.pathname !== '/events') throw new HttpError(404, 'not found: POST events to /events');
        if (req.method !== 'POST') {
          send(res, 405, { error: 'use POST /events' }, { allow: 'POST' });
          return;
        }
        const body = await readJson(req);
        const result = await dispatchEvent(body, target);
        log.info({ type: result.type, asset: result.asset, step: result.step, workflowId: result.workflowId }, 'event accepted');
        send(res, 202, result);
      } catch (err) {
        if (err instanceof EventValidationError) {
          log.warn({ issues: err.issues }, 'event rejected');
          send(res, 400, { error: err.message, issues: err.issues });
        } else if (err instanceof HttpError) {
          send(res, err.status, { error: err.message });
        } else {
          log.error({ err }, 'event could not be handled');
          send(res, 503, { error: `event valid but not handled: ${(err as Error)?.message ?? String(err)}; retry later` });
        }
      }
    })();
  });
}
