import type { IncomingMessage, ServerResponse } from 'node:http';
import { matchRoute, routePattern, type ApiRoute } from '../api/http/routes.js';
import type { ServerCall } from '../grpc/index.js';
import { firstRawHeader } from '../invoke/headers.js';
import type { Logger } from './logging/index.js';

/**
 * `--enable-api-logging` (Dapr's flag) and Configuration `spec.logging.apiLogging`: one info line per
 * call of the HTTP and gRPC APIs, in Dapr's shape (`msg="HTTP API Called" method="POST /v1.0/invoke/…"
 * code=200 duration=1.2 useragent=…`), written when the call ends. Nothing is done per call when off.
 */
export interface ApiLogOptions {
  /** `obfuscateURLs`: log the route's pattern (`/v1.0/invoke/{id}/method/{method}`) instead of the path. */
  readonly obfuscateUrls: boolean;
  /** `omitHealthChecks`: no line for `GET /v1.0/healthz` and `/v1.0/healthz/outbound`. */
  readonly omitHealthChecks: boolean;
  readonly logger: Logger;
}

export class ApiLog {
  readonly #options: ApiLogOptions;

  constructor(options: ApiLogOptions) {
    this.#options = options;
  }

  /** Logs `req` once its response is over (sent, or the connection closed first). */
  http(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const verb = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const route = this.#route(verb, path);
    if (route === null) return;
    res.once('close', () => {
      this.#httpLine(verb, path, route, res.writableFinished ? res.statusCode : 0, started, req.headers.traceparent, req.headers['user-agent']);
    });
  }

  /**
   * Logs a request the HTTP API's own connection handling served, now that its response is over:
   * `status` 0 when the connection closed first; `rawHeaders` as the request sent them.
   */
  httpEnded(verb: string, url: string, status: number, startedAt: number, rawHeaders: readonly string[]): void {
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const route = this.#route(verb, path);
    if (route === null) return;
    this.#httpLine(verb, path, route, status, startedAt, firstRawHeader(rawHeaders, 'traceparent'), firstRawHeader(rawHeaders, 'user-agent'));
  }

  /** The route, when the line needs it (undefined when not); null when no line is written for it. */
  #route(verb: string, path: string): ApiRoute | undefined | null {
    if (!this.#options.omitHealthChecks && !this.#options.obfuscateUrls) return undefined;
    const route = matchRoute(verb, path);
    return this.#options.omitHealthChecks && (route.kind === 'healthz' || route.kind === 'healthz-outbound') ? null : route;
  }

  #httpLine(verb: string, path: string, route: ApiRoute | undefined, code: number, started: number, traceparent: unknown, userAgent: string | undefined): void {
    const traceId = traceIdOf(traceparent);
    this.#options.logger.info(
      {
        method: `${verb} ${route !== undefined && this.#options.obfuscateUrls ? routePattern(route, path) : path}`,
        code,
        duration: round(performance.now() - started),
        useragent: userAgent ?? '',
        ...(traceId === undefined ? {} : { trace_id: traceId }),
      },
      'HTTP API Called',
    );
  }

  /** Logs a gRPC API call that has ended. */
  grpcEnded(call: ServerCall): void {
    const started = call.startedAt;
    const agent = call.metadata['user-agent'];
    const parent = call.metadata.traceparent;
    const traceId = traceIdOf(Array.isArray(parent) ? parent[0] : parent);
    this.#options.logger.info(
      {
        method: call.path,
        code: call.statusCode ?? 1,
        duration: round(performance.now() - started),
        useragent: (Array.isArray(agent) ? agent[0] : agent) ?? '',
        ...(traceId === undefined ? {} : { trace_id: traceId }),
      },
      'gRPC API Called',
    );
  }
}

/** The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), when it is a valid one. */
export function traceIdOf(traceparent: unknown): string | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const m = /^[\da-f]{2}-([\da-f]{32})-[\da-f]{16}-[\da-f]{2}/.exec(traceparent.trim());
  const id = m?.[1];
  return id === undefined || /^0+$/.test(id) ? undefined : id;
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
