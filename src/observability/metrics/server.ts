import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../../util/builtin-http.js';
import { createRequire } from 'node:module';
import { closeServer, listenOn } from '../../util/listen.js';
import type { Logger } from '../logging/index.js';
import { MeshEndpoints, type MeshEndpointsOptions } from '../mesh/endpoints.js';
import type { RegistryMetric } from './family.js';
import type { SidecarMetrics } from './sidecar-metrics.js';

/** The part of prom-client's Registry Courier uses: it formats the families as Prometheus text. */
interface PromRegistry {
  registerMetric(metric: RegistryMetric): void;
  metrics(): Promise<string>;
  readonly contentType: string;
}

/**
 * prom-client's Registry alone (0.7 MB), not its index (13 MB with the default collectors and
 * OpenTelemetry's API, which a sidecar does not use): Courier records into its own series
 * (family.ts) and prom-client writes the exposition format.
 */
const Registry = createRequire(import.meta.url)('prom-client/lib/registry.js') as new () => PromRegistry;

/**
 * The Prometheus endpoint (`--metrics-port`, `--metrics-listen-address`): the text exposition format
 * at `/` (Dapr's path) and at `/metrics`, and, given `mesh`, the mesh views' endpoints under
 * `/courier/v1/` (src/observability/mesh/). Only GET and HEAD; nothing else is served.
 */
export class MetricsServer {
  readonly #registry: PromRegistry;
  readonly #server: Server;
  readonly #logger: Logger;
  readonly #mesh: MeshEndpoints | undefined;

  constructor(metrics: SidecarMetrics, logger: Logger, mesh?: MeshEndpointsOptions) {
    this.#logger = logger;
    this.#mesh = mesh === undefined ? undefined : new MeshEndpoints(metrics.traffic, metrics.tap, mesh);
    this.#registry = new Registry();
    for (const family of metrics.families) this.#registry.registerMetric(family);
    this.#server = createServer((req, res) => this.#handle(req, res));
    this.#server.keepAliveTimeout = 65_000;
    this.#server.headersTimeout = 10_000;
    this.#server.requestTimeout = 10_000;
  }

  /** The exposition text, as a scrape gets it. */
  text(): Promise<string> {
    return this.#registry.metrics();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    if (this.#mesh?.serves(path) === true) {
      this.#mesh.handle(req, res, path, query < 0 ? '' : url.slice(query + 1));
      return;
    }
    if (path !== '/' && path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: metrics are served at / and /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    this.text().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': this.#registry.contentType, 'Content-Length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        this.#logger.error({ err }, 'metrics could not be rendered');
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics could not be rendered\n');
      },
    );
  }

  listen(host: string, port: number): Promise<number> {
    return listenOn(this.#server, host, port);
  }

  close(): Promise<void> {
    // Tap streams never end on their own: they are ended first, then their connections closed.
    this.#mesh?.close();
    return closeServer(this.#server);
  }
}
