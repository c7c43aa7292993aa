import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;

/** What a test app saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

/** A handler that gets the request before its body is read (to stream it). */
export type StreamHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface TestAppOptions {
  /** Serve HTTPS with these settings (certificate, key, `requestCert`, `ca`, …) instead of HTTP. */
  tls?: HttpsServerOptions;
}

/**
 * A real HTTP (or HTTPS) app on 127.0.0.1 (port 0) for integration tests. Handlers are chosen by
 * path; every request is recorded. `close()` fails the test if a connection is still open after the
 * sidecars that used it are gone (closing them closes their pooled connections).
 */
export class TestApp {
  readonly server: Server;
  readonly seen: SeenRequest[] = [];
  readonly sockets = new Set<Socket>();
  #routes = new Map<string, Handler>();
  #streams = new Map<string, StreamHandler>();
  #fallback: Handler | undefined;
  /** Checked on close: open connections are expected to be gone by then. */
  checkConnectionsOnClose = true;

  constructor(options: TestAppOptions = {}) {
    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      const streamHandler = this.#streams.get((req.url ?? '/').split('?')[0] ?? '/');
      if (streamHandler !== undefined) {
        Promise.resolve(streamHandler(req, res)).catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(500);
          res.end(String(err));
        });
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        const handler = this.#routes.get(path) ?? this.#fallback;
        if (handler === undefined) {
          res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
          res.end('404 page not found\n');
          return;
        }
        Promise.resolve(handler(req, res, body)).catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(500);
          res.end(String(err));
        });
      });
    };
    this.server = options.tls === undefined ? createServer(handle) : createHttpsServer(options.tls, handle);
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  route(path: string, handler: Handler): this {
    this.#routes.set(path, handler);
    return this;
  }

  /** A route whose handler reads (or ignores) the request body itself; not recorded in `seen`. */
  stream(path: string, handler: StreamHandler): this {
    this.#streams.set(path, handler);
    return this;
  }

  fallback(handler: Handler): this {
    this.#fallback = handler;
    return this;
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    return this;
  }

  async close(): Promise<void> {
    const deadline = Date.now() + 5_000;
    while (this.checkConnectionsOnClose && this.sockets.size > 0 && Date.now() < deadline) await sleep(20);
    const leaked = this.sockets.size;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.checkConnectionsOnClose && leaked > 0) throw new Error(`test app on port ${this.port} still had ${leaked} open connection(s)`);
  }
}

export async function startApp(
  env: { track<T extends { close(): Promise<void> }>(x: T): T },
  setup: (app: TestApp) => void,
  port = 0,
  options: TestAppOptions = {},
): Promise<TestApp> {
  const app = new TestApp(options);
  setup(app);
  await app.listen(port);
  return env.track(app);
}
