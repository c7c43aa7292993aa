// The tap streams of several sidecars, merged: each sidecar's /courier/v1/tap (server-sent events) is
// read as it arrives and every call is handed on with the app whose sidecar reported it.
import type { ClientRequest } from 'node:http';
import { request } from '../../util/builtin-http.js';
import { MESH_PATHS, type TapEvent } from '../../observability/mesh/contract.js';
import { DEFAULT_SAMPLE_TIMEOUT_MS, meshHeaders, readProblemBody, requestProblem, statusProblem, type SampleOptions } from './collect.js';
import { SseParser } from './sse.js';
import type { SidecarRef, TappedCall } from './view-types.js';

/** What the sidecars filter on before sending (all optional, combined with AND; see MESH_PATHS.tap). */
export interface TapFilters {
  /** A prefix of the called path, e.g. `/orders`. */
  readonly path?: string;
  /** An HTTP verb or `GRPC`. */
  readonly method?: string;
  /** An exact status (`503`) or a class (`5xx`). */
  readonly status?: string;
  readonly direction?: 'inbound' | 'outbound';
  /** The peer's app id. */
  readonly app?: string;
  /** Ask for header values (shown only by sidecars started with `--tap-header-values`). */
  readonly headers?: boolean;
}

export interface TapOptions extends SampleOptions {
  /** A sidecar's stream could not be opened, or ended while the tap was open. */
  readonly onError?: (ref: SidecarRef, message: string) => void;
  /** A sidecar dropped `count` events because this reader was too slow. */
  readonly onDropped?: (ref: SidecarRef, count: number) => void;
}

export interface TapSession {
  /** Ends every stream; resolves once their connections are closed. */
  close(): Promise<void>;
  /** Resolves once every stream has ended (closed, failed or ended by its sidecar). */
  readonly ended: Promise<void>;
}

/** The path and query of a tap request. */
export function tapPath(filters: TapFilters): string {
  const query = new URLSearchParams();
  if (filters.path !== undefined && filters.path !== '') query.set('path', filters.path);
  if (filters.method !== undefined && filters.method !== '') query.set('method', filters.method);
  if (filters.status !== undefined && filters.status !== '') query.set('status', filters.status);
  if (filters.direction !== undefined) query.set('direction', filters.direction);
  if (filters.app !== undefined && filters.app !== '') query.set('app', filters.app);
  if (filters.headers === true) query.set('headers', 'show');
  const text = query.toString();
  return text === '' ? MESH_PATHS.tap : `${MESH_PATHS.tap}?${text}`;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const num = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
const str = (value: unknown): string => (typeof value === 'string' ? value : '');

/** A tap event's JSON, checked and with the reporting app added; undefined for anything else. */
export function parseTapEvent(data: string, reportedBy: string): TappedCall | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (!isObject(value) || (value.direction !== 'inbound' && value.direction !== 'outbound')) return undefined;
  const headers: Record<string, string> = {};
  if (isObject(value.headers)) for (const [k, v] of Object.entries(value.headers)) if (typeof v === 'string') headers[k] = v;
  const event: TapEvent = {
    at: num(value.at),
    direction: value.direction,
    srcAppId: str(value.srcAppId),
    dstAppId: str(value.dstAppId),
    method: str(value.method),
    path: str(value.path),
    status: num(value.status),
    latencyMs: num(value.latencyMs),
    traceId: str(value.traceId),
    headers,
    errorCode: str(value.errorCode),
  };
  const reporter = reportedBy !== '' ? reportedBy : event.direction === 'outbound' ? event.srcAppId : event.dstAppId;
  return { ...event, reportedBy: reporter };
}

/**
 * Opens the tap stream of every sidecar in `refs` with the same filters and calls `onEvent` for each
 * call any of them reports, in arrival order. A stream that cannot be opened (within `timeoutMs`) or
 * ends is reported through `onError`; the others go on.
 */
export function tapMesh(refs: readonly SidecarRef[], filters: TapFilters, options: TapOptions, onEvent: (e: TappedCall) => void): TapSession {
  const timeoutMs = options.timeoutMs ?? DEFAULT_SAMPLE_TIMEOUT_MS;
  const path = tapPath(filters);
  let closing = false;
  const requests: ClientRequest[] = [];
  const done: Array<Promise<void>> = [];

  for (const ref of refs) {
    let reported = false;
    const problem = (message: string): void => {
      if (closing || reported) return;
      reported = true;
      options.onError?.(ref, message);
    };
    const req = request(new URL(path, ref.metricsUrl), { method: 'GET', headers: meshHeaders(options.token, 'text/event-stream'), agent: false });
    requests.push(req);
    done.push(new Promise<void>((resolve) => req.once('close', resolve)));
    // Only the answer's head is timed: the stream itself may stay quiet for as long as nobody calls.
    const timer = setTimeout(() => {
      problem(`no answer within ${timeoutMs} ms`);
      req.destroy();
    }, timeoutMs);
    timer.unref();
    req.on('error', (err) => problem(requestProblem(err, timeoutMs)));
    req.on('close', () => clearTimeout(timer));
    req.on('response', (res) => {
      clearTimeout(timer);
      const status = res.statusCode ?? 0;
      if (status !== 200) {
        readProblemBody(res, (body) => problem(statusProblem(status, MESH_PATHS.tap, body)));
        return;
      }
      const parser = new SseParser({
        onEvent: (e) => {
          if (e.event !== 'call' && e.event !== 'message') return;
          const call = parseTapEvent(e.data, ref.appId);
          if (call !== undefined && !closing) onEvent(call);
        },
        onComment: (text) => {
          const dropped = /^dropped (\d+)/.exec(text);
          if (dropped !== null) options.onDropped?.(ref, Number(dropped[1]));
        },
      });
      res.on('data', (chunk: Buffer) => {
        if (!closing) parser.push(chunk);
      });
      res.on('end', () => problem('the sidecar ended the stream'));
      res.on('error', (err) => problem(requestProblem(err, timeoutMs)));
    });
    req.end();
  }

  const ended = Promise.all(done).then(() => undefined);
  return {
    ended,
    close: async () => {
      closing = true;
      for (const req of requests) req.destroy();
      await ended;
    },
  };
}
