import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createH2cServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => unknown;
/** A handler that reads the request body itself (or not), for streaming and flow-control tests; a rejected promise answers 500. */
export type StreamHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

/** What a test app saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: Buffer;
}

/**
 * How a test app serves: HTTP/1.1 (default), HTTPS with these settings (a certificate and key, and
 * `requestCert`, `ca`, … for client certificates), or HTTP/2 without TLS (h2c).
 */
export type TestAppOptions = { readonly tls: HttpsServerOptions } | { readonly h2c: true } | Record<string, never>;

/**
 * A real HTTP app on 127.0.0.1 (port 0) for integration tests. Handlers are chosen by path; every
 * request is recorded. `close()` fails the test if a connection is still open after the sidecars
 * that used it are gone (closing them closes their pooled connections).
 *
 * With `{ tls }` it serves HTTPS; with `{ h2c: true }` HTTP/2 without TLS (prior knowledge only),
 * its handlers getting Node's HTTP/2 compatibility request and response, which offer what the
 * HTTP/1.1 ones do for a test (headers, rawHeaders, httpVersion, writeHead, write, end, 'drain').
 */
export class TestApp {
  readonly server: Server | HttpsServer | Http2Server;
  readonly seen: SeenRequest[] = [];
  readonly sockets = new Set<Socket>();
  /** HTTP/2 sessions that carried at least one request, in total (h2c only; a bare TCP connect opens none). */
  sessionsUsed = 0;
  /** HTTP/2 sessions open now (h2c only). */
  readonly sessions = new Set<ServerHttp2Session>();
  #routes = new Map<string, Handler>();
  #streamRoutes = new Map<string, StreamHandler>();
  #fallback: Handler | undefined;
  /** Checked on close: open connections are expected to be gone by then. */
  checkConnectionsOnClose = true;

  constructor(options: TestAppOptions = {}) {
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      const streaming = this.#streamRoutes.get((req.url ?? '/').split('?')[0] ?? '/');
      if (streaming !== undefined) {
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
        Promise.resolve(streaming(req, res)).catch((err: unknown) => {
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
    if ('tls' in options) this.server = createHttpsServer(options.tls, onRequest);
    else if ('h2c' in options) {
      const server = createH2cServer((req: Http2ServerRequest, res: Http2ServerResponse) =>
        onRequest(req as unknown as IncomingMessage, res as unknown as ServerResponse),
      );
      server.on('session', (session: ServerHttp2Session) => {
        session.once('stream', () => this.sessionsUsed++);
        this.sessions.add(session);
        session.once('close', () => this.sessions.delete(session));
      });
      this.server = server;
    } else this.server = createServer(onRequest);
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

  /** A route whose handler gets the request before its body is read. */
  stream(path: string, handler: StreamHandler): this {
    this.#streamRoutes.set(path, handler);
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
