import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MESH_PATHS, MESH_TOKEN_HEADER, type MeshInfo } from './contract.js';
import { MAX_TAP_CLIENTS, parseTapFilter, type TapHub } from './tap.js';
import type { TrafficTable } from './traffic.js';

export interface MeshEndpointsOptions {
  /** `DAPR_API_TOKEN`: required of every request when set. */
  readonly apiToken: string | undefined;
  /** `--tap-header-values`: a tap client may ask for header values (`headers=show`). */
  readonly tapHeaderValues: boolean;
  /** The sidecar's description, built when asked. */
  readonly info: () => MeshInfo;
}

const paths: ReadonlySet<string> = new Set(Object.values(MESH_PATHS));

/**
 * The mesh views' endpoints on the metrics port (contract.ts): `info` and `traffic` as JSON, `tap` as
 * server-sent events. GET and HEAD only, behind the API token when one is set. The Prometheus paths
 * of the same port are not served here and take no token, as before.
 */
export class MeshEndpoints {
  readonly #traffic: TrafficTable;
  readonly #tap: TapHub;
  readonly #options: MeshEndpointsOptions;
  readonly #token: Buffer | undefined;

  constructor(traffic: TrafficTable, tap: TapHub, options: MeshEndpointsOptions) {
    this.#traffic = traffic;
    this.#tap = tap;
    this.#options = options;
    this.#token = options.apiToken === undefined ? undefined : Buffer.from(options.apiToken);
  }

  /** Whether `path` is one of the mesh paths (the server sends the rest elsewhere). */
  serves(path: string): boolean {
    return paths.has(path);
  }

  handle(req: IncomingMessage, res: ServerResponse, path: string, query: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (this.#token !== undefined && !tokenMatches(req.headers[MESH_TOKEN_HEADER], this.#token)) {
      json(req, res, 401, { errorCode: 'ERR_API_TOKEN', message: `invalid api token: send the sidecar's DAPR_API_TOKEN in the ${MESH_TOKEN_HEADER} header` });
      return;
    }
    if (path === MESH_PATHS.info) json(req, res, 200, this.#options.info());
    else if (path === MESH_PATHS.traffic) json(req, res, 200, this.#traffic.snapshot());
    else this.#openTap(req, res, query);
  }

  /** Ends every tap stream (the server is closing). */
  close(): void {
    this.#tap.closeAll();
  }

  #openTap(req: IncomingMessage, res: ServerResponse, query: string): void {
    const filter = parseTapFilter(new URLSearchParams(query), this.#options.tapHeaderValues);
    if (typeof filter === 'string') {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end(`bad tap filter: ${filter}\n`);
      return;
    }
    if (this.#tap.clients >= MAX_TAP_CLIENTS) {
      res
        .writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '5' })
        .end(`too many tap clients: at most ${MAX_TAP_CLIENTS} may tap this sidecar at once; try again when one has left\n`);
      return;
    }
    const head = { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-store', 'X-Accel-Buffering': 'no' };
    if (req.method === 'HEAD') {
      res.writeHead(200, head).end();
      return;
    }
    res.writeHead(200, head);
    res.flushHeaders();
    // The stream never ends on its own: no request timeout applies to it.
    req.socket.setTimeout(0);
    const client = this.#tap.add(res, filter);
    if (client === undefined) return; // not reached: checked above, in the same turn
    const leave = (): void => this.#tap.remove(client);
    res.once('close', leave);
    res.once('error', leave);
  }
}

function json(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function tokenMatches(given: string | string[] | undefined, expected: Buffer): boolean {
  const value = Array.isArray(given) ? given[0] : given;
  if (value === undefined) return false;
  const buf = Buffer.from(value);
  return buf.length === expected.length && timingSafeEqual(buf, expected);
}
