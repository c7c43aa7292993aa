import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer } from '../../util/builtin-http.js';
import type { AddressInfo, Socket } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { CourierError, type ErrorCode } from '../../errors/index.js';
import { bodyTooLargeError, LimitedBody, readWholeBody } from '../../invoke/body.js';
import { firstRawHeader, scanRequestHeaders } from '../../invoke/headers.js';
import type { AppIdentity } from '../../invoke/identity.js';
import { decodePath, normalizeMethod } from '../../invoke/method.js';
import { describeTarget, type TargetResolver } from '../../invoke/target.js';
import { WHOLE_BODY_LIMIT_BYTES, type Invoke, type InvokeRequest, type InvokeTarget } from '../../invoke/types.js';
import type { Logger } from '../../observability/logging/index.js';
import { findTargetAndMethod } from './invoke-target.js';
import { ERROR_CODE, HttpResponseWriter, responseBodyBytes, TRACEPARENT, writeError } from './response-writer.js';
import { formatTraceparent, parseTraceparent } from '../../observability/tracing/context.js';
import { setTraceMetadata } from '../../observability/tracing/propagation.js';
import { addDaprHeaders, describeCallSpan, endCallSpan } from '../../observability/tracing/call-spans.js';
import { SpanKind, type Span, type Tracer } from '../../observability/tracing/tracer.js';
import { isExternalTarget } from '../../invoke/types.js';
import { matchRoute, routePattern } from './routes.js';
import type { SidecarMetrics } from '../../observability/metrics/sidecar-metrics.js';
import { listenOnHosts, prepareUnixSocket } from '../../util/listen.js';
import { limitConnections, type ConnectionLimits } from '../../util/connection-limit.js';
import type { ApiLog } from '../../observability/api-log.js';
import { answerHealthz, answerOutboundHealth, healthzFailure, noContent, outboundHealthFailure, type Readiness } from './health.js';
import { FastConnection, type FastCall, type FastHead, type FastHost } from './fast-path.js';
import type { ApiRoute } from './routes.js';

export type { Readiness } from './health.js';

/** What the metadata endpoints read and write. */
export interface MetadataEndpoint {
  describe(): Record<string, unknown>;
  setExtended(key: string, value: string): void;
}

export interface HttpApiOptions {
  readonly self: AppIdentity;
  readonly invoker: Invoke<InvokeTarget>;
  /** Turns the target a caller named into an app or an external HTTP service. */
  readonly targets: TargetResolver;
  /** `--max-body-size`: request bodies over this are refused with 413. */
  readonly maxBodyBytes: number;
  /** `--read-buffer-size`: the largest request head (request line and headers) accepted. */
  readonly maxHeaderBytes: number;
  /** `--max-request-headers`: the most header lines a request may carry (431 beyond); 0 is unlimited. */
  readonly maxRequestHeaders: number;
  /** `DAPR_API_TOKEN`: when set, every route but the health checks requires it in `dapr-api-token`. */
  readonly apiToken: string | undefined;
  readonly readiness: Readiness;
  readonly metadata: MetadataEndpoint;
  /** Called for `POST /v1.0/shutdown`, after the response is sent. */
  readonly requestShutdown: () => void;
  readonly limits: ConnectionLimits;
  /** `--enable-api-logging`: one line per request. */
  readonly apiLog?: ApiLog | undefined;
  /** Dapr's HTTP server metrics; undefined when metrics are off. */
  readonly metrics?: SidecarMetrics | undefined;
  /** Spans and trace headers; undefined when tracing is off (`samplingRate: "0"`). */
  readonly tracer?: Tracer | undefined;
  readonly logger: Logger;
}

const STARTED = Symbol('courier.metrics.started');
const PATH_LABEL = Symbol('courier.metrics.path');
const SPAN = Symbol('courier.tracing.span');
/** A response whose request is measured: when it started, the path label of its route, and its span. */
type MeteredResponse = ServerResponse & { [STARTED]?: number; [PATH_LABEL]?: string; [SPAN]?: Span; [TRACEPARENT]?: string; [ERROR_CODE]?: ErrorCode };

/** The body length a request declared (a body of unknown length counts as 0). */
function declaredLength(value: string | undefined): number {
  const n = value === undefined ? 0 : Number(value);
  return Number.isFinite(n) ? n : 0;
}

const BAD_REQUEST_RESPONSE = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
const HEADER_OVERFLOW_BODY = JSON.stringify({ errorCode: 'ERR_HEADERS_TOO_LARGE', message: 'the request head is larger than --read-buffer-size' });
const HEADER_OVERFLOW_RESPONSE = `HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(HEADER_OVERFLOW_BODY)}\r\n\r\n${HEADER_OVERFLOW_BODY}`;

const REQUEST_TIMEOUT_RESPONSE = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

/** What a client whose request could not be parsed (or came too slowly) is told before the connection closes. */
function clientErrorResponse(code: string | undefined): string {
  if (code === 'HPE_HEADER_OVERFLOW') return HEADER_OVERFLOW_RESPONSE;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return REQUEST_TIMEOUT_RESPONSE;
  return BAD_REQUEST_RESPONSE;
}

/** How long an idle keep-alive connection is kept (Node's server is given the same). */
const KEEP_ALIVE_MS = 65_000;

/** How the fast path serves a request: its route, decoded path and query. */
interface FastPlan {
  readonly route: ApiRoute;
  readonly path: string;
  readonly query: string;
}

/** The largest value `PUT /v1.0/metadata/{key}` accepts. */
const MAX_METADATA_VALUE_BYTES = 64 * 1024;

/**
 * Dapr's HTTP API on `--dapr-http-port`: service invocation (by URL, by `dapr-app-id` header and by
 * Basic auth), health, metadata and shutdown. One `node:http` server per listen address.
 */
export class HttpApiServer {
  readonly #options: HttpApiOptions;
  readonly #servers: Server[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #apiToken: Buffer | undefined;
  #inFlight = 0;
  #draining = false;
  #idleWaiters: Array<() => void> = [];
  /** A request's response closed: counts it out, and records it in the metrics (one function for every request, not a closure each). */
  readonly #requestDone: (this: MeteredResponse) => void;
  /**
   * The fast path (fast-path.ts) serves invocations and health checks on each connection until a
   * request comes that it does not serve (then node:http serves the connection).
   */
  readonly #fastHost: FastHost<FastPlan> & { readonly connections: Set<FastConnection<FastPlan>> };
  #sweeper: NodeJS.Timeout | undefined;

  constructor(options: HttpApiOptions) {
    this.#options = options;
    this.#apiToken = options.apiToken === undefined ? undefined : Buffer.from(options.apiToken);
    const metrics = options.metrics;
    const closed = (): void => this.#requestClosed();
    this.#requestDone = function (this: MeteredResponse): void {
      const span = this[SPAN];
      if (span?.recording === true) endCallSpan(span, this.headersSent ? this.statusCode : 0, this.headersSent ? undefined : 'the response was not sent');
      if (metrics !== undefined) {
        const req = this.req;
        metrics.httpServerRequest(
          req.method ?? 'GET',
          this[PATH_LABEL] ?? '_',
          this.headersSent ? this.statusCode : 0,
          declaredLength(firstRawHeader(req.rawHeaders, 'content-length')),
          responseBodyBytes(this),
          performance.now() - (this[STARTED] ?? 0),
        );
        const errorCode = this[ERROR_CODE];
        if (errorCode !== undefined) metrics.errorAnswered(errorCode);
      }
      closed();
    };
    this.#fastHost = this.#fastPath();
  }

  /** Requests being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Listens on every host on one port. With port 0 the first host picks a free port and the others
   * use the same one, so `localhost` works whichever loopback a client tries first.
   */
  async listen(hosts: readonly string[], port: number): Promise<number> {
    return listenOnHosts(hosts, port, (host, chosen) => this.#listenOne(host, chosen), (host, err) =>
      this.#options.logger.warn({ address: host, err: err.message }, 'this machine does not have this listen address; the HTTP API is not served on it'),
    );
  }

  /** Listens on a Unix domain socket (`--unix-domain-socket`) instead of TCP. */
  async listenUnix(path: string): Promise<void> {
    await prepareUnixSocket(path);
    await this.#listenOn({ path });
  }

  async #listenOne(host: string, chosen: number): Promise<number> {
    return ((await this.#listenOn({ host, port: chosen, exclusive: true })) as AddressInfo).port;
  }

  async #listenOn(where: { host: string; port: number; exclusive: boolean } | { path: string }): Promise<AddressInfo | string | null> {
    const server = createServer(
      {
        maxHeaderSize: this.#options.maxHeaderBytes,
        requestTimeout: 0,
        // A request head must arrive within the handshake bound (Dapr's ReadHeaderTimeout is 10 s).
        headersTimeout: this.#options.limits.handshakeTimeoutMs,
        // How often Node checks that bound: a trickling client is cut off at most this much late.
        connectionsCheckingInterval: sweepEveryMs(this.#options.limits.handshakeTimeoutMs),
        noDelay: true,
        keepAliveTimeout: KEEP_ALIVE_MS,
      },
      (req, res) => this.#handle(req, res),
    );
    // Node would drop headers past its count (2000) silently, Host among them for clients that send it
    // last; the count is checked per request instead, and the head's size is bounded by maxHeaderSize.
    server.maxHeadersCount = 0;
    limitConnections(server, this.#options.limits.maxConnections, this.#options.logger, 'HTTP API');
    const fast = this.#fastHost;
    // Node's own handling of a new connection, given each connection the fast path hands over.
    const nodeConnection = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    this.#sweeper ??= this.#startSweeper(fast.connections);
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
      const connection = new FastConnection<FastPlan>(socket, fast);
      fast.connections.add(connection);
      socket.once('close', () => fast.connections.delete(connection));
      (socket as HandedSocket)[NODE_CONNECTION] = nodeConnection;
      (socket as HandedSocket)[NODE_SERVER] = server;
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Closed once the answer is written: a client that never reads or closes must not hold the socket.
      if (socket.writable) socket.once('finish', () => socket.destroy()).end(clientErrorResponse(err.code));
      else socket.destroy();
      this.#options.logger.debug({ err: err.message }, 'malformed HTTP request');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    this.#servers.push(server);
    return server.address();
  }

  /**
   * Stops accepting connections and waits up to `graceMs` for requests in flight; idle keep-alive
   * connections are closed at once and busy ones are told to close after their response.
   */
  async close(graceMs: number): Promise<void> {
    this.#draining = true;
    const closed = Promise.all(this.#servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    for (const server of this.#servers) server.closeIdleConnections();
    for (const connection of this.#fastHost.connections) if (connection.idle) connection.close();
    clearInterval(this.#sweeper);
    if (this.#inFlight > 0) {
      // Keeps the process alive on purpose: shutdown waits for requests in flight, up to the grace period.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#idleWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  /**
   * Closes fast connections whose request head is overdue (408, as Node's `headersTimeout` does) and
   * idle ones past the keep-alive time, checked as often as Node checks its own connections.
   */
  #startSweeper(connections: Set<FastConnection<FastPlan>>): NodeJS.Timeout {
    const headMs = this.#options.limits.handshakeTimeoutMs;
    const timer = setInterval(() => {
      const now = Date.now();
      for (const connection of connections) {
        if (connection.awaitingHead) {
          if (headMs > 0 && now - connection.headSince > headMs) connection.timeOut();
        } else if (connection.idle && now - connection.idleSince > KEEP_ALIVE_MS) {
          connection.close();
        }
      }
    }, sweepEveryMs(headMs));
    timer.unref();
    return timer;
  }

  /** What the fast path asks of the server: which requests it serves, and how. */
  #fastPath(): FastHost<FastPlan> & { readonly connections: Set<FastConnection<FastPlan>> } {
    const options = this.#options;
    const bodyLimit = Math.min(WHOLE_BODY_LIMIT_BYTES, options.maxBodyBytes);
    return {
      connections: new Set(),
      maxHeadBytes: options.maxHeaderBytes,
      maxHeaders: options.maxRequestHeaders,
      draining: (): boolean => this.#draining,
      plan(head: FastHead): FastPlan | undefined {
        // A body the fast path does not read whole (larger, or over --max-body-size) is Node's to stream or refuse.
        if (head.contentLength > bodyLimit) return undefined;
        const target = head.target;
        const q = target.indexOf('?');
        const path = decodePath(q < 0 ? target : target.slice(0, q));
        if (path === undefined) return undefined;
        const route = matchRoute(head.method, path);
        switch (route.kind) {
          case 'invoke-url':
          case 'fallback':
          case 'healthz':
          case 'healthz-outbound':
            return { route, path, query: q < 0 ? '' : target.slice(q + 1) };
          default:
            return undefined;
        }
      },
      serve: (call: FastCall<FastPlan>): void => this.#serveFast(call),
      done: (call: FastCall<FastPlan>): void => this.#fastDone(call),
      handOff(socket: Socket, pending: Buffer | undefined): void {
        // Paused, so that the bytes put back wait in the stream's buffer for Node's 'data' listener; the
        // resume then flows them to it before anything read later (which Node's parser reads itself).
        socket.pause();
        if (pending !== undefined) socket.unshift(pending);
        const handed = socket as HandedSocket;
        const nodeServer = handed[NODE_SERVER];
        for (const listener of handed[NODE_CONNECTION] ?? []) listener.call(nodeServer, socket);
        socket.resume();
      },
    };
  }

  #serveFast(call: FastCall<FastPlan>): void {
    this.#inFlight++;
    const { route, path, query } = call.plan;
    const verb = call.request.method;
    const metrics = this.#options.metrics;
    if (metrics !== undefined || this.#options.apiLog !== undefined) call.started = performance.now();
    if (metrics !== undefined) call.pathLabel = metrics.pathLabel(path, routePattern(route, path));
    try {
      const invoking = route.kind === 'invoke-url' || route.kind === 'fallback';
      const tracer = this.#options.tracer;
      if (!invoking && tracer !== undefined) call.traceparent = responseTraceparent(call.request.rawHeaders, tracer);
      if (invoking) {
        if (this.#apiToken !== undefined && !this.#tokenMatchesRaw(call.request.rawHeaders)) {
          if (tracer !== undefined) call.traceparent = responseTraceparent(call.request.rawHeaders, tracer);
          call.fail(new CourierError('ERR_API_TOKEN', 'invalid api token'));
          return;
        }
        this.#invokeFast(call, verb, path, query, route.kind === 'invoke-url');
        return;
      }
      const failure = route.kind === 'healthz' ? healthzFailure(query, this.#options.self.appId, this.#options.readiness) : outboundHealthFailure(this.#options.readiness);
      if (failure === undefined) call.respond(204, [], undefined);
      else call.fail(failure);
    } catch (err) {
      this.#options.logger.error({ err }, 'unexpected failure handling a request');
      call.fail(CourierError.from(err));
    }
  }

  #fastDone(call: FastCall<FastPlan>): void {
    const span = call.span;
    if (span?.recording === true) endCallSpan(span, call.status, call.status !== 0 ? undefined : 'the response was not sent');
    const metrics = this.#options.metrics;
    if (metrics !== undefined) {
      metrics.httpServerRequest(call.request.method, call.pathLabel, call.status, call.request.contentLength, call.bodyBytes, performance.now() - call.started);
      if (call.errorCode !== undefined) metrics.errorAnswered(call.errorCode);
    }
    this.#options.apiLog?.httpEnded(call.request.method, call.request.target, call.finished ? call.status : 0, call.started, call.request.rawHeaders);
    this.#requestClosed();
  }

  #invokeFast(call: FastCall<FastPlan>, verb: string, path: string, query: string, isInvokeRoute: boolean): void {
    const scanned = scanRequestHeaders(call.request.rawHeaders);
    const tracer = this.#options.tracer;
    let span: Span | undefined;
    if (tracer !== undefined) {
      span = tracer.start(SpanKind.CLIENT, parseTraceparent(scanned.traceparent, scanned.tracestate));
      call.span = span;
      call.traceparent = setTraceMetadata(scanned.metadata, span, false, scanned.traceHeaders);
      if (span.recording) span.name = `${verb} ${routePattern(call.plan.route, path)}`;
    }
    const found = findTargetAndMethod(scanned, path, isInvokeRoute);
    if (found === undefined) {
      call.fail(new CourierError('ERR_DIRECT_INVOKE', 'failed getting app id either from the URL path or the header dapr-app-id', { httpStatus: 404, grpcCode: 5 }));
      return;
    }
    call.invokeTarget = found.target;
    let target: InvokeTarget;
    try {
      target = this.#options.targets.resolve(found.target);
    } catch (err) {
      call.fail(CourierError.from(err));
      return;
    }
    const method = normalizeMethod(found.method);
    if (method === undefined) {
      call.error(new CourierError('ERR_DIRECT_INVOKE', 'invalid method', { grpcCode: 3 }));
      return;
    }
    const self = this.#options.self;
    const request: InvokeRequest<InvokeTarget> = {
      target,
      caller: self,
      method,
      verb,
      query,
      contentType: scanned.contentType,
      metadata: scanned.metadata,
      body: call.body,
      contentLength: scanned.contentLength === undefined ? undefined : call.request.contentLength,
      signal: call,
      clientAddress: socketAddress(call.connection.socket),
      trace: span,
    };
    this.#describeCall(request, span);
    this.#options.invoker.invoke(request, call);
  }

  /** Names the call's span (when it records) and logs the call at debug level. */
  #describeCall(request: InvokeRequest<InvokeTarget>, span: Span | undefined): void {
    const { target, method, verb } = request;
    if (span?.recording === true) {
      const peer = isExternalTarget(target) ? target.id : target.appId;
      describeCallSpan(span, peer, method, peer, verb, 'http');
      addDaprHeaders(span, request.metadata);
    }
    if (this.#options.logger.isLevelEnabled('debug')) {
      this.#options.logger.debug({ target: describeTarget(target, request.caller.namespace), method, verb }, 'invoke');
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    this.#inFlight++;
    // 'close' comes once per response: `on` spares the wrapper `once` would make for every request.
    res.on('close', this.#requestDone);
    if (this.#options.metrics !== undefined) (res as MeteredResponse)[STARTED] = performance.now();
    if (this.#draining) res.setHeader('Connection', 'close');
    this.#options.apiLog?.http(req, res);
    const maxHeaders = this.#options.maxRequestHeaders;
    if (maxHeaders > 0 && req.rawHeaders.length > 2 * maxHeaders) {
      writeError(res, new CourierError('ERR_HEADERS_TOO_LARGE', `the request has more than ${maxHeaders} headers (--max-request-headers)`), hasBody(req));
      return;
    }
    try {
      this.#route(req, res);
    } catch (err) {
      this.#options.logger.error({ err }, 'unexpected failure handling a request');
      writeError(res, CourierError.from(err), true);
    }
  }

  #requestClosed(): void {
    this.#inFlight--;
    if (this.#draining && this.#inFlight === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  #route(req: IncomingMessage, res: ServerResponse): void {
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    let rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = q < 0 ? '' : rawUrl.slice(q + 1);
    if (!rawPath.startsWith('/')) rawPath = absoluteFormPath(rawPath);
    const path = decodePath(rawPath);
    if (path === undefined) {
      writeError(res, new CourierError('ERR_MALFORMED_REQUEST', `the request path "${rawPath}" has a malformed percent-encoding`), hasBody(req));
      return;
    }
    const verb = req.method ?? 'GET';
    const route = matchRoute(verb, path);
    const metrics = this.#options.metrics;
    if (metrics !== undefined) (res as MeteredResponse)[PATH_LABEL] = metrics.pathLabel(path, routePattern(route, path));
    const invoking = route.kind === 'invoke-url' || route.kind === 'fallback';
    if (!invoking && this.#options.tracer !== undefined) this.#traceOnly(req, res, this.#options.tracer);
    if (this.#apiToken !== undefined && route.kind !== 'healthz' && route.kind !== 'healthz-outbound' && !this.#tokenMatches(req)) {
      if (invoking && this.#options.tracer !== undefined) this.#traceOnly(req, res, this.#options.tracer);
      writeError(res, new CourierError('ERR_API_TOKEN', 'invalid api token'), hasBody(req));
      return;
    }
    switch (route.kind) {
      case 'healthz':
        answerHealthz(query, res, this.#options.self.appId, this.#options.readiness);
        return;
      case 'healthz-outbound':
        answerOutboundHealth(res, this.#options.readiness);
        return;
      case 'metadata-get':
        this.#json(res, 200, this.#options.metadata.describe());
        return;
      case 'metadata-put':
        this.#putMetadata(route.key, req, res);
        return;
      case 'shutdown':
        noContent(res);
        res.once('finish', () => setImmediate(this.#options.requestShutdown));
        return;
      case 'unimplemented':
        writeError(
          res,
          new CourierError('ERR_API_UNIMPLEMENTED', `the ${route.api} API is not provided by Courier, which implements Dapr's service invocation`),
          hasBody(req),
        );
        return;
      case 'invoke-url':
      case 'fallback':
        this.#invoke(req, res, verb, path, query, route.kind === 'invoke-url');
        return;
    }
  }

  /**
   * A request that makes no call still answers with a `traceparent` (a child of the one it sent, or a
   * new trace), so every response of the HTTP API carries one; no span is recorded for it.
   */
  #traceOnly(req: IncomingMessage, res: ServerResponse, tracer: Tracer): void {
    const traceparent = responseTraceparent(req.rawHeaders, tracer);
    (res as MeteredResponse)[TRACEPARENT] = traceparent;
    res.setHeader('traceparent', traceparent);
  }

  #tokenMatches(req: IncomingMessage): boolean {
    return this.#tokenMatchesRaw(req.rawHeaders);
  }

  #tokenMatchesRaw(rawHeaders: readonly string[]): boolean {
    const value = firstRawHeader(rawHeaders, 'dapr-api-token');
    const expected = this.#apiToken;
    if (value === undefined || expected === undefined) return false;
    const buf = Buffer.from(value);
    return buf.length === expected.length && timingSafeEqual(buf, expected);
  }

  #json(res: ServerResponse, status: number, value: unknown): void {
    const body = JSON.stringify(value);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  #putMetadata(key: string, req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_METADATA_VALUE_BYTES) {
        if (!failed) writeError(res, bodyTooLargeError(MAX_METADATA_VALUE_BYTES), true);
        failed = true;
        req.pause();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      if (failed) return;
      this.#options.metadata.setExtended(key, Buffer.concat(chunks).toString('utf8'));
      noContent(res);
    });
  }

  #invoke(req: IncomingMessage, res: ServerResponse, verb: string, path: string, query: string, isInvokeRoute: boolean): void {
    // The request's headers are read once, here; Node's req.headers object is never built.
    const scanned = scanRequestHeaders(req.rawHeaders);
    const tracer = this.#options.tracer;
    let span: Span | undefined;
    if (tracer !== undefined) {
      // The call's span starts first, so that even a refusal answers with its traceparent.
      span = tracer.start(SpanKind.CLIENT, parseTraceparent(scanned.traceparent, scanned.tracestate));
      (res as MeteredResponse)[SPAN] = span;
      (res as MeteredResponse)[TRACEPARENT] = setTraceMetadata(scanned.metadata, span, false, scanned.traceHeaders);
      if (span.recording) span.name = `${verb} ${routePattern(matchRoute(verb, path), path)}`;
    }
    const found = findTargetAndMethod(scanned, path, isInvokeRoute);
    if (found === undefined) {
      writeError(
        res,
        new CourierError('ERR_DIRECT_INVOKE', 'failed getting app id either from the URL path or the header dapr-app-id', { httpStatus: 404, grpcCode: 5 }),
        hasBody(scanned),
      );
      return;
    }
    const self = this.#options.self;
    const call = new HttpResponseWriter(req, res, found.target);
    let target: InvokeTarget;
    try {
      target = this.#options.targets.resolve(found.target);
    } catch (err) {
      writeError(res, CourierError.from(err), hasBody(scanned));
      return;
    }
    const method = normalizeMethod(found.method);
    if (method === undefined) {
      call.error(new CourierError('ERR_DIRECT_INVOKE', 'invalid method', { grpcCode: 3 }));
      return;
    }
    const chunked = scanned.chunked;
    let contentLength = chunked || scanned.contentLength === undefined ? undefined : Number(scanned.contentLength);
    if (contentLength !== undefined && contentLength > this.#options.maxBodyBytes) {
      writeError(res, bodyTooLargeError(this.#options.maxBodyBytes), true);
      return;
    }
    if (contentLength !== undefined && !Number.isFinite(contentLength)) contentLength = undefined;
    const request: PendingRequest = {
      target,
      caller: self,
      method,
      verb,
      query,
      contentType: scanned.contentType,
      metadata: scanned.metadata,
      body: null,
      contentLength: contentLength === 0 ? 0 : contentLength,
      signal: call,
      clientAddress: clientAddress(req),
      trace: span,
    };
    this.#describeCall(request, span);
    if (!chunked && contentLength !== undefined && contentLength > 0 && contentLength <= WHOLE_BODY_LIMIT_BYTES) {
      // A small body is read whole first (nothing is sent on before it is complete, so a caller that
      // gives up half-way costs nothing downstream).
      readWholeBody(req, contentLength, this.#invoker, request, call);
      return;
    }
    if (chunked || (contentLength ?? 0) > 0) request.body = new LimitedBody(req, this.#options.maxBodyBytes);
    else request.contentLength = contentLength === 0 ? 0 : undefined;
    this.#options.invoker.invoke(request, call);
  }

  /** Sends a request once its whole body has been read (see `readWholeBody`). */
  readonly #invoker = {
    ready: (request: PendingRequest, body: Buffer, call: HttpResponseWriter): void => {
      request.body = body;
      this.#options.invoker.invoke(request, call);
    },
  };
}

/** An invocation built by the HTTP API, whose body is set once it is known. */
type PendingRequest = { -readonly [K in keyof InvokeRequest<InvokeTarget>]: InvokeRequest<InvokeTarget>[K] };

function hasBody(req: IncomingMessage | { readonly chunked: boolean; readonly contentLength: string | undefined }): boolean {
  if ('rawHeaders' in req) return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  return req.chunked || Number(req.contentLength ?? 0) > 0;
}

/** The `traceparent` of a response to a request that makes no call: a child of the one sent, or a new trace. */
function responseTraceparent(raw: readonly string[], tracer: Tracer): string {
  const parent = parseTraceparent(firstRawHeader(raw, 'traceparent'), firstRawHeader(raw, 'tracestate'));
  return formatTraceparent(tracer.start(SpanKind.SERVER, parent));
}

/** How often overdue request heads are looked for: a trickling client is cut off at most this much late. */
function sweepEveryMs(headMs: number): number {
  return Math.min(30_000, Math.max(1000, Math.floor(headMs / 2)));
}

const NODE_CONNECTION = Symbol('courier.http.node-connection');
const NODE_SERVER = Symbol('courier.http.node-server');
/** A socket the fast path serves, with what Node's server does with a new connection, for the hand-over. */
type HandedSocket = Socket & { [NODE_CONNECTION]?: Array<(socket: Socket) => void>; [NODE_SERVER]?: Server };

function clientAddress(req: IncomingMessage): string {
  return socketAddress(req.socket);
}

function socketAddress(socket: Socket): string {
  const address = socket.remoteAddress;
  // A client on a Unix domain socket has no address: RFC 7239's "unknown".
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** The path of an absolute-form request target (`GET http://host/path HTTP/1.1`). */
function absoluteFormPath(target: string): string {
  try {
    return new URL(target).pathname;
  } catch {
    return `/${target}`;
  }
}
