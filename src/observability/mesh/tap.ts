import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { methodToPath } from '../../invoke/method.js';
import type { Metadata } from '../../invoke/headers.js';
import type { InvokeRequest } from '../../invoke/types.js';
import type { TraceContext } from '../tracing/context.js';
import { traceFromGrpcMetadata, traceFromInvokeMetadata } from '../tracing/propagation.js';
import type { TapEvent } from './contract.js';

/** The most tap clients a sidecar serves at once; one more is answered 503. */
export const MAX_TAP_CLIENTS = 16;
/** Events a client that reads slowly may have waiting; past it events are dropped and counted. */
export const TAP_QUEUE_LIMIT = 1000;
/** How often an idle stream gets a comment line, so that a client that went away is noticed. */
const HEARTBEAT_MS = 15_000;
export const REDACTED = '[redacted]';
/** Credentials: their values are never shown, whatever the flags say. */
const SECRET_HEADERS: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie', 'dapr-api-token']);

/** What one tap client asked to see (the query of `GET /courier/v1/tap`); every set field must match. */
export interface TapFilter {
  /** A prefix of the called path. */
  readonly path: string | undefined;
  /** The verb, in upper case. */
  readonly method: string | undefined;
  /** An exact status. */
  readonly status: number | undefined;
  /** A status class: 5 for `5xx`. */
  readonly statusClass: number | undefined;
  readonly direction: 'inbound' | 'outbound' | undefined;
  /** The app on the other side: the destination of an outbound call, the caller of an inbound one. */
  readonly app: string | undefined;
  /** Header values are shown: the sidecar allows it (`--tap-header-values`) and the client asked (`headers=show`). */
  readonly headerValues: boolean;
}

/** Reads a tap query; a string says what is wrong with it. `valuesAllowed`: `--tap-header-values`. */
export function parseTapFilter(query: URLSearchParams, valuesAllowed: boolean): TapFilter | string {
  const param = (name: string): string | undefined => {
    const value = query.get(name)?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const path = param('path');
  const method = param('method')?.toUpperCase();
  if (method !== undefined && !/^[A-Z]+$/.test(method)) return `method "${method}" is not an HTTP verb (or GRPC)`;
  let status: number | undefined;
  let statusClass: number | undefined;
  const statusText = param('status')?.toLowerCase();
  if (statusText !== undefined) {
    if (/^[1-5]xx$/.test(statusText)) statusClass = Number(statusText[0]);
    else if (/^\d{1,3}$/.test(statusText)) status = Number(statusText);
    else return `status "${statusText}" is neither a status (503) nor a class (5xx)`;
  }
  const direction = param('direction')?.toLowerCase();
  if (direction !== undefined && direction !== 'inbound' && direction !== 'outbound') return `direction "${direction}" is neither inbound nor outbound`;
  const headers = param('headers')?.toLowerCase();
  if (headers !== undefined && headers !== 'show' && headers !== 'redact') return `headers "${headers}" is neither show nor redact`;
  return { path, method, status, statusClass, direction, app: param('app'), headerValues: valuesAllowed && headers === 'show' };
}

export function tapMatches(filter: TapFilter, event: TapEvent): boolean {
  if (filter.direction !== undefined && filter.direction !== event.direction) return false;
  if (filter.method !== undefined && filter.method !== event.method) return false;
  if (filter.status !== undefined && filter.status !== event.status) return false;
  if (filter.statusClass !== undefined && Math.floor(event.status / 100) !== filter.statusClass) return false;
  if (filter.path !== undefined && !event.path.startsWith(filter.path)) return false;
  if (filter.app !== undefined && filter.app !== (event.direction === 'outbound' ? event.dstAppId : event.srcAppId)) return false;
  return true;
}

/** Where a client's events are written: the response of its request (a `ServerResponse`). */
export interface TapOutput {
  /** False: the socket is behind; wait for `drain` before writing more. */
  write(chunk: string): boolean;
  once(event: 'drain', listener: () => void): unknown;
  end(): unknown;
}

/**
 * One connected tap client. Events are written as they come while the socket keeps up; once a write
 * says it is behind, up to TAP_QUEUE_LIMIT events wait for `drain` and later ones are dropped and
 * counted, then reported in a comment line (`: dropped N`) once it has caught up. Its memory is bounded
 * by the limit, whatever the reader does.
 */
export class TapClient {
  readonly filter: TapFilter;
  readonly #out: TapOutput;
  #queue: string[] = [];
  #blocked = false;
  #dropped = 0;
  #closed = false;

  constructor(out: TapOutput, filter: TapFilter) {
    this.#out = out;
    this.filter = filter;
  }

  /** Events dropped since the last `: dropped` line. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Events waiting for the socket to drain. */
  get queued(): number {
    return this.#queue.length;
  }

  send(chunk: string): void {
    if (this.#closed) return;
    if (this.#blocked) {
      if (this.#queue.length < TAP_QUEUE_LIMIT) this.#queue.push(chunk);
      else this.#dropped++;
      return;
    }
    if (!this.#out.write(chunk)) this.#wait();
  }

  /** A comment line that keeps an idle stream alive (skipped while the socket is behind anyway). */
  heartbeat(): void {
    if (!this.#closed && !this.#blocked && !this.#out.write(': ping\n\n')) this.#wait();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#out.end();
  }

  #wait(): void {
    this.#blocked = true;
    this.#out.once('drain', this.#drained);
  }

  readonly #drained = (): void => {
    this.#blocked = false;
    if (this.#closed) return;
    const queue = this.#queue;
    let i = 0;
    while (i < queue.length) {
      if (!this.#out.write(queue[i++] as string)) {
        this.#queue = queue.slice(i);
        this.#wait();
        return;
      }
    }
    this.#queue = [];
    if (this.#dropped > 0) {
      const line = `: dropped ${this.#dropped}\n\n`;
      this.#dropped = 0;
      if (!this.#out.write(line)) this.#wait();
    }
  };
}

/**
 * The tap clients of a sidecar and the events of its calls. The request path asks `active` (a length
 * check) and builds an event only when it is true; nothing else is done per call while nobody taps.
 * Each event is serialized at most twice (with and without header values), whatever the number of
 * clients.
 */
export class TapHub {
  readonly #clients: TapClient[] = [];
  /** Some client sees header values, so events are built with them (and redacted for the others when written). */
  #values = false;
  #heartbeat: NodeJS.Timeout | undefined;

  /** Whether anybody taps. */
  get active(): boolean {
    return this.#clients.length !== 0;
  }

  get clients(): number {
    return this.#clients.length;
  }

  /** A new client; undefined when MAX_TAP_CLIENTS are already connected. */
  add(out: TapOutput, filter: TapFilter): TapClient | undefined {
    if (this.#clients.length >= MAX_TAP_CLIENTS) return undefined;
    const client = new TapClient(out, filter);
    this.#clients.push(client);
    this.#changed();
    return client;
  }

  /** Forgets a client that left (and ends its stream, if it is still open). */
  remove(client: TapClient): void {
    const at = this.#clients.indexOf(client);
    if (at < 0) return;
    this.#clients.splice(at, 1);
    client.close();
    this.#changed();
  }

  /** Ends every stream (the metrics server is closing). */
  closeAll(): void {
    for (const client of this.#clients.splice(0)) client.close();
    this.#changed();
  }

  publish(event: TapEvent): void {
    let shown: string | undefined;
    let redacted: string | undefined;
    for (const client of this.#clients) {
      if (!tapMatches(client.filter, event)) continue;
      if (client.filter.headerValues) client.send((shown ??= sse(event)));
      else client.send((redacted ??= sse({ ...event, headers: redactAll(event.headers) })));
    }
  }

  /**
   * An invocation ended: `outbound` at the caller (to `request.target`), else at the callee (from
   * `request.caller`). `status` is the answer's (0: none), `errorCode` Courier's error if it failed.
   */
  invocation(direction: TapEvent['direction'], request: InvokeRequest, verb: string, status: number, ms: number, errorCode: string): void {
    this.publish({
      at: Date.now(),
      direction,
      srcAppId: request.caller.appId,
      dstAppId: request.target.appId,
      method: verb === '' ? 'GRPC' : verb,
      path: methodToPath(request.method),
      status,
      latencyMs: roundMs(ms),
      traceId: traceIdOf(request.trace ?? traceFromInvokeMetadata(request.metadata)),
      headers: invokeHeaders(request.metadata, request.contentType, this.#values),
      errorCode,
    });
  }

  /** A proxied gRPC call ended, with its gRPC status. `trace`: its span, when tracing is on. */
  proxiedCall(direction: TapEvent['direction'], srcAppId: string, dstAppId: string, path: string, metadata: IncomingHttpHeaders, trace: TraceContext | undefined, status: number, ms: number, errorCode: string): void {
    this.publish({
      at: Date.now(),
      direction,
      srcAppId,
      dstAppId,
      method: 'GRPC',
      path,
      status,
      latencyMs: roundMs(ms),
      traceId: traceIdOf(trace ?? traceFromGrpcMetadata(metadata)),
      headers: grpcHeaders(metadata, this.#values),
      errorCode,
    });
  }

  #changed(): void {
    this.#values = this.#clients.some((c) => c.filter.headerValues);
    if (this.#clients.length === 0) {
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
    } else if (this.#heartbeat === undefined) {
      this.#heartbeat = setInterval(() => {
        for (const client of this.#clients) client.heartbeat();
      }, HEARTBEAT_MS).unref();
    }
  }
}

/** One server-sent event. */
function sse(event: TapEvent): string {
  return `event: call\ndata: ${JSON.stringify(event)}\n\n`;
}

function roundMs(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function traceIdOf(trace: TraceContext | undefined): string {
  return trace?.traceId ?? '';
}

function headerValue(name: string, value: string, values: boolean): string {
  return values && !SECRET_HEADERS.has(name) ? value : REDACTED;
}

/** An invocation's request headers by lower-case name, with values only when `values`. */
export function invokeHeaders(md: Metadata, contentType: string, values: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  if (contentType !== '') out['content-type'] = headerValue('content-type', contentType, values);
  for (const key in md) {
    const name = key.toLowerCase();
    out[name] = headerValue(name, (md[key]?.values ?? []).join(', '), values);
  }
  return out;
}

/** A gRPC call's metadata (pseudo-headers left out), with values only when `values`. */
export function grpcHeaders(md: IncomingHttpHeaders | OutgoingHttpHeaders, values: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in md) {
    if (key.charCodeAt(0) === 0x3a /* : */) continue;
    const value = md[key];
    if (value === undefined) continue;
    const name = key.toLowerCase();
    out[name] = headerValue(name, Array.isArray(value) ? value.join(', ') : String(value), values);
  }
  return out;
}

function redactAll(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) out[name] = REDACTED;
  return out;
}
