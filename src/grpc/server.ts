import type { TLSSocket } from 'node:tls';
import { DEFAULT_LIMITS } from '../lane/endpoint.js';
import { LaneServerSession, type LaneCallRouter } from '../lane/server.js';
import { LANE_MAGIC, LANE_PROTOCOL } from '../lane/wire.js';
import type { Http2SecureServer, Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream, ServerOptions } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { CourierError, GrpcStatus, errorMessage } from '../errors/index.js';
import { silentLogger, type Logger } from '../observability/logging/index.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from './framing.js';
import { SessionKeeper } from './keepalive.js';
import { isGrpcContentType } from './metadata.js';
import type { Peer, ServerCall } from './call.js';
import { Http2ServerCall, respondTrailersOnly, type ServerCallOwner, type ServerCallSession } from './server-call.js';
import { h2 } from './status.js';
import { parseGrpcTimeout } from './timeout.js';
import { limitConnections } from '../util/connection-limit.js';
import { keepStreamsInIdTable } from './session-streams.js';
import { SlotSet } from '../util/call-tables.js';
import { H2ServerSession, type H2CallRouter } from '../h2/server.js';

/** Handles one call. It owns the call from here: it must eventually `end` it (or see it cancelled). */
export type CallHandler = (call: ServerCall) => void;

export interface GrpcServerOptions {
  /** Largest inbound message accepted; larger ones fail the call with RESOURCE_EXHAUSTED. Default 4 MiB. */
  readonly maxReceiveMessageBytes?: number | undefined;
  /** Largest outbound message; sending a larger one fails the call with RESOURCE_EXHAUSTED. Default 4 MiB. */
  readonly maxSendMessageBytes?: number | undefined;
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients. Default 2048. */
  readonly maxConcurrentStreams?: number | undefined;
  /** A connection without calls for this long is closed with GOAWAY. Default 3 minutes; 0 disables. */
  readonly idleSessionTimeoutMs?: number | undefined;
  /** Server-side keepalive: PING each connection this often. Default: off (clients ping). */
  readonly pingIntervalMs?: number | undefined;
  /** A PING not acknowledged within this drops the connection. Default 20 s. */
  readonly pingTimeoutMs?: number | undefined;
  /**
   * Creates the HTTP/2 server for each `listen`. The seam for TLS: pass a factory that calls
   * `http2.createSecureServer({ ...options, key, cert, ... })`. Default: plaintext h2c with prior
   * knowledge, where each port is a plain TCP listener and each HTTP/2 connection is served by
   * Courier's own HTTP/2 server end (src/h2/), without node:http2.
   */
  readonly createServer?: ((options: GrpcListenerOptions) => Http2Server | Http2SecureServer) | undefined;
  /**
   * A connection that has not completed its TLS handshake (with TLS) and sent the HTTP/2 connection
   * preface and its first SETTINGS within this is closed. Default 10 s.
   */
  readonly handshakeTimeoutMs?: number | undefined;
  /** Connections accepted at once on each listener; more are closed as they arrive. Default 1024; 0 is unlimited. */
  readonly maxConnections?: number | undefined;
  /** Told when each call starts and when its stream has closed (e.g. to log API calls); no cost when unset. */
  readonly observer?: CallObserver | undefined;
  /**
   * Also serve the Courier-to-Courier lane (`courier-lane/1`, see src/lane/) on the same port: a
   * plaintext connection that starts with the lane's magic, or a TLS connection that negotiated it by
   * ALPN, carries the same calls to the same handlers. HTTP/2 clients are served as before. Default false.
   */
  readonly lane?: boolean | undefined;
  readonly logger?: Logger | undefined;
}

/** What `createServer` is given: Node's HTTP/2 server options, the TLS handshake timeout, and the ALPN protocols to offer. */
export type GrpcListenerOptions = ServerOptions & { handshakeTimeout?: number; ALPNProtocols?: string[] };

/** Told of every call a server ran, once it is over (its start is the call's `startedAt`). */
export interface CallObserver {
  ended(call: ServerCall): void;
}

/** Options of {@link GrpcServer.close}. */
export interface GrpcServerCloseOptions {
  /** How long in-flight calls may take to finish before they are cancelled. Default 5 s. */
  readonly graceMs?: number | undefined;
}

const DEFAULT_IDLE_SESSION_TIMEOUT_MS = 180_000;
const DEFAULT_PING_TIMEOUT_MS = 20_000;
const DEFAULT_MAX_CONCURRENT_STREAMS = 2048;
const DEFAULT_GRACE_MS = 5000;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_CONNECTIONS = 1024;
/**
 * Node refuses new streams (RST_STREAM ENHANCE_YOUR_CALM) on a session whose buffered data exceeds
 * `maxSessionMemory` (default 10 MB). A few 4 MiB messages in flight reach that, and a client could not
 * tell such a refusal from a reset, so the ceiling is raised; flow control still bounds each stream.
 */
const MAX_SESSION_MEMORY_MB = 256;
/** The connection-level receive window. Node's default (64 KiB) would be shared by all streams. */
const SESSION_WINDOW_BYTES = 16 * 1024 * 1024;
/** The largest request header list accepted (name + value + 32 per field), Node's default too. */
const MAX_HEADER_LIST_BYTES = 65_535;

const SESSION = Symbol('courier.grpc.ServerSession');

/** Per-connection bookkeeping. */
class ServerSession implements ServerCallSession {
  readonly session: ServerHttp2Session;
  readonly peer: Peer;
  readonly keeper: SessionKeeper;
  /** Closes the connection if the client's preface and SETTINGS do not arrive in time; cleared when they do. */
  handshakeTimer: NodeJS.Timeout | undefined;

  constructor(session: ServerHttp2Session, keeper: (record: ServerSession) => SessionKeeper) {
    this.session = session;
    const socket = session.socket;
    const tls = socket as Partial<TLSSocket>;
    const verified = tls.authorized === true && typeof tls.getPeerCertificate === 'function' ? tls.getPeerCertificate() : undefined;
    this.peer = {
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
      family: socket.remoteFamily ?? '',
      certificate: verified !== undefined && Object.keys(verified).length > 0 ? verified : undefined,
    };
    this.keeper = keeper(this);
  }

  callEnded(): void {
    this.keeper.callEnded();
  }
}

function destroySocket(this: Socket): void {
  this.destroy();
}

/** The client's first SETTINGS frame arrived: the connection preface is complete. */
function onRemoteSettings(this: ServerHttp2Session & { [SESSION]?: ServerSession }): void {
  const record = this[SESSION];
  if (record?.handshakeTimer !== undefined) {
    clearTimeout(record.handshakeTimer);
    record.handshakeTimer = undefined;
  }
}

function onStreamError(this: ServerHttp2Stream): void {
  // Stream errors (resets, destroyed sessions) surface through 'close'; this only keeps Node from
  // treating them as unhandled.
}

/**
 * A gRPC server over HTTP/2 (PROTOCOL-HTTP2.md) carrying opaque message bytes: it routes calls by
 * `:path` to handlers and leaves encoding to them. Plaintext h2c with prior knowledge by default.
 *
 * `listen` may be called several times (e.g. 127.0.0.1 and ::1 on the same port); all listeners share
 * the handlers. `close` drains: every connection gets GOAWAY (so clients stop opening streams, and
 * streams the server never processed are reported to them as refused), in-flight calls get `graceMs`
 * to finish, then they are cancelled and the connections destroyed.
 */
export class GrpcServer {
  readonly #owner: ServerCallOwner;
  readonly #logger: Logger;
  readonly #maxConcurrentStreams: number;
  readonly #idleSessionTimeoutMs: number;
  readonly #pingIntervalMs: number | undefined;
  readonly #pingTimeoutMs: number;
  readonly #createServer: ((options: GrpcListenerOptions) => Http2Server | Http2SecureServer) | undefined;
  readonly #handshakeTimeoutMs: number;
  readonly #observer: CallObserver | undefined;
  readonly #maxConnections: number;
  readonly #lane: boolean;
  readonly #laneRouter: LaneCallRouter;
  readonly #laneSessions = new Set<LaneServerSession>();
  readonly #h2Router: H2CallRouter;
  /** Plaintext HTTP/2 connections, served by Courier's own HTTP/2 (src/h2/). */
  readonly #h2Sessions = new Set<H2ServerSession>();

  readonly #handlers = new Map<string, CallHandler>();
  /** Service names with at least one registered method, for grpc-go's "unknown method" wording. */
  readonly #services = new Set<string>();
  #fallback: CallHandler | undefined;

  readonly #servers: NetServer[] = [];
  readonly #sessions = new Set<ServerSession>();
  readonly #calls = new SlotSet<ServerCall>();
  #closing: Promise<void> | undefined;
  #sessionsGone: (() => void) | undefined;

  readonly #sockets = new Set<Socket>();
  /** Plaintext connections whose protocol is not known yet. */
  readonly #sniffing = new Set<Socket>();
  readonly #onConnection = (socket: Socket): void => {
    this.#sockets.add(socket);
    // HTTP/2 writes whole frames; Nagle would hold a small response back until the previous one is
    // acknowledged (Node enables Nagle on accepted sockets of http2 servers).
    socket.setNoDelay(true);
    // Node quirk: a gracefully closed session ends its socket and then waits for the client to close
    // its side, possibly forever. Once our side is ended there is nothing left to wait for.
    socket.once('finish', destroySocket);
    socket.once('close', () => this.#sockets.delete(socket));
  };
  readonly #onSession = (session: ServerHttp2Session): void => this.#acceptSession(session);
  readonly #onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders?: string[]): void =>
    this.#acceptStream(stream, headers, rawHeaders);

  constructor(options: GrpcServerOptions = {}) {
    this.#logger = options.logger ?? silentLogger();
    this.#owner = {
      maxReceiveMessageBytes: options.maxReceiveMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      maxSendMessageBytes: options.maxSendMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      logger: this.#logger,
      callClosed: (call, session) => {
        session.callEnded();
        this.#callClosed(call);
      },
    };
    this.#laneRouter = {
      maxReceiveMessageBytes: this.#owner.maxReceiveMessageBytes,
      maxSendMessageBytes: this.#owner.maxSendMessageBytes,
      logger: this.#logger,
      handlerFor: (path) => this.#handlers.get(path) ?? this.#fallback ?? this.#unimplemented(path),
      run: (call, handler) => this.#run(call, handler),
      callClosed: (call) => this.#callClosed(call),
      sessionClosed: (session) => {
        this.#laneSessions.delete(session);
        this.#checkSessionsGone();
      },
    };
    this.#h2Router = {
      ...this.#laneRouter,
      sessionClosed: (session) => {
        this.#h2Sessions.delete(session);
        this.#checkSessionsGone();
      },
    };
    this.#lane = options.lane ?? false;
    this.#maxConcurrentStreams = options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
    this.#idleSessionTimeoutMs = options.idleSessionTimeoutMs ?? DEFAULT_IDLE_SESSION_TIMEOUT_MS;
    this.#pingIntervalMs = options.pingIntervalMs;
    this.#pingTimeoutMs = options.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
    this.#createServer = options.createServer;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    this.#observer = options.observer;
  }

  /** Routes calls to `path` (`/package.Service/Method`, case-sensitive) to `handler`. */
  register(path: string, handler: CallHandler): void {
    this.#handlers.set(path, handler);
    const parsed = splitPath(path);
    if (parsed !== undefined) this.#services.add(parsed.service);
  }

  /**
   * Handles calls to paths nothing was registered for (e.g. to proxy them). Without a fallback they
   * get a Trailers-Only UNIMPLEMENTED.
   */
  setFallback(handler: CallHandler | undefined): void {
    this.#fallback = handler;
  }

  /** Starts listening on `host:port` (port 0 picks a free port) and resolves with the bound address. */
  async listen(host: string, port: number): Promise<AddressInfo> {
    return (await this.#listen({ host, port })) as AddressInfo;
  }

  /** Starts listening on a Unix domain socket at `path`. */
  async listenUnix(path: string): Promise<void> {
    await this.#listen({ path });
  }

  async #listen(where: { host: string; port: number } | { path: string }): Promise<AddressInfo | string | null> {
    if (this.#closing !== undefined) throw new CourierError('ERR_INTERNAL', 'the gRPC server is closed');
    const server = this.#createServer === undefined ? this.#plaintextListener() : this.#secureListener(this.#createServer);
    limitConnections(server, this.#maxConnections, this.#logger, 'gRPC');
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(where, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.#logger.warn({ err: errorMessage(err) }, 'gRPC listener error'));
    this.#servers.push(server);
    return server.address();
  }

  /** Number of open client connections, HTTP/2 and lane (for tests and diagnostics). */
  get connectionCount(): number {
    return this.#sessions.size + this.#laneSessions.size + this.#h2Sessions.size;
  }

  /** Number of open lane connections (for tests and diagnostics). */
  get laneConnectionCount(): number {
    return this.#laneSessions.size;
  }

  /** Number of calls whose streams are still open. */
  get activeCallCount(): number {
    return this.#calls.size;
  }

  /**
   * Stops accepting connections, sends GOAWAY on every connection, lets in-flight calls run for up to
   * `graceMs`, then cancels the rest (their `signal` aborts, their streams are reset with CANCEL) and
   * destroys the connections. Resolves when every listener and connection is closed. Idempotent: later
   * calls return the same promise.
   */
  close(options: GrpcServerCloseOptions = {}): Promise<void> {
    this.#closing ??= this.#shutdown(options.graceMs ?? DEFAULT_GRACE_MS);
    return this.#closing;
  }

  // --- internals ------------------------------------------------------------------------------

  async #shutdown(graceMs: number): Promise<void> {
    const listenersClosed = Promise.all(this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const socket of this.#sniffing) socket.destroy();
    if (this.connectionCount > 0) {
      const gone = new Promise<void>((resolve) => {
        this.#sessionsGone = resolve;
      });
      for (const record of this.#sessions) this.#goAway(record);
      for (const session of this.#laneSessions) session.goAway();
      for (const session of this.#h2Sessions) session.goAway();
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, graceMs));
        timer.unref();
      });
      await Promise.race([gone, graceOver]);
      clearTimeout(timer);
      if (this.connectionCount > 0) {
        const status = { code: GrpcStatus.UNAVAILABLE, message: 'the server is shutting down' };
        for (const call of this.#calls.values()) call.cancel(status);
        for (const record of this.#sessions) record.session.destroy();
        for (const session of this.#laneSessions) session.destroy('the server is shutting down');
        for (const session of this.#h2Sessions) session.destroy('the server is shutting down');
        // A session Node had already closed gracefully would otherwise wait for the client.
        for (const socket of this.#sockets) socket.destroy();
        await gone;
      }
    }
    await listenersClosed;
  }

  /** Graceful close of one connection: GOAWAY now, socket closed once its streams are done. */
  #goAway(record: ServerSession): void {
    record.keeper.stop();
    const session = record.session;
    if (session.closed || session.destroyed) return;
    // Node's close() sends GOAWAY(NO_ERROR) whose last-stream-id is the last stream it processed;
    // the client's nghttp2 then fails any later stream with REFUSED_STREAM.
    session.close();
  }

  #acceptSession(session: ServerHttp2Session): void {
    keepStreamsInIdTable(session);
    const record = new ServerSession(
      session,
      (self) =>
        new SessionKeeper(session, {
          pingIntervalMs: this.#pingIntervalMs,
          pingTimeoutMs: this.#pingTimeoutMs,
          idleTimeoutMs: this.#idleSessionTimeoutMs,
          onIdle: () => this.#goAway(self),
          onPingTimeout: () => {
            this.#logger.debug({ peer: self.peer.address }, 'gRPC client did not answer a keepalive ping; closing the connection');
            session.destroy();
          },
        }),
    );
    (session as ServerHttp2Session & { [SESSION]?: ServerSession })[SESSION] = record;
    this.#sessions.add(record);
    if (this.#handshakeTimeoutMs > 0) {
      // A client that opens a connection and never finishes (or trickles) the preface holds a socket
      // and a session: it gets a bounded time, as the HTTP API bounds a request's head.
      record.handshakeTimer = setTimeout(() => {
        record.handshakeTimer = undefined;
        this.#logger.debug({ peer: record.peer.address }, 'gRPC client did not send the HTTP/2 preface in time; closing the connection');
        session.destroy();
      }, this.#handshakeTimeoutMs);
      record.handshakeTimer.unref();
      session.once('remoteSettings', onRemoteSettings);
    }
    session.on('error', (err) => this.#logger.debug({ peer: record.peer.address, err: errorMessage(err) }, 'gRPC connection error'));
    session.once('close', () => {
      if (record.handshakeTimer !== undefined) clearTimeout(record.handshakeTimer);
      record.keeper.stop();
      this.#sessions.delete(record);
      this.#checkSessionsGone();
    });
    if (this.#closing !== undefined) {
      this.#goAway(record);
      return;
    }
    try {
      session.setLocalWindowSize(SESSION_WINDOW_BYTES);
    } catch {
      // Not fatal: the default window only limits throughput.
    }
    record.keeper.start();
  }

  #acceptStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[] | undefined): void {
    stream.on('error', onStreamError);
    const record = (stream.session as (ServerHttp2Session & { [SESSION]?: ServerSession }) | undefined)?.[SESSION];
    if (record === undefined || this.#closing !== undefined) {
      // A stream that raced our GOAWAY: tell the client it was not processed.
      stream.close(h2.NGHTTP2_REFUSED_STREAM);
      return;
    }
    if (headers[':method'] !== 'POST') {
      stream.respond({ ':status': 405, allow: 'POST' }, { endStream: true });
      return;
    }
    if (!isGrpcContentType(headers['content-type'])) {
      // PROTOCOL-HTTP2.md: answer 415 so non-gRPC clients do not read a 200 as success.
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      // Courier never advertises compression (no grpc-accept-encoding but identity), so a compressing
      // client is answered as the spec says: UNIMPLEMENTED, listing what is accepted.
      respondTrailersOnly(
        stream,
        { code: GrpcStatus.UNIMPLEMENTED, message: `grpc-encoding "${String(encoding)}" is not supported: this server does not decompress messages` },
        undefined,
        { 'grpc-accept-encoding': 'identity' },
      );
      return;
    }
    let deadline: number | undefined;
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined) {
      const ms = typeof timeout === 'string' ? parseGrpcTimeout(timeout) : undefined;
      if (ms === undefined) {
        respondTrailersOnly(stream, { code: GrpcStatus.INTERNAL, message: `malformed grpc-timeout: ${String(timeout)}` });
        return;
      }
      if (ms <= 0) {
        respondTrailersOnly(stream, { code: GrpcStatus.DEADLINE_EXCEEDED, message: 'deadline exceeded before the call started' });
        return;
      }
      deadline = Date.now() + ms;
    }
    const path = headers[':path'] ?? '';
    const handler = this.#handlers.get(path) ?? this.#fallback;
    if (handler === undefined) {
      respondTrailersOnly(stream, { code: GrpcStatus.UNIMPLEMENTED, message: this.#unimplemented(path) });
      return;
    }
    const call = new Http2ServerCall(this.#owner, record, stream, headers, rawHeaders, deadline);
    record.keeper.callStarted();
    this.#run(call, handler);
  }

  /** Starts a call (HTTP/2 or lane) with its handler. */
  #run(call: ServerCall, handler: CallHandler): void {
    this.#calls.add(call);
    try {
      handler(call);
    } catch (err) {
      this.#logger.error({ path: call.path, err: errorMessage(err) }, 'gRPC handler threw');
      call.end({ code: GrpcStatus.UNKNOWN, message: 'the handler failed' });
    }
  }

  #callClosed(call: ServerCall): void {
    this.#calls.delete(call);
    this.#observer?.ended(call);
  }

  #checkSessionsGone(): void {
    if (this.connectionCount === 0) this.#sessionsGone?.();
  }

  #listenerOptions(): GrpcListenerOptions {
    return {
      settings: { maxConcurrentStreams: this.#maxConcurrentStreams, enablePush: false },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
      // TLS servers only: a client that does not finish its handshake in time is dropped.
      handshakeTimeout: this.#handshakeTimeoutMs,
      ALPNProtocols: this.#lane ? [LANE_PROTOCOL, 'h2'] : ['h2'],
    };
  }

  /**
   * A plaintext port: a TCP listener whose connections go to the lane (when it starts with the lane's
   * magic) or to Courier's own HTTP/2 server end (src/h2/), without node:http2.
   */
  #plaintextListener(): NetServer {
    const server = createNetServer();
    const toHttp2 = (socket: Socket): void => this.#acceptH2(socket);
    server.on('connection', (socket: Socket) => {
      this.#onConnection(socket);
      if (this.#lane) this.#sniff(socket, toHttp2);
      else toHttp2(socket);
    });
    return server;
  }

  #acceptH2(socket: Socket): void {
    const session = new H2ServerSession(socket, this.#h2Router, {
      peer: { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, family: socket.remoteFamily ?? '' },
      limits: { maxConcurrentStreams: this.#maxConcurrentStreams, connectionWindow: SESSION_WINDOW_BYTES, maxHeaderListBytes: MAX_HEADER_LIST_BYTES },
      handshakeTimeoutMs: this.#handshakeTimeoutMs,
      idleTimeoutMs: this.#idleSessionTimeoutMs,
      pingIntervalMs: this.#pingIntervalMs,
      pingTimeoutMs: this.#pingTimeoutMs,
    });
    this.#h2Sessions.add(session);
    if (this.#closing !== undefined) session.goAway();
  }

  /** A port whose HTTP/2 server `createServer` made (the seam for TLS). */
  #secureListener(create: (options: GrpcListenerOptions) => Http2Server | Http2SecureServer): Http2Server | Http2SecureServer {
    const server = create(this.#listenerOptions());
    if (this.#lane) this.#dispatchProtocols(server);
    server.on('connection', this.#onConnection);
    return this.#observe(server);
  }

  /**
   * Routes each connection a `createServer` server accepts to HTTP/2 or to the lane. With TLS, ALPN
   * decides (Node's HTTP/2 server would treat any protocol but HTTP/1.1 as HTTP/2). In plaintext, the
   * first bytes decide: the lane's magic, or anything else (the HTTP/2 preface) which goes to Node's
   * HTTP/2 server with those bytes put back.
   */
  #dispatchProtocols(server: Http2Server | Http2SecureServer): void {
    const secure = 'setSecureContext' in server;
    const event = secure ? 'secureConnection' : 'connection';
    const http2Listeners = server.listeners(event) as ((socket: Socket) => void)[];
    server.removeAllListeners(event);
    const toHttp2 = (socket: Socket): void => {
      for (const listener of http2Listeners) listener.call(server, socket);
    };
    if (secure) {
      server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.alpnProtocol === LANE_PROTOCOL) this.#acceptLane(socket);
        else toHttp2(socket);
      });
      return;
    }
    server.on('connection', (socket: Socket) => this.#sniff(socket, toHttp2));
  }

  #observe<S extends Http2Server | Http2SecureServer>(server: S): S {
    server.on('session', this.#onSession);
    server.on('stream', this.#onStream);
    return server;
  }

  /** Reads a plaintext connection's first bytes until they are, or cannot be, the lane's magic. */
  #sniff(socket: Socket, toHttp2: (socket: Socket) => void): void {
    this.#sniffing.add(socket);
    let seen: Buffer | undefined;
    let timer: NodeJS.Timeout | undefined;
    const decide = (lane: boolean): void => {
      socket.off('data', onData);
      socket.off('close', onClose);
      clearTimeout(timer);
      this.#sniffing.delete(socket);
      socket.pause();
      if (seen !== undefined) socket.unshift(seen);
      if (lane) this.#acceptLane(socket);
      else toHttp2(socket);
    };
    const onData = (chunk: Buffer): void => {
      seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
      const compared = Math.min(seen.length, LANE_MAGIC.length);
      if (seen.compare(LANE_MAGIC, 0, compared, 0, compared) !== 0) decide(false);
      else if (compared === LANE_MAGIC.length) decide(true);
    };
    const onClose = (): void => {
      clearTimeout(timer);
      this.#sniffing.delete(socket);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    if (this.#handshakeTimeoutMs > 0) {
      timer = setTimeout(() => {
        this.#logger.debug({ peer: socket.remoteAddress }, 'gRPC client sent no preface in time; closing the connection');
        socket.destroy();
      }, this.#handshakeTimeoutMs);
      timer.unref();
    }
  }

  #acceptLane(socket: Socket | TLSSocket): void {
    const tls = socket as Partial<TLSSocket>;
    const verified = tls.authorized === true && typeof tls.getPeerCertificate === 'function' ? tls.getPeerCertificate() : undefined;
    const session = new LaneServerSession(socket, this.#laneRouter, {
      peer: {
        address: socket.remoteAddress ?? '',
        port: socket.remotePort ?? 0,
        family: socket.remoteFamily ?? '',
        certificate: verified !== undefined && Object.keys(verified).length > 0 ? verified : undefined,
      },
      limits: { ...DEFAULT_LIMITS, maxConcurrentStreams: this.#maxConcurrentStreams },
      handshakeTimeoutMs: this.#handshakeTimeoutMs,
      idleTimeoutMs: this.#idleSessionTimeoutMs,
      pingIntervalMs: this.#pingIntervalMs,
      pingTimeoutMs: this.#pingTimeoutMs,
    });
    this.#laneSessions.add(session);
    if (this.#closing !== undefined) session.goAway();
  }

  /** grpc-go's wording, so callers see the same text from Courier and Dapr. */
  #unimplemented(path: string): string {
    const parsed = splitPath(path);
    if (parsed === undefined) return `malformed method name: "${path}"`;
    if (this.#services.has(parsed.service)) return `unknown method ${parsed.method} for service ${parsed.service}`;
    return `unknown service ${parsed.service}`;
  }
}

function splitPath(path: string): { service: string; method: string } | undefined {
  if (path.charCodeAt(0) !== 0x2f) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash <= 1 || slash === path.length - 1 || path.indexOf('/', slash + 1) !== -1) return undefined;
  return { service: path.slice(1, slash), method: path.slice(slash + 1) };
}
