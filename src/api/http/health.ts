// The health endpoints' answers, shared by the HTTP API and the public health port (`--dapr-public-port`).
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../../util/builtin-http.js';
import { CourierError } from '../../errors/index.js';
import { writeError } from './response-writer.js';
import { closeServer, listenOn } from '../../util/listen.js';

/** What the health endpoints report. */
export interface Readiness {
  /** Reasons the sidecar is not ready for `GET /v1.0/healthz`; empty when ready. */
  notReady(): string[];
  /** Whether outbound calls can be made, for `GET /v1.0/healthz/outbound`. */
  outboundReady(): boolean;
}

/** Why `GET /v1.0/healthz[?appid=]` fails (500 with the reasons, or the app id not this one); undefined when ready (204). */
export function healthzFailure(query: string, appId: string, readiness: Readiness): CourierError | undefined {
  const asked = query === '' ? null : new URLSearchParams(query).get('appid');
  if (asked !== null && asked !== appId) {
    return new CourierError('ERR_HEALTH_APPID_NOT_MATCH', `the app id ${asked} does not match this sidecar's app id ${appId}`);
  }
  const reasons = readiness.notReady();
  return reasons.length === 0 ? undefined : new CourierError('ERR_HEALTH_NOT_READY', `dapr is not ready: [${reasons.join(' ')}]`);
}

/** Why `GET /v1.0/healthz/outbound` fails; undefined once outbound calls can be made (204). */
export function outboundHealthFailure(readiness: Readiness): CourierError | undefined {
  return readiness.outboundReady() ? undefined : new CourierError('ERR_OUTBOUND_HEALTH_NOT_READY', 'dapr outbound is not ready');
}

/** `GET /v1.0/healthz[?appid=]`: 204 when ready, else 500 with the reasons. */
export function answerHealthz(query: string, res: ServerResponse, appId: string, readiness: Readiness): void {
  answer(res, healthzFailure(query, appId, readiness));
}

/** `GET /v1.0/healthz/outbound`: 204 once outbound calls can be made. */
export function answerOutboundHealth(res: ServerResponse, readiness: Readiness): void {
  answer(res, outboundHealthFailure(readiness));
}

function answer(res: ServerResponse, failure: CourierError | undefined): void {
  if (failure === undefined) noContent(res);
  else writeError(res, failure);
}

export function noContent(res: ServerResponse): void {
  res.writeHead(204);
  res.end();
}

/**
 * The public health port (`--dapr-public-port`, as daprd's): only the health endpoints, on an address
 * the kubelet can reach, while the HTTP API itself stays on loopback. No token is asked for, as on the
 * HTTP API's health endpoints; nothing else is served.
 */
export class PublicHealthServer {
  readonly #server: Server;

  constructor(appId: string, readiness: Readiness) {
    this.#server = createServer((req, res) => handle(req, res, appId, readiness));
    this.#server.keepAliveTimeout = 5000;
    this.#server.headersTimeout = 5000;
    this.#server.requestTimeout = 5000;
  }

  listen(host: string, port: number): Promise<number> {
    return listenOn(this.#server, host, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }
}

function handle(req: IncomingMessage, res: ServerResponse, appId: string, readiness: Readiness): void {
  const url = req.url ?? '/';
  const at = url.indexOf('?');
  const path = at < 0 ? url : url.slice(0, at);
  const query = at < 0 ? '' : url.slice(at + 1);
  if (path !== '/v1.0/healthz' && path !== '/v1.0/healthz/outbound') {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the public port serves only /v1.0/healthz and /v1.0/healthz/outbound\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  if (path === '/v1.0/healthz') answerHealthz(query, res, appId, readiness);
  else answerOutboundHealth(res, readiness);
}
