// A stand-in for the Kubernetes API server's pod reads, for tests only: it answers
// `GET /api/v1/namespaces/<ns>/pods/<name>` with responses recorded from the API's formats
// (`api-responses/*.json`), over HTTP or HTTPS, and keeps what each request carried.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { readFileSync } from '../../../util/builtins.js';
import { createServer } from '../../../util/builtin-http.js';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

/** A recorded answer, by file name in `api-responses/` (`pod-orders.json`, `status-not-found.json`, …). */
export function recorded(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./api-responses/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

export interface FakeApiServerOptions {
  /** Serve HTTPS with this certificate and key; plain HTTP otherwise. */
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
  /** The bearer token every request must carry; others get the recorded 401 Status. */
  readonly token?: string;
}

export class FakeApiServer {
  /** Pods by `<namespace>/<name>`; a missing one is answered with the recorded 404 Status. */
  readonly pods = new Map<string, Record<string, unknown>>();
  readonly requests: { path: string; authorization: string | undefined }[] = [];
  /** When set, every pod read gets this recorded Status (403, 500) instead, or never an answer ('hang'). */
  failure: { status: number; body: Record<string, unknown> } | 'hang' | undefined;
  readonly #server: Server;
  readonly #token: string | undefined;
  readonly #https: boolean;
  readonly #hanging = new Set<ServerResponse>();
  url = '';

  constructor(options: FakeApiServerOptions = {}) {
    this.#token = options.token;
    this.#https = options.tls !== undefined;
    const handle = (req: IncomingMessage, res: ServerResponse): void => this.#handle(req, res);
    this.#server = options.tls === undefined ? createServer(handle) : createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, handle);
  }

  /** Adds a recorded pod under its own namespace and name. */
  add(pod: Record<string, unknown>): this {
    const metadata = pod.metadata as { namespace: string; name: string };
    this.pods.set(`${metadata.namespace}/${metadata.name}`, pod);
    return this;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    const { port } = this.#server.address() as AddressInfo;
    // A TLS certificate names a host (localhost), not an address.
    this.url = this.#https ? `https://localhost:${port}` : `http://127.0.0.1:${port}`;
    return this;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '';
    this.requests.push({ path, authorization: req.headers.authorization });
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (this.#token !== undefined && req.headers.authorization !== `Bearer ${this.#token}`) {
      send(401, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
      return;
    }
    const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/?]+)$/.exec(path);
    if (req.method !== 'GET' || match === null) {
      send(404, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'the server could not find the requested resource', reason: 'NotFound', code: 404 });
      return;
    }
    if (this.failure === 'hang') {
      this.#hanging.add(res);
      return;
    }
    if (this.failure !== undefined) {
      send(this.failure.status, this.failure.body);
      return;
    }
    const pod = this.pods.get(`${match[1] ?? ''}/${match[2] ?? ''}`);
    if (pod === undefined) {
      const notFound = recorded('status-not-found.json');
      send(404, { ...notFound, message: `pods "${match[2] ?? ''}" not found`, details: { name: match[2], kind: 'pods' } });
      return;
    }
    send(200, pod);
  }

  async close(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
